//! [`RetryPredicate`]: which outcomes of a call are worth another attempt.

/// Decides, from the outcome of one attempt, whether the request should be tried again.
///
/// Implemented for every `Fn(&Result<Res, E>) -> bool` closure, so an `Ok` outcome (an HTTP 503,
/// say) can be retried as well as an `Err`. [`DefaultRetryPredicate`] retries every `Err`.
pub trait RetryPredicate<Res, E> {
    /// Returns `true` when `outcome` should be retried (budget permitting).
    fn should_retry(&self, outcome: &Result<Res, E>) -> bool;

    /// How long the outcome asks to wait before the retry (an HTTP `Retry-After`), instead of
    /// the policy's backoff delay. `None` (the default) keeps the policy's delay.
    ///
    /// A hint longer than the policy's `max_delay` ends the retries: the outcome is returned
    /// rather than retried sooner than asked.
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<std::time::Duration> {
        let _ = outcome;
        None
    }
}

impl<Res, E, F> RetryPredicate<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn should_retry(&self, outcome: &Result<Res, E>) -> bool {
        self(outcome)
    }
}

/// The default [`RetryPredicate`]: retry every `Err`, never an `Ok`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRetryPredicate;

impl<Res, E> RetryPredicate<Res, E> for DefaultRetryPredicate {
    fn should_retry(&self, outcome: &Result<Res, E>) -> bool {
        outcome.is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retries_errors_only() {
        assert!(DefaultRetryPredicate.should_retry(&Err::<(), _>("boom")));
        assert!(!DefaultRetryPredicate.should_retry(&Ok::<_, ()>(())));
    }

    #[test]
    fn closures_are_predicates() {
        let on_503 = |outcome: &Result<u16, ()>| matches!(outcome, Ok(503));
        assert!(on_503.should_retry(&Ok(503)));
        assert!(!on_503.should_retry(&Ok(200)));
        assert!(!on_503.should_retry(&Err(())));
    }
}
