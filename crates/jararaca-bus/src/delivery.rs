//! [`Delivery`]: a message handed to a handler, as an [`Envelope`].

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jararaca_di::{Envelope, UnitKind};
use serde::de::DeserializeOwned;

use crate::BusError;
use crate::headers::{HeaderValue, Headers, retry_count};
use crate::worker::AckHandle;

/// A delivered message: the request type of every message handler.
///
/// It implements [`Envelope`], so the same interceptor layers that wrap HTTP routes
/// ([`ScopeLayer`](jararaca_di::ScopeLayer), [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer),
/// [`BusLayer`](crate::BusLayer), …) wrap handlers. Headers are AMQP values, not HTTP
/// headers.
pub struct Delivery {
    pub(crate) body: Arc<Vec<u8>>,
    pub(crate) headers: Arc<Headers>,
    pub(crate) message_id: Option<String>,
    pub(crate) routing_key: String,
    pub(crate) redelivered: bool,
    pub(crate) topic: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) extensions: http::Extensions,
    pub(crate) settle: Arc<Settle>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("message_id", &self.message_id)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery built by hand, to call a handler service in a test. Acknowledging it
    /// early does nothing.
    pub fn new(topic: &str, queue: &str, body: impl Into<Vec<u8>>, headers: Headers) -> Self {
        Self {
            body: Arc::new(body.into()),
            headers: Arc::new(headers),
            message_id: None,
            routing_key: crate::message::topic_routing_key(topic),
            redelivered: false,
            topic: Arc::from(topic),
            queue: Arc::from(queue),
            extensions: http::Extensions::new(),
            settle: Arc::new(Settle::default()),
        }
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body decoded as `M` (JSON). The worker dead-letters a message whose handler
    /// returns this error at once, without retries: it would never decode.
    pub fn payload<M: DeserializeOwned>(&self) -> Result<M, PayloadError> {
        serde_json::from_slice(&self.body).map_err(|source| PayloadError {
            type_name: std::any::type_name::<M>(),
            source,
        })
    }

    /// The AMQP headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// One header.
    pub fn header_value(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// The AMQP message id.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        &self.routing_key
    }

    /// Whether the broker delivered it before (a worker stopped or died holding it).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The topic of the handler it was delivered to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue it was consumed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// How many times it was retried before (`x-retry-count`).
    pub fn retry_count(&self) -> u32 {
        retry_count(&self.headers)
    }

    /// The attempt this is, from 1 (the reference's `processing_attempt`).
    pub fn attempt(&self) -> u32 {
        self.retry_count().saturating_add(1)
    }

    /// Acknowledges the message now, while the handler keeps running (the reference's
    /// `ack()`). What the handler does afterwards can no longer retry or dead-letter it.
    ///
    /// Fails with [`BusError::NotSettled`] when RabbitMQ's client reports that the
    /// acknowledgement had no effect (the channel closed: the broker delivers the message
    /// again), and with [`BusError::Amqp`](crate::BusError) when sending it failed.
    pub async fn ack_now(&self) -> Result<(), BusError> {
        match self.settle.take() {
            Some(handle) => handle.ack_now().await,
            None => Ok(()),
        }
    }
}

impl Envelope for Delivery {
    fn kind(&self) -> UnitKind {
        UnitKind::Message
    }

    fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers.get(name).and_then(HeaderValue::as_text)
    }
}

/// Who settles a delivery: the worker, unless the handler acknowledged early.
#[derive(Default)]
pub(crate) struct Settle {
    handle: Mutex<Option<AckHandle>>,
}

impl Settle {
    pub(crate) fn new(handle: AckHandle) -> Self {
        Self {
            handle: Mutex::new(Some(handle)),
        }
    }

    pub(crate) fn take(&self) -> Option<AckHandle> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The body does not decode as the handler's message type.
#[derive(Debug, thiserror::Error)]
#[error("the message body is not a valid `{type_name}`: {source}")]
pub struct PayloadError {
    type_name: &'static str,
    #[source]
    source: serde_json::Error,
}

/// A handler's explicit decision about its message, returned as its error
/// (`return Err(Disposition::Reject.into())`).
///
/// Like any error, it fails the unit of work: nothing the handler staged is published.
/// To acknowledge early and carry on, use [`Delivery::ack_now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Disposition {
    /// Dead-letter it now (the reference's `reject()`).
    #[error("the handler rejected the message")]
    Reject,
    /// Put it back on its queue at once (the reference's `nack()`). Unlike the reference,
    /// this counts against the retry budget, so a message cannot loop forever.
    #[error("the handler requeued the message")]
    Nack,
    /// Retry it after the policy's backoff (the reference's `retry()`).
    #[error("the handler asked for a retry")]
    Retry,
    /// Retry it after this delay (the reference's `retry_later(delay)`).
    #[error("the handler asked for a retry in {0:?}")]
    RetryLater(Duration),
}
