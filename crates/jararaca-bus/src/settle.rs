//! The worker's policy as reusable parts: what a handler's result means for its message.
//!
//! [`SettlePolicy::decide`] maps a unit's `Result<_, BoxError>`, the number of times it was
//! retried before and the handler's options to a [`Settlement`]: acknowledge, retry after a
//! delay, or dead-letter with a reason. [`SettleLayer`] does the same as a tower layer over
//! any [`Envelope`] (the retry count comes from its `x-retry-count` header), so anything that
//! runs `Result<(), BoxError>` units (message handlers, scheduled ticks) can stack
//!
//! ```text
//! SettleLayer → CatchPanicLayer → tower's TimeoutLayer → the handler
//! ```
//!
//! and then carry out the decision on its own transport, as the [`Worker`](crate::Worker)
//! does on RabbitMQ and the in-memory broker.
//!
//! ```
//! use std::time::Duration;
//! use jararaca_bus::{DeadLetterReason, Delivery, Headers, SettleLayer, SettlePolicy, Settlement};
//! use jararaca_di::{BoxError, CatchPanicLayer};
//! use jararaca_retry::RetryPolicy;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let policy = SettlePolicy::new(RetryPolicy::default().max_retries(2).jitter(false));
//! let service = ServiceBuilder::new()
//!     .layer(SettleLayer::new(policy))
//!     .layer(CatchPanicLayer::new())
//!     .timeout(Duration::from_secs(30))
//!     .service(service_fn(|_delivery: Delivery| async {
//!         Err::<(), BoxError>("the database is down".into())
//!     }));
//!
//! let delivery = Delivery::new("job.run", "job.run.app.Jobs.run", "{}", Headers::new());
//! match service.clone().oneshot(delivery).await.unwrap() {
//!     Settlement::Retry { delay, error } => {
//!         assert_eq!(delay, Duration::from_secs(1));
//!         assert_eq!(error, "the database is down");
//!     }
//!     other => panic!("{other:?}"),
//! }
//!
//! // The third failure spends the budget of two retries.
//! let mut headers = Headers::new();
//! headers.insert("x-retry-count".into(), 2u32.into());
//! let delivery = Delivery::new("job.run", "job.run.app.Jobs.run", "{}", headers);
//! assert!(matches!(
//!     service.oneshot(delivery).await.unwrap(),
//!     Settlement::DeadLetter { reason: DeadLetterReason::RetriesExhausted, .. }
//! ));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use jararaca_di::{BoxError, Envelope};
use jararaca_retry::RetryPolicy;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::headers::RETRY_COUNT;
use crate::{Disposition, HandlerOptions, PayloadError};

/// The longest error text kept for `x-last-error`, so a huge message cannot bloat every retry.
pub(crate) const MAX_ERROR_LEN: usize = 2048;

/// Why a message is dead-lettered; its text goes in the `x-dead-letter-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The body does not decode as the handler's message type (`undecodable`).
    Undecodable,
    /// The handler rejected it ([`Disposition::Reject`]) (`rejected`).
    Rejected,
    /// It failed with its retry budget spent (`retries-exhausted`).
    RetriesExhausted,
    /// It failed, and its handler dead-letters failures at once (`failed`).
    Failed,
}

impl DeadLetterReason {
    /// The header text: `undecodable`, `rejected`, `retries-exhausted` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Rejected => "rejected",
            Self::RetriesExhausted => "retries-exhausted",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a message once its unit of work is over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// It was handled: acknowledge it.
    Ack,
    /// Run it again after `delay` (zero: at once): the worker sends a copy with
    /// `x-retry-count + 1` and `x-last-error = error`, then acknowledges the original.
    Retry {
        /// How long to wait first.
        delay: Duration,
        /// The failure, for `x-last-error`.
        error: String,
    },
    /// Give up on it: the worker sends a copy to the dead-letter exchange with
    /// `x-dead-letter-reason = reason` and `x-last-error = error`.
    DeadLetter {
        /// Why.
        reason: DeadLetterReason,
        /// The failure, for `x-last-error`.
        error: String,
    },
}

impl Settlement {
    /// Whether the unit succeeded.
    pub fn is_ack(&self) -> bool {
        matches!(self, Self::Ack)
    }
}

/// Maps a handler's result and its message's retry count to a [`Settlement`].
///
/// * `Ok` → [`Settlement::Ack`];
/// * a [`PayloadError`] → dead-letter (`undecodable`), since it would never decode;
/// * [`Disposition::Reject`] → dead-letter (`rejected`);
/// * [`Disposition::Nack`] / [`Retry`](Disposition::Retry) /
///   [`RetryLater`](Disposition::RetryLater) → retry at once / after the backoff / after the
///   given delay;
/// * any other error (a panic caught by [`CatchPanicLayer`](jararaca_di::CatchPanicLayer), a
///   timeout of tower's `TimeoutLayer`) → retry after the backoff, or dead-letter (`failed`)
///   when the handler dead-letters on error.
///
/// A retry with the budget spent (`retry_count >= max_retries`) is a dead letter
/// (`retries-exhausted`) instead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettlePolicy {
    retry: RetryPolicy,
    dead_letter_on_error: bool,
    timeout: Option<Duration>,
}

impl SettlePolicy {
    /// Retries failures with `retry`'s budget and backoff.
    pub fn new(retry: RetryPolicy) -> Self {
        Self {
            retry,
            dead_letter_on_error: false,
            timeout: None,
        }
    }

    /// The policy of a handler with these options: its own retry policy, else `default_retry`
    /// (the broker URL's `consumer_retry_*`), its dead-letter-on-error switch and its timeout
    /// (named in the error text of a timed-out run).
    pub fn for_handler(options: &HandlerOptions, default_retry: &RetryPolicy) -> Self {
        Self {
            retry: options.retry_policy.unwrap_or(*default_retry),
            dead_letter_on_error: options.dead_letter_on_error,
            timeout: options.timeout,
        }
    }

    /// Dead-letters failures at once instead of retrying them (explicit dispositions still
    /// apply).
    #[must_use]
    pub fn dead_letter_on_error(mut self, yes: bool) -> Self {
        self.dead_letter_on_error = yes;
        self
    }

    /// The retry budget and backoff.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// What `result` means for a message retried `retry_count` times before.
    pub fn decide<T>(&self, result: &Result<T, BoxError>, retry_count: u32) -> Settlement {
        let error = match result {
            Ok(_) => return Settlement::Ack,
            Err(error) => error,
        };
        let text = self.error_text(error);
        if error.is::<PayloadError>() {
            return Settlement::DeadLetter {
                reason: DeadLetterReason::Undecodable,
                error: text,
            };
        }
        match error.downcast_ref::<Disposition>() {
            Some(Disposition::Reject) => Settlement::DeadLetter {
                reason: DeadLetterReason::Rejected,
                error: text,
            },
            Some(Disposition::Nack) => self.retry(retry_count, text, Some(Duration::ZERO)),
            Some(Disposition::Retry) => self.retry(retry_count, text, None),
            Some(Disposition::RetryLater(delay)) => self.retry(retry_count, text, Some(*delay)),
            None if self.dead_letter_on_error => Settlement::DeadLetter {
                reason: DeadLetterReason::Failed,
                error: text,
            },
            None => self.retry(retry_count, text, None),
        }
    }

    /// A retry after `delay` (the backoff's when `None`), or a dead letter once the budget is
    /// spent.
    pub fn retry(&self, retry_count: u32, error: String, delay: Option<Duration>) -> Settlement {
        if retry_count >= self.retry.max_retries {
            return Settlement::DeadLetter {
                reason: DeadLetterReason::RetriesExhausted,
                error,
            };
        }
        Settlement::Retry {
            delay: delay.unwrap_or_else(|| self.retry.delay_for(retry_count)),
            error,
        }
    }

    fn error_text(&self, error: &BoxError) -> String {
        if error.is::<tower::timeout::error::Elapsed>() {
            return match self.timeout {
                Some(limit) => format!("the handler timed out after {limit:?}"),
                None => "the handler timed out".to_string(),
            };
        }
        truncate(error.to_string())
    }
}

/// `text` cut to [`MAX_ERROR_LEN`] bytes at a character boundary.
pub(crate) fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The `x-retry-count` of a unit, as the worker reads it: a non-negative integer, else 0.
fn envelope_retry_count<R: Envelope>(req: &R) -> u32 {
    req.header(RETRY_COUNT)
        .and_then(|text| text.trim().parse::<i64>().ok())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Turns the result of the inner service into a [`Settlement`] with a [`SettlePolicy`].
///
/// Its service answers every call with `Ok(settlement)`; it fails only when the inner
/// service is not ready (`poll_ready`'s error), which the caller can settle with
/// [`SettlePolicy::decide`] too.
#[derive(Debug, Clone, Copy)]
pub struct SettleLayer {
    policy: SettlePolicy,
}

impl SettleLayer {
    /// Settles with `policy`.
    pub fn new(policy: SettlePolicy) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for SettleLayer {
    type Service = SettleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SettleService {
            inner,
            policy: self.policy,
        }
    }
}

/// The service of [`SettleLayer`].
#[derive(Debug, Clone)]
pub struct SettleService<S> {
    inner: S,
    policy: SettlePolicy,
}

impl<S> SettleService<S> {
    /// The policy it settles with.
    pub fn policy(&self) -> &SettlePolicy {
        &self.policy
    }
}

impl<S, R> Service<R> for SettleService<S>
where
    S: Service<R, Error = BoxError>,
    R: Envelope,
{
    type Response = Settlement;
    type Error = BoxError;
    type Future = SettleFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let retry_count = envelope_retry_count(&req);
        SettleFuture {
            inner: self.inner.call(req),
            policy: self.policy,
            retry_count,
        }
    }
}

pin_project! {
    /// The response future of [`SettleService`].
    pub struct SettleFuture<F> {
        #[pin]
        inner: F,
        policy: SettlePolicy,
        retry_count: u32,
    }
}

impl<F> fmt::Debug for SettleFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettleFuture")
            .field("policy", &self.policy)
            .field("retry_count", &self.retry_count)
            .finish_non_exhaustive()
    }
}

impl<F, T> Future for SettleFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<Settlement, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(Ok(this.policy.decide(&result, *this.retry_count)))
    }
}

#[cfg(test)]
mod tests {
    use jararaca_di::{CatchPanicLayer, Panicked};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::{Delivery, HeaderValue, Headers};

    fn policy(max: u32) -> SettlePolicy {
        SettlePolicy::new(
            RetryPolicy::default()
                .max_retries(max)
                .initial_delay(Duration::from_secs(2))
                .backoff_factor(3.0)
                .jitter(false),
        )
    }

    fn err(error: impl Into<BoxError>) -> Result<(), BoxError> {
        Err(error.into())
    }

    fn retry(delay: Duration, error: &str) -> Settlement {
        Settlement::Retry {
            delay,
            error: error.to_string(),
        }
    }

    fn dead(reason: DeadLetterReason, error: &str) -> Settlement {
        Settlement::DeadLetter {
            reason,
            error: error.to_string(),
        }
    }

    #[test]
    fn results_map_to_settlements() {
        let p = policy(2);
        assert_eq!(p.decide(&Ok::<_, BoxError>(()), 5), Settlement::Ack);
        assert_eq!(
            p.decide(&err("boom"), 0),
            retry(Duration::from_secs(2), "boom")
        );
        assert_eq!(
            p.decide(&err("boom"), 1),
            retry(Duration::from_secs(6), "boom")
        );
        assert_eq!(
            p.decide(&err("boom"), 2),
            dead(DeadLetterReason::RetriesExhausted, "boom")
        );
        let rejected = "the handler rejected the message";
        assert_eq!(
            p.decide(&err(Disposition::Reject), 0),
            dead(DeadLetterReason::Rejected, rejected)
        );
        assert_eq!(
            p.decide(&err(Disposition::Nack), 0),
            retry(Duration::ZERO, "the handler requeued the message")
        );
        assert!(matches!(
            p.decide(&err(Disposition::Nack), 2),
            Settlement::DeadLetter {
                reason: DeadLetterReason::RetriesExhausted,
                ..
            }
        ));
        assert!(matches!(
            p.decide(&err(Disposition::RetryLater(Duration::from_secs(9))), 0),
            Settlement::Retry { delay, .. } if delay == Duration::from_secs(9)
        ));
        let payload = Delivery::new("t", "q", "x", Headers::new())
            .payload::<u32>()
            .unwrap_err();
        assert!(matches!(
            p.decide(&err(payload), 0),
            Settlement::DeadLetter {
                reason: DeadLetterReason::Undecodable,
                ..
            }
        ));
        let p = p.dead_letter_on_error(true);
        assert_eq!(
            p.decide(&err("boom"), 0),
            dead(DeadLetterReason::Failed, "boom")
        );
        assert!(
            matches!(
                p.decide(&err(Disposition::Retry), 0),
                Settlement::Retry { .. }
            ),
            "explicit dispositions still apply"
        );
    }

    #[test]
    fn handler_options_pick_the_policy_and_errors_are_cut() {
        let default = RetryPolicy::default().max_retries(7);
        let mut options = HandlerOptions::default();
        assert_eq!(
            SettlePolicy::for_handler(&options, &default)
                .retry_policy()
                .max_retries,
            7
        );
        options.retry_policy = Some(RetryPolicy::default().max_retries(1));
        options.dead_letter_on_error = true;
        let p = SettlePolicy::for_handler(&options, &default);
        assert_eq!(p.retry_policy().max_retries, 1);
        assert!(matches!(
            p.decide(&err("é".repeat(MAX_ERROR_LEN)), 0),
            Settlement::DeadLetter { error, .. } if error.len() == MAX_ERROR_LEN
        ));
    }

    fn delivery(retry_count: Option<HeaderValue>) -> Delivery {
        let mut headers = Headers::new();
        if let Some(count) = retry_count {
            headers.insert(RETRY_COUNT.into(), count);
        }
        Delivery::new("job.run", "q", "{}", headers)
    }

    #[tokio::test]
    async fn the_layer_reads_the_retry_count_and_settles_panics_like_errors() {
        let service = ServiceBuilder::new()
            .layer(SettleLayer::new(policy(2)))
            .layer(CatchPanicLayer::new())
            .service(service_fn(|d: Delivery| async move {
                if d.body() == b"{}" {
                    panic!("kaput");
                }
                Ok::<(), BoxError>(())
            }));
        let panicked = Panicked::from_payload(&"kaput").to_string();
        assert_eq!(
            service.clone().oneshot(delivery(None)).await.unwrap(),
            retry(Duration::from_secs(2), &panicked)
        );
        assert_eq!(
            service
                .clone()
                .oneshot(delivery(Some("1".into())))
                .await
                .unwrap(),
            retry(Duration::from_secs(6), &panicked)
        );
        assert_eq!(
            service
                .oneshot(delivery(Some(HeaderValue::Int(2))))
                .await
                .unwrap(),
            dead(DeadLetterReason::RetriesExhausted, &panicked)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tower_timeouts_are_failures_naming_the_limit() {
        let options = HandlerOptions {
            timeout: Some(Duration::from_millis(300)),
            ..HandlerOptions::default()
        };
        let p = SettlePolicy::for_handler(&options, &RetryPolicy::default().jitter(false));
        let service = ServiceBuilder::new()
            .layer(SettleLayer::new(p))
            .timeout(Duration::from_millis(300))
            .service(service_fn(|_d: Delivery| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), BoxError>(())
            }));
        let settled =
            tokio::time::timeout(Duration::from_secs(10), service.oneshot(delivery(None)))
                .await
                .expect("the timeout fired")
                .unwrap();
        assert_eq!(
            settled,
            retry(Duration::from_secs(1), "the handler timed out after 300ms")
        );
    }
}
