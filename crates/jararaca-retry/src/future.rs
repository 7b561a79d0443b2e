//! [`ResponseFuture`]: the attempts of one request through [`Retry`](crate::Retry).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::{Replay, RetryPolicy, RetryPredicate};

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Waiting out the backoff delay before the next attempt.
        Sleeping { #[pin] sleep: Sleep },
        // The delay is over; the service must be ready before it is called again.
        Readying,
    }
}

pin_project! {
    /// Response future of [`Retry`](crate::Retry): runs attempts until one is final.
    pub struct ResponseFuture<S, R, P, C = crate::CloneReplay>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // The copy for the next attempt; `None` when the request cannot be sent again.
        request: Option<R>,
        predicate: P,
        replay: C,
        policy: RetryPolicy,
        retries: u32,
    }
}

impl<S, R, P, C> ResponseFuture<S, R, P, C>
where
    S: Service<R>,
{
    /// `service` has just been called with the request, giving `future`; `request` is the
    /// copy kept for a retry.
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Option<R>,
        predicate: P,
        replay: C,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            state: State::Calling { future },
            service,
            request,
            predicate,
            replay,
            policy,
            retries: 0,
        }
    }
}

impl<S, R, P, C> Future for ResponseFuture<S, R, P, C>
where
    S: Service<R>,
    P: RetryPredicate<S::Response, S::Error>,
    C: Replay<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let outcome = ready!(future.poll(cx));
                    if this.request.is_none() || !this.predicate.should_retry(&outcome) {
                        return Poll::Ready(outcome);
                    }
                    if *this.retries >= this.policy.max_retries {
                        tracing::warn!(
                            max_retries = this.policy.max_retries,
                            "retries exhausted, giving up"
                        );
                        return Poll::Ready(outcome);
                    }
                    let delay = match this.predicate.retry_after(&outcome) {
                        Some(asked) if asked > this.policy.max_delay => {
                            tracing::warn!(
                                ?asked,
                                max_delay = ?this.policy.max_delay,
                                "asked to wait longer than the longest delay, giving up"
                            );
                            return Poll::Ready(outcome);
                        }
                        Some(asked) => asked,
                        None => this.policy.delay_for(*this.retries),
                    };
                    *this.retries += 1;
                    tracing::debug!(
                        attempt = *this.retries,
                        max_retries = this.policy.max_retries,
                        ?delay,
                        "retrying"
                    );
                    this.state.set(State::Sleeping {
                        sleep: tokio::time::sleep(delay),
                    });
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    // A service that cannot become ready is broken, not failing one request:
                    // its error ends the retries instead of going through the predicate.
                    ready!(this.service.poll_ready(cx))?;
                    // Copy again for the attempt after this one; a replay that refuses the
                    // second time makes this attempt the last.
                    let kept = this.request.as_ref().and_then(|r| this.replay.replay(r));
                    let Some(request) = std::mem::replace(this.request, kept) else {
                        unreachable!("a retry is only scheduled while a copy is kept")
                    };
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, R, P, C> fmt::Debug for ResponseFuture<S, R, P, C>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Calling { .. } => "calling",
            State::Sleeping { .. } => "sleeping",
            State::Readying => "readying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("retries", &self.retries)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
