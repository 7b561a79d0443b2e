//! [`RetryPolicy`]: how many times to retry and how long to wait before each retry.

use std::future::Future;
use std::iter::FusedIterator;
use std::time::Duration;

use tokio_retry::strategy::jitter;

/// How far jitter may move a delay, as a fraction of it (±25%).
const JITTER_SPREAD: f64 = 0.25;

/// The shortest delay jitter may produce (unless `max_delay` is shorter).
const MIN_JITTERED_DELAY: Duration = Duration::from_millis(100);

/// Exponential backoff with an optional jitter and a cap, and a retry budget.
///
/// The delay before retry number `n` (counting from 0) is
/// `initial_delay × backoff_factor^n`. With `jitter` on, that delay is then moved by a random
/// ±25% and kept at or above 100 ms. Finally it is capped at `max_delay`, so no delay ever
/// exceeds the cap. `max_retries` is the budget: an operation runs at most `max_retries + 1`
/// times.
///
/// [`Default`] matches the reference `RetryPolicy()`: 5 retries, 1 s initial delay, factor 2,
/// 60 s cap, jitter on.
///
/// ```
/// use std::time::Duration;
/// use jararaca_retry::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_retries(4)
///     .max_delay(Duration::from_secs(5))
///     .jitter(false);
/// let delays: Vec<u64> = policy.delays().map(|d| d.as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 5]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many retries follow the first attempt before giving up.
    pub max_retries: u32,
    /// The delay before the first retry.
    pub initial_delay: Duration,
    /// What each further delay is multiplied by.
    pub backoff_factor: f64,
    /// The longest delay ever waited.
    pub max_delay: Duration,
    /// Whether delays are randomised (±25%, at least 100 ms) to spread out retrying clients.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_delay: Duration::from_secs(1),
            backoff_factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Sets how many retries follow the first attempt.
    #[must_use]
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the delay before the first retry.
    #[must_use]
    pub fn initial_delay(mut self, initial_delay: Duration) -> Self {
        self.initial_delay = initial_delay;
        self
    }

    /// Sets what each further delay is multiplied by.
    #[must_use]
    pub fn backoff_factor(mut self, backoff_factor: f64) -> Self {
        self.backoff_factor = backoff_factor;
        self
    }

    /// Sets the longest delay ever waited.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Turns jitter on or off (turn it off for predictable delays).
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `attempt`, counting from 0.
    ///
    /// Never longer than `max_delay`. A computation that overflows (a huge `attempt`) or makes
    /// no sense (a NaN `backoff_factor`) saturates at `max_delay` instead of panicking; a
    /// negative one means no delay.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let secs = self.initial_delay.as_secs_f64() * self.backoff_factor.powf(f64::from(attempt));
        // Clamping at twice the cap keeps the arithmetic finite without changing the result:
        // even 75% of it is still above the cap.
        let ceiling = self.max_delay.saturating_mul(2);
        let nominal = if secs.is_nan() {
            ceiling
        } else {
            Duration::try_from_secs_f64(secs.max(0.0)).map_or(ceiling, |d| d.min(ceiling))
        };
        let delay = if self.jitter {
            // tokio-retry's `jitter` picks uniformly in [0, d); shifted, the spread is
            // [75%, 125%) of the nominal delay.
            nominal
                .mul_f64(1.0 - JITTER_SPREAD)
                .saturating_add(jitter(nominal.mul_f64(2.0 * JITTER_SPREAD)))
                .max(MIN_JITTERED_DELAY)
        } else {
            nominal
        };
        delay.min(self.max_delay)
    }

    /// The `max_retries` delays, in order (freshly jittered when jitter is on).
    pub fn delays(&self) -> Delays {
        Delays {
            policy: *self,
            attempt: 0,
        }
    }

    /// Runs `operation` until it succeeds or the retry budget is spent, sleeping between tries.
    ///
    /// Returns the first `Ok`, or the last `Err`. Nothing runs until the future is awaited.
    pub fn retry<F, Fut, T, E>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, E>> + use<F, Fut, T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.retry_if(operation, |_: &E| true)
    }

    /// Like [`retry`](Self::retry), but retries only the errors for which `condition` is true.
    pub fn retry_if<F, Fut, T, E, C>(
        &self,
        operation: F,
        condition: C,
    ) -> impl Future<Output = Result<T, E>> + use<F, Fut, T, E, C>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(&E) -> bool,
    {
        let policy = *self;
        async move {
            // tokio-retry asks for the next delay only when it is about to retry, which makes
            // the iterator the place to report each retry and the moment the budget runs out.
            let mut delays = policy.delays();
            let strategy = std::iter::from_fn(move || {
                let attempt = delays.attempt + 1;
                match delays.next() {
                    Some(delay) => {
                        tracing::debug!(
                            attempt,
                            max_retries = policy.max_retries,
                            ?delay,
                            "retrying"
                        );
                        Some(delay)
                    }
                    None => {
                        tracing::warn!(
                            max_retries = policy.max_retries,
                            "retries exhausted, giving up"
                        );
                        None
                    }
                }
            });
            tokio_retry::RetryIf::start(strategy, operation, condition).await
        }
    }
}

/// The delays of a [`RetryPolicy`], one per retry; made by [`RetryPolicy::delays`].
#[derive(Debug, Clone)]
pub struct Delays {
    policy: RetryPolicy,
    attempt: u32,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt >= self.policy.max_retries {
            return None;
        }
        let delay = self.policy.delay_for(self.attempt);
        self.attempt += 1;
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.policy.max_retries - self.attempt).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Delays {}

impl FusedIterator for Delays {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    fn secs(delays: impl Iterator<Item = Duration>) -> Vec<f64> {
        delays.map(|d| d.as_secs_f64()).collect()
    }

    #[test]
    fn default_matches_the_reference() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_retries, 5);
        assert_eq!(policy.initial_delay, Duration::from_secs(1));
        assert_eq!(policy.backoff_factor, 2.0);
        assert_eq!(policy.max_delay, Duration::from_secs(60));
        assert!(policy.jitter);
    }

    #[test]
    fn delays_grow_by_the_factor_without_jitter() {
        let policy = RetryPolicy::default().jitter(false);
        assert_eq!(policy.delays().len(), 5);
        assert_eq!(secs(policy.delays()), [1.0, 2.0, 4.0, 8.0, 16.0]);

        let policy = policy
            .initial_delay(Duration::from_secs(5))
            .backoff_factor(3.0);
        assert_eq!(secs(policy.delays()), [5.0, 15.0, 45.0, 60.0, 60.0]);
    }

    #[test]
    fn delays_stop_at_the_cap() {
        let policy = RetryPolicy::default()
            .max_retries(7)
            .max_delay(Duration::from_secs(5))
            .jitter(false);
        assert_eq!(secs(policy.delays()), [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]);
        assert_eq!(policy.delay_for(10_000), Duration::from_secs(5));
        assert_eq!(
            policy.backoff_factor(f64::NAN).delay_for(1),
            Duration::from_secs(5)
        );
        assert_eq!(RetryPolicy::default().max_retries(0).delays().count(), 0);
    }

    #[test]
    fn jitter_stays_within_a_quarter_and_under_the_cap() {
        let policy = RetryPolicy::default().max_delay(Duration::from_secs(10));
        for attempt in 0..6 {
            let nominal = policy.jitter(false).delay_for(attempt).as_secs_f64();
            let samples: Vec<f64> = (0..500)
                .map(|_| policy.delay_for(attempt).as_secs_f64())
                .collect();
            for &s in &samples {
                assert!(s <= 10.0, "attempt {attempt}: {s}s is above the cap");
                assert!(
                    s >= nominal * 0.75 - 1e-9,
                    "attempt {attempt}: {s}s too short"
                );
                assert!(
                    s <= nominal * 1.25 + 1e-9,
                    "attempt {attempt}: {s}s too long"
                );
            }
            if nominal < 8.0 {
                // Below the cap, jitter must actually vary the delay.
                assert!(
                    samples.iter().any(|&s| s != samples[0]),
                    "attempt {attempt}"
                );
            }
        }
        let tiny = RetryPolicy::default().initial_delay(Duration::from_millis(10));
        assert!(tiny.delay_for(0) >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_succeeds_midway_after_the_policy_delays() {
        let calls = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let policy = RetryPolicy::default().jitter(false);
        let result = policy
            .retry(|| {
                let calls = calls.clone();
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 { Err(n) } else { Ok(n) }
                }
            })
            .await;
        assert_eq!(result, Ok(3));
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_with_the_last_error() {
        let calls = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let policy = RetryPolicy::default().max_retries(3).jitter(false);
        let result: Result<(), u32> = policy
            .retry(|| {
                let calls = calls.clone();
                async move { Err(calls.fetch_add(1, Ordering::SeqCst) + 1) }
            })
            .await;
        assert_eq!(result, Err(4));
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 4));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_if_stops_on_errors_the_condition_rejects() {
        let calls = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let result: Result<(), &str> = RetryPolicy::default()
            .retry_if(
                || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move { Err(if n == 0 { "transient" } else { "fatal" }) }
                },
                |e: &&str| *e == "transient",
            )
            .await;
        assert_eq!(result, Err("fatal"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(750) && waited <= Duration::from_millis(1251));
    }
}
