//! [`RetryLayer`] and the [`Retry`] service it builds.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::{
    CloneReplay, DefaultRetryPredicate, Replay, ResponseFuture, RetryPolicy, RetryPredicate,
};

/// Applies [`Retry`] to a service: replay failed requests with the backoff of a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryLayer<P = DefaultRetryPredicate, C = CloneReplay> {
    policy: RetryPolicy,
    predicate: P,
    replay: C,
}

impl RetryLayer {
    /// A layer that retries every `Err` as `policy` allows.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            predicate: DefaultRetryPredicate,
            replay: CloneReplay,
        }
    }
}

impl<P, C> RetryLayer<P, C> {
    /// Retries the outcomes `predicate` picks instead.
    pub fn predicate<Q>(self, predicate: Q) -> RetryLayer<Q, C> {
        RetryLayer {
            policy: self.policy,
            predicate,
            replay: self.replay,
        }
    }

    /// Copies requests for the next attempt with `replay` instead of `Clone`; a request it
    /// refuses to copy is sent once and never retried.
    pub fn replay<D>(self, replay: D) -> RetryLayer<P, D> {
        RetryLayer {
            policy: self.policy,
            predicate: self.predicate,
            replay,
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for RetryLayer<P, C> {
    type Service = Retry<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            policy: self.policy,
            predicate: self.predicate.clone(),
            replay: self.replay.clone(),
        }
    }
}

/// Middleware that replays a copy of the request while the outcome is worth retrying.
///
/// Between attempts it sleeps for the policy's next delay (or the delay the predicate reads
/// from the outcome), then waits for the inner service to be ready again. It gives up after
/// `max_retries` retries and returns the last outcome. A request the [`Replay`] cannot copy
/// is sent once.
#[derive(Debug, Clone)]
pub struct Retry<S, P = DefaultRetryPredicate, C = CloneReplay> {
    inner: S,
    policy: RetryPolicy,
    predicate: P,
    replay: C,
}

impl<S> Retry<S> {
    /// Wraps `inner`, retrying every `Err` as `policy` allows.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            predicate: DefaultRetryPredicate,
            replay: CloneReplay,
        }
    }
}

impl<S, P, C> Retry<S, P, C> {
    /// Retries the outcomes `predicate` picks instead.
    pub fn predicate<Q>(self, predicate: Q) -> Retry<S, Q, C> {
        Retry {
            inner: self.inner,
            policy: self.policy,
            predicate,
            replay: self.replay,
        }
    }

    /// Copies requests for the next attempt with `replay` instead of `Clone`.
    pub fn replay<D>(self, replay: D) -> Retry<S, P, D> {
        Retry {
            inner: self.inner,
            policy: self.policy,
            predicate: self.predicate,
            replay,
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, P, C> Service<R> for Retry<S, P, C>
where
    S: Service<R> + Clone,
    P: RetryPredicate<S::Response, S::Error> + Clone,
    C: Replay<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, R, P, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The future keeps the service that `poll_ready` readied; we keep a fresh clone.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        // The copy is kept for the next attempt; the original goes out first.
        let kept = self.replay.replay(&request);
        let future = ready.call(request);
        ResponseFuture::new(
            future,
            ready,
            kept,
            self.predicate.clone(),
            self.replay.clone(),
            self.policy,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy::default().jitter(false)
    }

    /// A service that fails until call number `succeed_on` (1-based; 0 = never), recording
    /// when each call happened and what request it got.
    fn flaky(
        succeed_on: usize,
        log: Arc<Mutex<Vec<(Instant, String)>>>,
    ) -> impl Service<String, Response = usize, Error = usize, Future = Ready<Result<usize, usize>>>
    + Clone {
        service_fn(move |request: String| {
            let mut log = log.lock().unwrap();
            log.push((Instant::now(), request));
            let n = log.len();
            ready(if n == succeed_on { Ok(n) } else { Err(n) })
        })
    }

    fn offsets(log: &Mutex<Vec<(Instant, String)>>, start: Instant) -> Vec<u64> {
        let log = log.lock().unwrap();
        log.iter().map(|(at, _)| (*at - start).as_secs()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_policy_delays_then_gives_up_with_the_last_error() {
        let log = Arc::default();
        let start = Instant::now();
        let result = ServiceBuilder::new()
            .layer(RetryLayer::new(no_jitter()))
            .service(flaky(0, Arc::clone(&log)))
            .oneshot("ping".to_owned())
            .await;
        assert_eq!(result, Err(6), "1 attempt + 5 retries, last error returned");
        // Calls at 0, then after 1, 2, 4, 8 and 16 seconds of backoff.
        assert_eq!(offsets(&log, start), [0, 1, 3, 7, 15, 31]);
        assert_eq!(start.elapsed(), Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn honours_the_cap_and_the_budget() {
        let log = Arc::default();
        let start = Instant::now();
        let policy = no_jitter().max_retries(4).max_delay(Duration::from_secs(3));
        let result = Retry::new(flaky(0, Arc::clone(&log)), policy)
            .oneshot("ping".to_owned())
            .await;
        assert_eq!(result, Err(5));
        assert_eq!(offsets(&log, start), [0, 1, 3, 6, 9]);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_midway_replaying_the_same_request() {
        let log = Arc::default();
        let start = Instant::now();
        let result = ServiceBuilder::new()
            .layer(RetryLayer::new(no_jitter()))
            .service(flaky(3, Arc::clone(&log)))
            .oneshot("ping".to_owned())
            .await;
        assert_eq!(result, Ok(3));
        assert_eq!(offsets(&log, start), [0, 1, 3]);
        let log = log.lock().unwrap();
        assert!(log.iter().all(|(_, request)| request == "ping"));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_retries_means_one_attempt() {
        let log = Arc::default();
        let result = Retry::new(flaky(0, Arc::clone(&log)), no_jitter().max_retries(0))
            .oneshot("ping".to_owned())
            .await;
        assert_eq!(result, Err(1));
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_the_predicate_picks() {
        // An `Ok` 503 is retried; an `Err` is final.
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let statuses = [503_u16, 503, 200];
        let svc = service_fn(move |_: ()| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            ready(Ok::<_, &str>(statuses[n]))
        });
        let on_503 = |outcome: &Result<u16, &str>| matches!(outcome, Ok(503));
        let layer = RetryLayer::new(no_jitter()).predicate(on_503);
        let result = ServiceBuilder::new()
            .layer(layer.clone())
            .service(svc)
            .oneshot(())
            .await;
        assert_eq!(result, Ok(200));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let svc = service_fn(move |_: ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            ready(Err::<u16, _>("bad request"))
        });
        let result = ServiceBuilder::new()
            .layer(layer)
            .service(svc)
            .oneshot(())
            .await;
        assert_eq!(result, Err("bad request"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn default_predicate_does_not_retry_success() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let svc = service_fn(move |_: ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            ready(Ok::<_, Infallible>("fine"))
        });
        let result = Retry::new(svc, no_jitter()).oneshot(()).await;
        assert_eq!(result, Ok("fine"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_the_replay_refuses_is_sent_once() {
        let log = Arc::default();
        // Requests starting with "once" cannot be replayed.
        let replay = |r: &String| (!r.starts_with("once")).then(|| r.clone());
        let layer = RetryLayer::new(no_jitter().max_retries(2)).replay(replay);
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(flaky(0, Arc::clone(&log)));
        assert_eq!(svc.clone().oneshot("once".to_owned()).await, Err(1));
        assert_eq!(svc.oneshot("twice".to_owned()).await, Err(4));
        let log = log.lock().unwrap();
        let sent: Vec<&str> = log.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(sent, ["once", "twice", "twice", "twice"]);
    }

    /// Retries `Ok(503)`; the response is `(status, retry_after_secs)` and a non-zero second
    /// field is the wait the outcome asks for.
    #[derive(Clone)]
    struct HintPredicate;

    impl RetryPredicate<(u16, u64), ()> for HintPredicate {
        fn should_retry(&self, outcome: &Result<(u16, u64), ()>) -> bool {
            matches!(outcome, Ok((503, _)))
        }
        fn retry_after(&self, outcome: &Result<(u16, u64), ()>) -> Option<Duration> {
            match outcome {
                Ok((_, secs)) if *secs > 0 => Some(Duration::from_secs(*secs)),
                _ => None,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_replaces_the_delay_and_one_past_the_cap_ends_the_retries() {
        let answers = Arc::new(Mutex::new(vec![(503_u16, 7_u64), (503, 0), (200, 0)]));
        let source = Arc::clone(&answers);
        let svc = service_fn(move |_: ()| {
            let next = source.lock().unwrap().remove(0);
            ready(Ok::<_, ()>(next))
        });
        let start = Instant::now();
        let policy = no_jitter().max_delay(Duration::from_secs(10));
        let result = Retry::new(svc, policy)
            .predicate(HintPredicate)
            .oneshot(())
            .await;
        assert_eq!(result, Ok((200, 0)));
        // 7 s as asked, then the policy's second delay (2 s).
        assert_eq!(start.elapsed(), Duration::from_secs(9));

        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let svc = service_fn(move |_: ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            ready(Ok::<_, ()>((503_u16, 60_u64)))
        });
        let result = Retry::new(svc, policy)
            .predicate(HintPredicate)
            .oneshot(())
            .await;
        assert_eq!(
            result,
            Ok((503, 60)),
            "asked for 60 s, cap is 10 s: give up"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_delays_stay_within_bounds() {
        let log = Arc::default();
        let start = Instant::now();
        let policy = RetryPolicy::default().max_delay(Duration::from_secs(5));
        let _ = Retry::new(flaky(0, Arc::clone(&log)), policy)
            .oneshot("ping".to_owned())
            .await;
        let log = log.lock().unwrap();
        let mut previous = start;
        for (i, (at, _)) in log.iter().enumerate().skip(1) {
            let gap = (*at - previous).as_secs_f64();
            let nominal = 2f64.powi(i32::try_from(i).unwrap() - 1).min(5.0);
            // The timer rounds deadlines up to the next millisecond.
            assert!(gap >= nominal * 0.75 - 1e-9, "retry {i}: {gap}s");
            assert!(
                gap <= (nominal * 1.25).min(5.0) + 0.001,
                "retry {i}: {gap}s"
            );
            previous = *at;
        }
        assert_eq!(log.len(), 6);
    }

    /// A service that must be polled ready before every call, like a real connection pool;
    /// clones start out not ready.
    #[derive(Debug)]
    struct Strict {
        ready: bool,
        calls: Arc<AtomicUsize>,
        unready_calls: Arc<AtomicUsize>,
    }

    impl Clone for Strict {
        fn clone(&self) -> Self {
            Self {
                ready: false,
                calls: Arc::clone(&self.calls),
                unready_calls: Arc::clone(&self.unready_calls),
            }
        }
    }

    impl Service<()> for Strict {
        type Response = ();
        type Error = ();
        type Future = Ready<Result<(), ()>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: ()) -> Self::Future {
            if !std::mem::take(&mut self.ready) {
                self.unready_calls.fetch_add(1, Ordering::SeqCst);
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            ready(Err(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_calls_a_ready_service() {
        let strict = Strict {
            ready: false,
            calls: Arc::default(),
            unready_calls: Arc::default(),
        };
        let (calls, unready_calls) = (Arc::clone(&strict.calls), Arc::clone(&strict.unready_calls));
        let mut svc = Retry::new(strict, no_jitter().max_retries(3));
        for _ in 0..2 {
            let result = svc.ready().await.unwrap().call(()).await;
            assert_eq!(result, Err(()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 8);
        assert_eq!(unready_calls.load(Ordering::SeqCst), 0);
    }
}
