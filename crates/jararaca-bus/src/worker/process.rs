//! What happens to one delivery: run the handler's pipeline, then carry out its
//! [`Settlement`]: ack, retry or dead-letter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jararaca_di::trace::AsyncBoundary;
use jararaca_di::{BoxError, CatchPanic, CatchPanicLayer};
use jararaca_retry::RetryPolicy;
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower::timeout::{Timeout, TimeoutLayer};
use tower::util::Either;
use tracing::Instrument;

use super::ack::{AckHandle, Acker, InFlight};
use crate::bus::unix_seconds;
use crate::delayed::{DelayedMessage, DelayedStore, PayloadPolicy, TimePolicy};
use crate::delivery::Settle;
use crate::handler::HandlerService;
use crate::headers::{
    DEAD_LETTER_QUEUE, DEAD_LETTER_REASON, HeaderValue, Headers, LAST_ERROR, RETRY_COUNT,
    retry_count,
};
use crate::message::{provide_implicit_headers, trace_headers};
use crate::settle::{DeadLetterReason, SettleLayer, SettlePolicy, SettleService, Settlement};
use crate::{Delivery, Handler, Outgoing, Publisher, Route};

/// A message as it came off a queue, before it becomes a [`Delivery`].
pub(crate) struct Raw {
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Headers,
    pub(crate) message_id: Option<String>,
    pub(crate) routing_key: String,
    pub(crate) redelivered: bool,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
}

/// The worker's policy around every handler: settle the result, catch a panic, bound the
/// time. Built once per handler; the handler itself was boxed once when registered.
pub(crate) type Pipeline =
    SettleService<CatchPanic<Either<Timeout<HandlerService>, HandlerService>>>;

/// A handler as the worker runs it.
pub(crate) struct Runtime {
    pub(crate) topic: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) policy: SettlePolicy,
    pipeline: Pipeline,
    store: Arc<dyn DelayedStore>,
    publisher: Arc<dyn Publisher>,
    /// How a delivery's span relates to its publisher's.
    boundary: AsyncBoundary,
    /// Its deliveries not settled yet.
    pub(crate) in_flight: Arc<InFlight>,
    /// Set when the worker itself is dropped: its connection goes with it, so abandoned
    /// deliveries are left to the broker's redelivery rather than copied (a copy sent while
    /// the connection closes could not be followed by the original's ack).
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) torn_down: std::sync::atomic::AtomicBool,
}

/// The message as it arrived, kept to build retries and dead letters from.
pub(crate) struct Original {
    pub(crate) body: Arc<Vec<u8>>,
    pub(crate) headers: Arc<Headers>,
    message_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
}

impl Original {
    /// Its primitive headers with `x-retry-count = count` and `x-last-error = error`.
    pub(crate) fn retry_headers(&self, count: u32, error: &str) -> Headers {
        let mut headers: Headers = self
            .headers
            .iter()
            .filter(|(_, v)| v.is_primitive())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.insert(RETRY_COUNT.to_string(), HeaderValue::from(count));
        headers.insert(LAST_ERROR.to_string(), HeaderValue::from(error));
        headers
    }

    /// Its headers without the broker's death records, with the reason, error and queue.
    pub(crate) fn dead_letter_headers(
        &self,
        reason: DeadLetterReason,
        error: &str,
        queue: &str,
    ) -> Headers {
        let mut headers = Headers::clone(&self.headers);
        headers.retain(|name, _| {
            name != "x-death"
                && !name.starts_with("x-first-death-")
                && !name.starts_with("x-last-death-")
        });
        headers.insert(LAST_ERROR.to_string(), HeaderValue::from(error));
        headers.insert(
            DEAD_LETTER_REASON.to_string(),
            HeaderValue::from(reason.as_str()),
        );
        headers.insert(DEAD_LETTER_QUEUE.to_string(), HeaderValue::from(queue));
        headers
    }

    /// A persistent, mandatory copy with other headers.
    fn copy(&self, route: Route, headers: Headers) -> Outgoing {
        Outgoing {
            route,
            body: self.body.to_vec(),
            headers,
            message_id: self.message_id.clone(),
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            mandatory: true,
            persistent: true,
        }
    }
}

/// One call through the pipeline. A plain function, so the future's `Send` is proven once
/// for the concrete types here rather than inside `process` (where the compiler cannot see
/// it through the pipeline's `Into<BoxError>` bounds).
fn call(
    pipeline: Pipeline,
    delivery: Delivery,
) -> impl std::future::Future<Output = Result<Settlement, BoxError>> + Send + 'static {
    pipeline.oneshot(delivery)
}

/// Puts the handle back in reach of its drop when the processing future is dropped, so an
/// abandoned delivery is settled at once rather than when the last `Delivery` goes away.
struct SettleOnDrop(Arc<Settle>);

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

impl Runtime {
    pub(crate) fn new(
        handler: Handler,
        default_retry: &RetryPolicy,
        store: &Arc<dyn DelayedStore>,
        publisher: &Arc<dyn Publisher>,
    ) -> Self {
        let policy = SettlePolicy::for_handler(&handler.options, default_retry);
        let pipeline = ServiceBuilder::new()
            .layer(SettleLayer::new(policy))
            .layer(CatchPanicLayer::new())
            .option_layer(handler.options.timeout.map(TimeoutLayer::new))
            .service(handler.service);
        Self {
            topic: Arc::from(handler.topic.as_str()),
            queue: Arc::from(handler.queue.as_str()),
            policy,
            pipeline,
            store: Arc::clone(store),
            publisher: Arc::clone(publisher),
            boundary: handler
                .options
                .trace_boundary
                .unwrap_or_else(AsyncBoundary::from_env),
            in_flight: Arc::default(),
            torn_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs the handler on `raw` and settles the message. Never panics on bad input or a
    /// panicking handler and never leaves a message unsettled: dropped half-way, it is
    /// requeued with the attempt counted.
    pub(crate) async fn process(self: Arc<Self>, raw: Raw, acker: Acker) {
        let body = Arc::new(raw.body);
        let headers = Arc::new(raw.headers);
        let original = Arc::new(Original {
            body: Arc::clone(&body),
            headers: Arc::clone(&headers),
            message_id: raw.message_id.clone(),
            content_type: raw.content_type,
            content_encoding: raw.content_encoding,
        });
        let settle = Arc::new(Settle::new(AckHandle::new(
            acker,
            &self,
            Arc::clone(&original),
        )));
        let _abandon = SettleOnDrop(Arc::clone(&settle));
        let implicit = trace_headers(&headers);
        let (span, trace) =
            crate::trace::deliver(self.boundary, &self.topic, &self.queue, &headers);
        let mut extensions = http::Extensions::new();
        extensions.insert(trace);
        let delivery = Delivery {
            body,
            headers,
            message_id: raw.message_id,
            routing_key: raw.routing_key,
            redelivered: raw.redelivered,
            topic: Arc::clone(&self.topic),
            queue: Arc::clone(&self.queue),
            extensions,
            settle: Arc::clone(&settle),
        };
        let run = provide_implicit_headers(implicit, call(self.pipeline.clone(), delivery))
            .instrument(span);
        let settlement = match run.await {
            Ok(settlement) => settlement,
            // The handler was not ready to take it.
            Err(error) => self
                .policy
                .decide(&Err::<(), BoxError>(error), retry_count(&original.headers)),
        };
        let Some(handle) = settle.take() else {
            if let Settlement::Retry { error, .. } | Settlement::DeadLetter { error, .. } =
                &settlement
            {
                tracing::warn!(queue = %self.queue, %error, "handler failed after acknowledging its message early");
            }
            return;
        };
        if let Err(error) = self.execute(settlement, &original, handle).await {
            tracing::warn!(queue = %self.queue, %error, "settling a message failed; the broker delivers it again");
        }
    }

    /// Carries out `settlement` on the transport.
    async fn execute(
        &self,
        settlement: Settlement,
        original: &Original,
        handle: AckHandle,
    ) -> Result<(), crate::BusError> {
        match settlement {
            Settlement::Ack => handle.ack().await,
            Settlement::Retry { delay, error } => {
                tracing::warn!(queue = %self.queue, %error, ?delay, "handler failed; retrying");
                self.retry(original, handle, &error, delay).await
            }
            Settlement::DeadLetter { reason, error } => {
                tracing::warn!(queue = %self.queue, %reason, %error, "dead-lettering a message");
                self.dead_letter(original, handle, reason, &error).await
            }
        }
    }

    /// Sends a copy with `x-retry-count + 1` back to this handler's queue (at once, or
    /// through the delayed store), then acks the original; requeues it if that fails.
    async fn retry(
        &self,
        original: &Original,
        handle: AckHandle,
        error: &str,
        delay: Duration,
    ) -> Result<(), crate::BusError> {
        let count = retry_count(&original.headers);
        let headers = original.retry_headers(count.saturating_add(1), error);
        let sent = if delay.is_zero() {
            let copy = original.copy(Route::Queue(self.queue.to_string()), headers);
            self.publisher.publish(copy).await
        } else {
            let now = unix_seconds(SystemTime::now());
            let wait = i64::try_from(delay.as_secs()).unwrap_or(i64::MAX);
            let mut copy = DelayedMessage {
                message_topic: self.topic.to_string(),
                idempotency_key: None,
                dispatch_time: now.saturating_add(wait),
                payload: String::new(),
                headers,
                target_queue: Some(self.queue.to_string()),
                message_id: original.message_id.clone(),
                content_type: original.content_type.clone(),
                payload_policy: PayloadPolicy::Ignore,
                time_policy: TimePolicy::Replace,
                content_encoding: original.content_encoding.clone(),
                payload_encoding: None,
                unroutable_attempts: None,
            };
            // Binary-safe: a body that is not UTF-8 is stored as base64, never mangled.
            copy.set_body(&original.body);
            self.store.enqueue(copy).await
        };
        match sent {
            Ok(()) => {
                tracing::debug!(queue = %self.queue, retry = count + 1, ?delay, "retry scheduled");
                handle.ack().await
            }
            Err(e) => {
                tracing::error!(queue = %self.queue, error = %e, "scheduling a retry failed; requeueing the message");
                handle.requeue().await
            }
        }
    }

    /// Publishes a copy with the reason to the dead-letter exchange and acks the original;
    /// if that fails, rejects it so the broker dead-letters it (without the reason).
    async fn dead_letter(
        &self,
        original: &Original,
        handle: AckHandle,
        reason: DeadLetterReason,
        error: &str,
    ) -> Result<(), crate::BusError> {
        let headers = original.dead_letter_headers(reason, error, &self.queue);
        match self
            .publisher
            .publish(original.copy(Route::DeadLetter, headers))
            .await
        {
            Ok(()) => handle.ack().await,
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "publishing to the dead-letter exchange failed; rejecting instead");
                handle.reject().await
            }
        }
    }

    /// Settles a RabbitMQ delivery whose handle was dropped undecided: a copy with the
    /// attempt counted goes back to the queue (or to the dead letters once the budget is
    /// spent), then the original is acknowledged; if the copy cannot be sent, the original
    /// is requeued as it is.
    #[cfg(feature = "amqp")]
    pub(crate) async fn settle_abandoned(
        &self,
        acker: lapin::Acker,
        original: &Original,
        settlement: Settlement,
    ) {
        if !acker.usable() {
            // Its channel is gone, so the broker has put it back already.
            tracing::debug!(queue = %self.queue, "an abandoned delivery's channel is closed; the broker requeues it");
            return;
        }
        let copy = match settlement {
            Settlement::DeadLetter { reason, error } => original.copy(
                Route::DeadLetter,
                original.dead_letter_headers(reason, &error, &self.queue),
            ),
            Settlement::Retry { error, .. } => original.copy(
                Route::Queue(self.queue.to_string()),
                original.retry_headers(retry_count(&original.headers).saturating_add(1), &error),
            ),
            // Nothing to redo.
            Settlement::Ack => {
                let _ = acker.ack(lapin::options::BasicAckOptions::default()).await;
                return;
            }
        };
        let (handle, result) = match self.publisher.publish(copy).await {
            Ok(()) => (
                "acknowledging",
                acker.ack(lapin::options::BasicAckOptions::default()).await,
            ),
            Err(error) => {
                tracing::warn!(queue = %self.queue, %error, "sending an abandoned delivery's copy failed; requeueing the original");
                (
                    "requeueing",
                    acker
                        .reject(lapin::options::BasicRejectOptions { requeue: true })
                        .await,
                )
            }
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(queue = %self.queue, operation = handle, "settling an abandoned delivery had no effect (its channel closed); it may run once more")
            }
            Err(error) => {
                tracing::warn!(queue = %self.queue, operation = handle, %error, "settling an abandoned delivery failed; it may run once more")
            }
        }
    }
}
