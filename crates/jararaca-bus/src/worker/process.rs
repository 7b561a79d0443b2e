//! What happens to one delivery: run the handler, then ack, retry or dead-letter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jararaca_di::BoxError;
use jararaca_retry::RetryPolicy;
use tower::ServiceExt;

use super::AckHandle;
use crate::bus::unix_seconds;
use crate::delayed::{DelayedMessage, DelayedStore, PayloadPolicy, TimePolicy};
use crate::delivery::Settle;
use crate::handler::{HandlerOptions, HandlerService};
use crate::headers::{
    DEAD_LETTER_QUEUE, DEAD_LETTER_REASON, HeaderValue, Headers, LAST_ERROR, RETRY_COUNT,
    retry_count,
};
use crate::message::{provide_implicit_headers, trace_headers};
use crate::{Delivery, Disposition, Outgoing, PayloadError, Publisher, Route};

/// The longest `x-last-error` kept, so a huge error message cannot bloat every retry.
const MAX_ERROR_LEN: usize = 2048;

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

/// A handler as the worker runs it.
pub(crate) struct Runtime {
    pub(crate) topic: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) options: HandlerOptions,
    pub(crate) retry: RetryPolicy,
    pub(crate) service: HandlerService,
    pub(crate) store: Arc<dyn DelayedStore>,
    pub(crate) publisher: Arc<dyn Publisher>,
}

/// The handler did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("the handler timed out after {0:?}")]
pub(crate) struct TimedOut(Duration);

impl Runtime {
    /// Runs the handler on `raw` and settles the message. Never panics on bad input and
    /// never leaves a message unsettled: at worst it is requeued.
    pub(crate) async fn process(&self, raw: Raw, handle: AckHandle) {
        let settle = Arc::new(Settle::new(handle));
        let body = Arc::new(raw.body);
        let headers = Arc::new(raw.headers);
        let original = Original {
            body: Arc::clone(&body),
            headers: Arc::clone(&headers),
            message_id: raw.message_id.clone(),
            content_type: raw.content_type,
            content_encoding: raw.content_encoding,
        };
        let implicit = trace_headers(&headers);
        let delivery = Delivery {
            body,
            headers,
            message_id: raw.message_id,
            routing_key: raw.routing_key,
            redelivered: raw.redelivered,
            topic: Arc::clone(&self.topic),
            queue: Arc::clone(&self.queue),
            extensions: http::Extensions::new(),
            settle: Arc::clone(&settle),
        };
        let service = self.service.clone();
        let run = provide_implicit_headers(implicit, service.oneshot(delivery));
        let outcome = match self.options.timeout {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Box::new(TimedOut(limit)) as BoxError),
            },
            None => run.await,
        };
        let Some(handle) = settle.take() else {
            if let Err(error) = outcome {
                tracing::warn!(queue = %self.queue, %error, "handler failed after acknowledging its message early");
            }
            return;
        };
        match outcome {
            Ok(()) => {
                if let Err(error) = handle.ack().await {
                    tracing::warn!(queue = %self.queue, %error, "acknowledging failed; the broker will redeliver");
                }
            }
            Err(error) => self.fail(original, handle, error).await,
        }
    }

    async fn fail(&self, original: Original, handle: AckHandle, error: BoxError) {
        let text = error_text(&error);
        if error.downcast_ref::<PayloadError>().is_some() {
            tracing::warn!(queue = %self.queue, error = %text, "undecodable message; dead-lettering it");
            return self
                .dead_letter(original, handle, "undecodable", &text)
                .await;
        }
        match error.downcast_ref::<Disposition>() {
            Some(Disposition::Reject) => {
                self.dead_letter(original, handle, "rejected", &text).await
            }
            Some(Disposition::Nack) => {
                self.retry(original, handle, &text, Some(Duration::ZERO))
                    .await
            }
            Some(Disposition::Retry) => self.retry(original, handle, &text, None).await,
            Some(Disposition::RetryLater(delay)) => {
                self.retry(original, handle, &text, Some(*delay)).await
            }
            None if self.options.dead_letter_on_error => {
                tracing::warn!(queue = %self.queue, error = %text, "handler failed; dead-lettering (no retries for this handler)");
                self.dead_letter(original, handle, "failed", &text).await
            }
            None => {
                tracing::warn!(queue = %self.queue, error = %text, "handler failed");
                self.retry(original, handle, &text, None).await
            }
        }
    }

    /// Sends a copy with `x-retry-count + 1` back to this handler's queue (at once, or
    /// through the delayed store), then acks the original; dead-letters when the budget is
    /// spent.
    async fn retry(
        &self,
        original: Original,
        handle: AckHandle,
        error: &str,
        delay: Option<Duration>,
    ) {
        let count = retry_count(&original.headers);
        if count >= self.retry.max_retries {
            return self
                .dead_letter(original, handle, "retries-exhausted", error)
                .await;
        }
        let delay = delay.unwrap_or_else(|| self.retry.delay_for(count));
        let mut headers: Headers = original
            .headers
            .iter()
            .filter(|(_, v)| v.is_primitive())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.insert(RETRY_COUNT.to_string(), HeaderValue::from(count + 1));
        headers.insert(LAST_ERROR.to_string(), HeaderValue::from(error));
        let sent = if delay.is_zero() {
            let copy = Outgoing {
                route: Route::Queue(self.queue.to_string()),
                body: original.body.to_vec(),
                headers,
                message_id: original.message_id,
                content_type: original.content_type,
                content_encoding: original.content_encoding,
                mandatory: true,
                persistent: true,
            };
            self.publisher.publish(copy).await
        } else {
            let copy = DelayedMessage {
                message_topic: self.topic.to_string(),
                idempotency_key: None,
                dispatch_time: unix_seconds(SystemTime::now() + delay),
                payload: String::from_utf8_lossy(&original.body).into_owned(),
                headers,
                target_queue: Some(self.queue.to_string()),
                message_id: original.message_id,
                content_type: original.content_type,
                payload_policy: PayloadPolicy::Ignore,
                time_policy: TimePolicy::Replace,
                content_encoding: original.content_encoding,
            };
            self.store.enqueue(copy).await
        };
        match sent {
            Ok(()) => {
                tracing::debug!(queue = %self.queue, retry = count + 1, ?delay, "retry scheduled");
                if let Err(e) = handle.ack().await {
                    tracing::warn!(queue = %self.queue, error = %e, "acknowledging a retried message failed; it may run once more");
                }
            }
            Err(e) => {
                tracing::error!(queue = %self.queue, error = %e, "scheduling a retry failed; requeueing the message");
                if let Err(e) = handle.requeue().await {
                    tracing::warn!(queue = %self.queue, error = %e, "requeueing failed; the broker will redeliver");
                }
            }
        }
    }

    /// Publishes a copy with the reason to the dead-letter exchange and acks the original;
    /// if that fails, rejects it so the broker dead-letters it (without the reason).
    async fn dead_letter(&self, original: Original, handle: AckHandle, reason: &str, error: &str) {
        let mut headers = Headers::clone(&original.headers);
        headers.retain(|name, _| {
            name != "x-death"
                && !name.starts_with("x-first-death-")
                && !name.starts_with("x-last-death-")
        });
        headers.insert(LAST_ERROR.to_string(), HeaderValue::from(error));
        headers.insert(DEAD_LETTER_REASON.to_string(), HeaderValue::from(reason));
        headers.insert(
            DEAD_LETTER_QUEUE.to_string(),
            HeaderValue::from(&*self.queue),
        );
        let copy = Outgoing {
            route: Route::DeadLetter,
            body: original.body.to_vec(),
            headers,
            message_id: original.message_id,
            content_type: original.content_type,
            content_encoding: original.content_encoding,
            mandatory: true,
            persistent: true,
        };
        let result = match self.publisher.publish(copy).await {
            Ok(()) => handle.ack().await,
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "publishing to the dead-letter exchange failed; rejecting instead");
                handle.reject().await
            }
        };
        if let Err(e) = result {
            tracing::warn!(queue = %self.queue, error = %e, "settling a dead-lettered message failed; the broker will redeliver");
        }
    }
}

struct Original {
    body: Arc<Vec<u8>>,
    headers: Arc<Headers>,
    message_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
}

fn error_text(error: &BoxError) -> String {
    let mut text = error.to_string();
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
