//! Delayed messages and retries: the stored form, the stores and the pump that publishes
//! them when due.
//!
//! The stored form is the reference's `DelayedMessageData`, field for field, so Rust and
//! Python beats pump each other's messages from one Redis. Two optional fields are this
//! crate's own and written only when needed (pydantic ignores unknown fields):
//! `payload_encoding` (`"base64"` for a body that is not UTF-8) and `unroutable_attempts`
//! (how often the pump found no queue for it).

mod memory;
mod pump;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use self::memory::InMemoryStore;
pub use self::pump::{
    CLAIM_LEASE_SECS, DEFAULT_BATCH_SIZE, FAILED_DISPATCH_DELAY_SECS, PUT_BACK_ATTEMPTS,
    UNROUTABLE_REASON, UNROUTABLE_RETRIES, pump_due, run_pump,
};
#[cfg(feature = "redis")]
pub use self::redis::{DELAYED_MESSAGES_KEY, IN_FLIGHT_KEY, METADATA_KEY_PREFIX, RedisStore};
use crate::bus::unix_seconds;
use crate::headers::Headers;
use crate::{BusError, Message, Outgoing, Route};

/// What to do with the payload when a message with the same idempotency key is stored again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadPolicy {
    /// Keep the payload already stored (`SET NX`).
    #[default]
    Ignore,
    /// Overwrite it.
    Replace,
}

/// What to do with the dispatch time when a message with the same idempotency key is stored
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimePolicy {
    /// Use the new time.
    #[default]
    Replace,
    /// Keep the later of the two (`ZADD GT`).
    Greater,
    /// Keep the earlier of the two (`ZADD LT`).
    Lesser,
}

/// A message waiting for its dispatch time: the reference's `DelayedMessageData`, with the
/// same JSON field names and order.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedMessage {
    /// The topic; the message goes to `"<topic>.#"` on the main exchange unless
    /// `target_queue` is set.
    pub message_topic: String,
    /// Makes storing idempotent (the id in the store); `None` gets a fresh uuid.
    pub idempotency_key: Option<String>,
    /// When to send, in Unix seconds.
    pub dispatch_time: i64,
    /// The body, as a JSON string (the body's text, not a nested object).
    pub payload: String,
    /// The headers to send with it (primitive values).
    #[serde(with = "json_headers")]
    pub headers: Headers,
    /// Straight into this queue through the default exchange (handler retries).
    pub target_queue: Option<String>,
    /// The AMQP message id to send with.
    pub message_id: Option<String>,
    /// The AMQP content type to send with.
    pub content_type: Option<String>,
    /// The payload policy for a repeated idempotency key.
    pub payload_policy: PayloadPolicy,
    /// The time policy for a repeated idempotency key.
    pub time_policy: TimePolicy,
    /// The AMQP content encoding to send with.
    pub content_encoding: Option<String>,
    /// How `payload` encodes the body: absent for UTF-8 text (the reference's form, and the
    /// only one Python writes), `"base64"` for a body that is not UTF-8. Set by
    /// [`set_body`](Self::set_body), read by [`body`](Self::body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_encoding: Option<String>,
    /// How many times the pump found no queue for it (see [`pump_due`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unroutable_attempts: Option<u32>,
}

/// The `payload_encoding` of a body stored as base64.
pub const BASE64_PAYLOAD: &str = "base64";

impl fmt::Debug for DelayedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedMessage")
            .field("message_topic", &self.message_topic)
            .field("idempotency_key", &self.idempotency_key)
            .field("dispatch_time", &self.dispatch_time)
            .field("target_queue", &self.target_queue)
            .field("payload", &self.payload)
            .field("payload_encoding", &self.payload_encoding)
            .finish_non_exhaustive()
    }
}

mod json_headers {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::headers::{HeaderValue, Headers};

    pub(super) fn serialize<S: Serializer>(headers: &Headers, s: S) -> Result<S::Ok, S::Error> {
        headers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        let map = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
        Ok(map
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_json(v)))
            .collect())
    }
}

impl DelayedMessage {
    /// `message` to be sent at `at`, with a message id of its own (the reference drops the
    /// id of delayed messages; keeping one lets consumers deduplicate).
    pub fn of<M: Message>(message: &M, at: SystemTime) -> Result<Self, BusError> {
        let outgoing = Outgoing::message(message)?;
        let mut delayed = Self {
            message_topic: M::TOPIC.to_string(),
            idempotency_key: None,
            dispatch_time: unix_seconds(at),
            payload: String::new(),
            headers: outgoing.headers,
            target_queue: None,
            message_id: outgoing.message_id,
            content_type: None,
            payload_policy: PayloadPolicy::default(),
            time_policy: TimePolicy::default(),
            content_encoding: None,
            payload_encoding: None,
            unroutable_attempts: None,
        };
        delayed.set_body(&outgoing.body);
        Ok(delayed)
    }

    /// Stores `body` as the payload: as its text when it is UTF-8 (the reference's form, so
    /// a Python beat sends the same bytes), otherwise as base64 with `payload_encoding:
    /// "base64"`, so no byte is lost. A Python beat does not know that field: it would send
    /// such a payload as its base64 text, so pump binary bodies with a Rust pump.
    pub fn set_body(&mut self, body: &[u8]) {
        match std::str::from_utf8(body) {
            Ok(text) => {
                self.payload = text.to_string();
                self.payload_encoding = None;
            }
            Err(_) => {
                self.payload = BASE64.encode(body);
                self.payload_encoding = Some(BASE64_PAYLOAD.to_string());
            }
        }
    }

    /// The body to publish, decoded from the payload per `payload_encoding`.
    pub fn body(&self) -> Result<Vec<u8>, BusError> {
        let corrupt = |reason: String| BusError::CorruptDelayedMessage {
            id: self
                .idempotency_key
                .clone()
                .or_else(|| self.message_id.clone())
                .unwrap_or_else(|| self.message_topic.clone()),
            reason,
        };
        match self.payload_encoding.as_deref() {
            None => Ok(self.payload.clone().into_bytes()),
            Some(BASE64_PAYLOAD) => BASE64
                .decode(&self.payload)
                .map_err(|e| corrupt(format!("its base64 payload cannot be decoded: {e}"))),
            Some(other) => Err(corrupt(format!(
                "unknown payload_encoding `{other}` (only `{BASE64_PAYLOAD}` is known)"
            ))),
        }
    }

    /// Makes storing idempotent under `key`, with the given policies for a repeated key.
    #[must_use]
    pub fn idempotent(
        mut self,
        key: impl Into<String>,
        payload: PayloadPolicy,
        time: TimePolicy,
    ) -> Self {
        self.idempotency_key = Some(key.into());
        self.payload_policy = payload;
        self.time_policy = time;
        self
    }

    /// The stored JSON, byte for byte as the reference writes it.
    pub fn to_json(&self) -> String {
        // Only maps with string keys and plain values: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored JSON (written by a Rust or a Python service).
    pub fn from_json(id: &str, json: &[u8]) -> Result<Self, BusError> {
        serde_json::from_slice(json).map_err(|e| BusError::CorruptDelayedMessage {
            id: id.to_string(),
            reason: e.to_string(),
        })
    }

    /// The message as it is published when due: persistent (the reference sends these
    /// non-persistent, which loses them when the broker restarts) and `mandatory`, so a
    /// message no queue takes is reported instead of dropped by the broker. Fails only when
    /// a stored payload cannot be decoded.
    pub fn to_outgoing(&self) -> Result<Outgoing, BusError> {
        let route = match &self.target_queue {
            Some(queue) => Route::Queue(queue.clone()),
            None => Route::Main(crate::message::topic_routing_key(&self.message_topic)),
        };
        Ok(Outgoing {
            route,
            body: self.body()?,
            headers: self
                .headers
                .iter()
                .filter(|(_, v)| v.is_primitive())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            message_id: self.message_id.clone(),
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            mandatory: true,
            persistent: true,
        })
    }
}

/// Where delayed messages wait: Redis ([`RedisStore`]) across processes, or
/// [`InMemoryStore`] in one process.
pub trait DelayedStore: fmt::Debug + Send + Sync + 'static {
    /// Stores `message` until its dispatch time, following its idempotency policies.
    fn enqueue(&self, message: DelayedMessage) -> BoxFuture<'_, Result<(), BusError>>;

    /// Atomically leases up to `limit` messages due at `now` (Unix seconds) until
    /// `lease_until`: no two callers get the same message while its lease runs. A leased
    /// message stays stored until [`complete`](Self::complete); one whose lease expired (its
    /// pump died before publishing, or before saying so) is due again for any caller.
    /// Leases expired at `now` are reclaimed first.
    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, BusError>>;

    /// Deletes a claimed message: it was published (and confirmed).
    fn complete(&self, id: &str) -> BoxFuture<'_, Result<(), BusError>>;

    /// Ends the lease of a claimed message and stores it again, due at `at`: publishing it
    /// failed.
    fn retry_at(&self, claimed: Claimed, at: i64) -> BoxFuture<'_, Result<(), BusError>>;

    /// Whether the store can be reached now, for a readiness check.
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A message leased by [`DelayedStore::claim_due`], with its store id.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id in the store (the idempotency key, or the id it was stored under).
    pub id: String,
    /// The message.
    pub message: DelayedMessage,
}

/// A fresh store id in the reference's form: a uuid4 with dashes.
pub(crate) fn new_task_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderValue;

    #[test]
    fn json_matches_the_reference_field_for_field() {
        let message = DelayedMessage {
            message_topic: "email.send".into(),
            idempotency_key: None,
            dispatch_time: 1795758783,
            payload: r#"{"to":"delayed@x","fail":false}"#.into(),
            headers: Headers::from([("baggage".to_string(), HeaderValue::from("flow.id=0"))]),
            target_queue: None,
            message_id: None,
            content_type: None,
            payload_policy: PayloadPolicy::Ignore,
            time_policy: TimePolicy::Replace,
            content_encoding: None,
            payload_encoding: None,
            unroutable_attempts: None,
        };
        let expected = r#"{"message_topic":"email.send","idempotency_key":null,"dispatch_time":1795758783,"payload":"{\"to\":\"delayed@x\",\"fail\":false}","headers":{"baggage":"flow.id=0"},"target_queue":null,"message_id":null,"content_type":null,"payload_policy":"ignore","time_policy":"replace","content_encoding":null}"#;
        assert_eq!(message.to_json(), expected);
        assert_eq!(
            DelayedMessage::from_json("x", expected.as_bytes()).unwrap(),
            message
        );
    }

    #[test]
    fn due_messages_route_by_target_queue() {
        let mut message = DelayedMessage::from_json(
            "x",
            br#"{"message_topic":"a.b","dispatch_time":1,"payload":"{}","headers":{"x-retry-count":1},"target_queue":null,"message_id":"m","content_type":null,"idempotency_key":null,"payload_policy":"ignore","time_policy":"replace","content_encoding":null}"#,
        )
        .unwrap();
        assert_eq!(
            message.to_outgoing().unwrap().route,
            Route::Main("a.b.#".into())
        );
        message.target_queue = Some("q".into());
        let out = message.to_outgoing().unwrap();
        assert!(out.mandatory, "a due message no queue takes is reported");
        assert_eq!(out.route, Route::Queue("q".into()));
        assert_eq!(out.message_id.as_deref(), Some("m"));
        assert_eq!(out.headers.get("x-retry-count"), Some(&HeaderValue::Int(1)));
    }

    #[test]
    fn utf8_bodies_keep_the_reference_form_and_binary_bodies_survive() {
        let mut message = DelayedMessage::from_json(
            "x",
            br#"{"message_topic":"a.b","dispatch_time":1,"payload":"{}","headers":{},"target_queue":"q","message_id":"m","content_type":null,"idempotency_key":null,"payload_policy":"ignore","time_policy":"replace","content_encoding":null}"#,
        )
        .unwrap();
        message.set_body("héllo \"quoted\"".as_bytes());
        let json = message.to_json();
        assert!(
            json.contains(r#""payload":"héllo \"quoted\"""#) && !json.contains("payload_encoding"),
            "{json}"
        );
        assert!(json.ends_with(r#""content_encoding":null}"#), "{json}");

        let binary = [0xff, 0x00, 0xfe, b'{', 0x80];
        message.set_body(&binary);
        let json = message.to_json();
        assert!(json.ends_with(r#","payload_encoding":"base64"}"#), "{json}");
        let read = DelayedMessage::from_json("x", json.as_bytes()).unwrap();
        assert_eq!(read.to_outgoing().unwrap().body, binary);

        message.payload_encoding = Some("rot13".into());
        assert!(matches!(
            message.to_outgoing(),
            Err(BusError::CorruptDelayedMessage { .. })
        ));
    }
}
