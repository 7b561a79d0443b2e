//! The [`Message`] trait and the [`Outgoing`] form every publisher sends.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::futures::TaskLocalFuture;

use crate::headers::{HeaderValue, Headers, TRACE_HEADERS};
use crate::{BusError, UnitBus};

/// Whether a message is a task (exactly one kind of handler is expected; published as
/// `mandatory`, so an unbound topic is an error) or an event (any number of handlers, none is
/// fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// The reference's `MESSAGE_TYPE = "task"`.
    Task,
    /// The reference's `MESSAGE_TYPE = "event"`.
    Event,
}

impl MessageKind {
    /// `"task"` or `"event"`, as the reference spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Event => "event",
        }
    }
}

/// A message on the bus: a serde type with a topic and a kind.
///
/// The body on the wire is the compact JSON of the value, so keep field names snake_case
/// (serde's default for Rust fields) to read and write the same JSON as Python services.
///
/// ```
/// use jararaca_bus::{Message, MessageKind};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct OrderCreated {
///     order_id: String,
///     customer_name: String,
/// }
///
/// impl Message for OrderCreated {
///     const TOPIC: &'static str = "order.created";
///     const KIND: MessageKind = MessageKind::Event;
/// }
/// # assert_eq!(OrderCreated::TOPIC, "order.created");
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic (the reference's `MESSAGE_TOPIC`), such as `"order.created"`.
    const TOPIC: &'static str;
    /// Task or event (the reference's `MESSAGE_TYPE`).
    const KIND: MessageKind;
    /// How its handlers' spans relate to the publisher's (the reference's `TRACE_BOUNDARY`);
    /// `None` reads `JARARACA_OBSERVABILITY_TRACE_ASYNC_BOUNDARY` (default `link`).
    const TRACE_BOUNDARY: Option<jararaca_di::trace::AsyncBoundary> = None;
}

/// Publishing a [`Message`] from inside a unit of work, in the reference's style:
/// `message.publish().await?`.
///
/// The message is staged in the current unit of work and sent only after it commits, so a
/// failed handler or request publishes nothing. It needs [`BusLayer`](crate::BusLayer)
/// inside a [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer); outside a unit, use
/// [`Bus::publish`](crate::Bus::publish).
pub trait MessageExt: Message {
    /// Stages the message for publishing after the current unit of work commits.
    fn publish(&self) -> impl Future<Output = Result<(), BusError>> + Send {
        let staged = UnitBus::current().and_then(|bus| bus.publish(self));
        async move { staged }
    }

    /// Stages the message for delivery `delay` after the current unit of work commits.
    fn delay(&self, delay: Duration) -> impl Future<Output = Result<(), BusError>> + Send {
        let staged = UnitBus::current().and_then(|bus| bus.delay(self, delay));
        async move { staged }
    }

    /// Stages the message for delivery at `at` (any `SystemTime`; a `chrono::DateTime<Utc>`
    /// converts into one), after the current unit of work commits.
    fn schedule(&self, at: SystemTime) -> impl Future<Output = Result<(), BusError>> + Send {
        let staged = UnitBus::current().and_then(|bus| bus.schedule(self, at));
        async move { staged }
    }
}

impl<M: Message> MessageExt for M {}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The application's main topic exchange with this routing key (messages use
    /// `"<topic>.#"`, scheduled-action triggers their action id).
    Main(String),
    /// Straight into one queue, through the default exchange (retries, delayed retries,
    /// requeues from the dead-letter queue).
    Queue(String),
    /// The dead-letter exchange (`dlx`, routing key `dlx`).
    DeadLetter,
}

/// A message as a publisher sends it: routing, body and properties.
#[derive(Clone, PartialEq)]
pub struct Outgoing {
    /// Where it goes.
    pub route: Route,
    /// The body: compact JSON for messages.
    pub body: Vec<u8>,
    /// AMQP headers.
    pub headers: Headers,
    /// The AMQP `message_id` (a uuid4 as 32 hex digits for new messages).
    pub message_id: Option<String>,
    /// The AMQP `content_type`.
    pub content_type: Option<String>,
    /// The AMQP `content_encoding`.
    pub content_encoding: Option<String>,
    /// Whether an unroutable message is an error (true for tasks).
    pub mandatory: bool,
    /// Whether the broker stores it on disk (`delivery_mode` 2).
    pub persistent: bool,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("route", &self.route)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("headers", &self.headers)
            .field("message_id", &self.message_id)
            .field("mandatory", &self.mandatory)
            .field("persistent", &self.persistent)
            .finish_non_exhaustive()
    }
}

/// The routing key the reference publishes a topic with: the literal `"<topic>.#"`.
pub fn topic_routing_key(topic: &str) -> String {
    format!("{topic}.#")
}

/// A new message id in the reference's form: a uuid4 as 32 lower-case hex digits.
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Outgoing {
    /// The wire form of `message`: JSON body, routing key `"<topic>.#"` on the main exchange,
    /// persistent, `mandatory` for tasks, a new message id, and the implicit headers of the
    /// current task (the trace context of the message being handled).
    pub fn message<M: Message>(message: &M) -> Result<Self, BusError> {
        let body = serde_json::to_vec(message).map_err(|source| BusError::Encode {
            topic: M::TOPIC.to_string(),
            source,
        })?;
        Ok(Self {
            route: Route::Main(topic_routing_key(M::TOPIC)),
            body,
            headers: implicit_headers(),
            message_id: Some(new_message_id()),
            content_type: Some("application/json".to_string()),
            content_encoding: None,
            mandatory: M::KIND == MessageKind::Task,
            persistent: true,
        })
    }

    /// The routing key: the queue name for [`Route::Queue`].
    pub fn routing_key(&self) -> &str {
        match &self.route {
            Route::Main(key) | Route::Queue(key) => key,
            Route::DeadLetter => "dlx",
        }
    }
}

tokio::task_local! {
    static IMPLICIT: Headers;
}

/// Runs `future` with `headers` as the implicit headers that messages published in it carry
/// (the reference's `provide_implicit_headers`). The worker provides the trace context of the
/// message being handled (`traceparent`, `tracestate`, `baggage`), never its retry headers.
pub fn provide_implicit_headers<F: Future>(
    headers: Headers,
    future: F,
) -> TaskLocalFuture<Headers, F> {
    IMPLICIT.scope(headers, future)
}

/// The implicit headers of the current task (empty outside [`provide_implicit_headers`]).
pub fn implicit_headers() -> Headers {
    IMPLICIT.try_with(Headers::clone).unwrap_or_default()
}

/// The headers of `incoming` that travel on to messages published while handling it.
pub(crate) fn trace_headers(incoming: &Headers) -> Headers {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| {
            incoming
                .get(*name)
                .filter(|v| matches!(v, HeaderValue::String(_)))
                .map(|v| ((*name).to_string(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct SendEmail {
        to_address: String,
    }

    impl Message for SendEmail {
        const TOPIC: &'static str = "email.send";
        const KIND: MessageKind = MessageKind::Task;
    }

    #[test]
    fn outgoing_matches_the_reference_wire_form() {
        let out = Outgoing::message(&SendEmail {
            to_address: "a@b".into(),
        })
        .unwrap();
        assert_eq!(out.route, Route::Main("email.send.#".into()));
        assert_eq!(out.body, br#"{"to_address":"a@b"}"#);
        assert!(out.mandatory && out.persistent);
        let id = out.message_id.unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(out.headers.is_empty());
    }

    #[tokio::test]
    async fn implicit_headers_travel_but_retry_headers_do_not() {
        let incoming = Headers::from([
            ("traceparent".to_string(), HeaderValue::from("00-a-b-01")),
            ("x-retry-count".to_string(), HeaderValue::Int(2)),
            ("x-last-error".to_string(), HeaderValue::from("boom")),
        ]);
        let out = provide_implicit_headers(trace_headers(&incoming), async {
            Outgoing::message(&SendEmail {
                to_address: "a@b".into(),
            })
        })
        .await
        .unwrap();
        assert_eq!(
            out.headers,
            Headers::from([("traceparent".to_string(), HeaderValue::from("00-a-b-01"))])
        );
    }
}
