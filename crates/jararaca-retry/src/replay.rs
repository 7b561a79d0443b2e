//! [`Replay`]: how [`Retry`](crate::Retry) gets a fresh copy of a request for the next attempt.

/// Makes the copy of a request that the next attempt sends, or refuses to.
///
/// [`CloneReplay`] (the default) clones requests that are `Clone`. For requests that are not
/// (an `http::Request` with a streaming body) a replay can copy what it can and return `None`
/// for the rest: a request with no replay is sent once and never retried, whatever the
/// outcome. Implemented for every `Fn(&R) -> Option<R>` closure.
pub trait Replay<R> {
    /// A copy of `request` to send again, or `None` when it must not be sent twice.
    fn replay(&self, request: &R) -> Option<R>;
}

impl<R, F> Replay<R> for F
where
    F: Fn(&R) -> Option<R>,
{
    fn replay(&self, request: &R) -> Option<R> {
        self(request)
    }
}

/// The default [`Replay`]: every attempt sends a clone of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneReplay;

impl<R: Clone> Replay<R> for CloneReplay {
    fn replay(&self, request: &R) -> Option<R> {
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_replay_clones_and_closures_may_refuse() {
        assert_eq!(CloneReplay.replay(&"ping"), Some("ping"));
        let only_short = |r: &String| (r.len() < 5).then(|| r.clone());
        assert_eq!(
            only_short.replay(&"ping".to_owned()).as_deref(),
            Some("ping")
        );
        assert_eq!(only_short.replay(&"too long".to_owned()), None);
    }
}
