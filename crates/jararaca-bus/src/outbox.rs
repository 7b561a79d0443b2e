//! The transactional outbox, from the bus's side: what a unit writes instead of publishing
//! after its commit, and the relay that publishes what was written.
//!
//! A unit of work that has a database transaction (the `jararaca-query` transaction layer
//! with its `bus` feature) does not publish its messages after the commit: [`UnitBus`]
//! hands them to the unit's [`UnitOutbox`], which writes them as rows inside that same
//! transaction. They are durable exactly when the unit's own changes are. A relay — one per
//! [`OutboxSource`] and [`Bus`], started by the first unit that writes to it or by
//! [`Bus::attach_outbox`] — claims committed rows, publishes them with the publisher's
//! confirms (delayed messages go to the delayed store), and deletes each row only after that.
//!
//! What that guarantees: a committed unit's messages are published **at least once**, with
//! the message id they were given when staged, whatever fails after the commit (the broker is
//! down, the process is killed, the confirm is lost). A relay killed between a publish and its
//! delete leaves the row to be published again (same message id), so consumers that must not
//! act twice deduplicate on it. Several relays on one table do not publish one row twice in
//! normal operation (the source's claim is exclusive); the order of messages is the order of
//! commits within one relay pass, not across relays.
//!
//! [`UnitBus`]: crate::UnitBus

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::future::BoxFuture;
use jararaca_di::UnitOfWork;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::delayed::DelayedMessage;
use crate::headers::{HeaderValue, Headers};
use crate::{Bus, BusError, Outgoing, Route};

/// One message waiting in an outbox: to publish, or to store for later delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxMessage {
    /// Published when relayed.
    Publish(Outgoing),
    /// Stored in the bus's delayed-message store when relayed.
    Delay(DelayedMessage),
}

impl OutboxMessage {
    /// The message id it is published with (stable across re-publication).
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::Publish(outgoing) => outgoing.message_id.as_deref(),
            Self::Delay(delayed) => delayed.message_id.as_deref(),
        }
    }

    /// The stored form: JSON; a body that is not UTF-8 is kept in base64, never altered.
    pub fn encode(&self) -> Vec<u8> {
        let stored = match self {
            Self::Publish(outgoing) => {
                let (body, body_base64) = match std::str::from_utf8(&outgoing.body) {
                    Ok(text) => (Some(text.to_owned()), None),
                    Err(_) => (None, Some(BASE64.encode(&outgoing.body))),
                };
                let (route, to) = match &outgoing.route {
                    Route::Main(key) => (StoredRoute::Main, Some(key.clone())),
                    Route::Queue(queue) => (StoredRoute::Queue, Some(queue.clone())),
                    Route::DeadLetter => (StoredRoute::DeadLetter, None),
                };
                Stored::Publish {
                    route,
                    to,
                    body,
                    body_base64,
                    headers: outgoing
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_json()))
                        .collect(),
                    message_id: outgoing.message_id.clone(),
                    content_type: outgoing.content_type.clone(),
                    content_encoding: outgoing.content_encoding.clone(),
                    mandatory: outgoing.mandatory,
                    persistent: outgoing.persistent,
                }
            }
            Self::Delay(delayed) => Stored::Delay {
                delayed: delayed.to_json(),
            },
        };
        // Only strings, booleans and JSON values: serialization cannot fail.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads the stored form back.
    pub fn decode(bytes: &[u8]) -> Result<Self, BusError> {
        let corrupt = |reason: String| BusError::CorruptOutboxMessage { reason };
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        Ok(match stored {
            Stored::Publish {
                route,
                to,
                body,
                body_base64,
                headers,
                message_id,
                content_type,
                content_encoding,
                mandatory,
                persistent,
            } => {
                let route = match (route, to) {
                    (StoredRoute::Main, Some(key)) => Route::Main(key),
                    (StoredRoute::Queue, Some(queue)) => Route::Queue(queue),
                    (StoredRoute::DeadLetter, _) => Route::DeadLetter,
                    (_, None) => return Err(corrupt("a route without its destination".into())),
                };
                let body = match (body, body_base64) {
                    (Some(text), _) => text.into_bytes(),
                    (None, Some(encoded)) => BASE64
                        .decode(encoded)
                        .map_err(|e| corrupt(format!("the body is not base64: {e}")))?,
                    (None, None) => Vec::new(),
                };
                Self::Publish(Outgoing {
                    route,
                    body,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.clone(), HeaderValue::from_json(v)))
                        .collect::<Headers>(),
                    message_id,
                    content_type,
                    content_encoding,
                    mandatory,
                    persistent,
                })
            }
            Stored::Delay { delayed } => Self::Delay(
                DelayedMessage::from_json("outbox", delayed.as_bytes())
                    .map_err(|e| corrupt(e.to_string()))?,
            ),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Stored {
    Publish {
        route: StoredRoute,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_base64: Option<String>,
        #[serde(default)]
        headers: serde_json::Map<String, serde_json::Value>,
        message_id: Option<String>,
        content_type: Option<String>,
        content_encoding: Option<String>,
        mandatory: bool,
        persistent: bool,
    },
    Delay {
        /// The delayed store's own JSON, as the delayed store keeps it.
        delayed: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredRoute {
    Main,
    Queue,
    DeadLetter,
}

/// The outbox of one unit of work: where [`UnitBus`](crate::UnitBus) puts the unit's
/// messages when the unit has a transaction to write them in. A persistence crate installs
/// it as a unit-local (`unit.local(|| UnitOutbox::new(writer))`).
#[derive(Clone)]
pub struct UnitOutbox {
    writer: Arc<dyn OutboxWriter>,
}

impl fmt::Debug for UnitOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOutbox")
            .field("active", &self.writer.is_active())
            .finish_non_exhaustive()
    }
}

impl UnitOutbox {
    /// The unit's outbox, writing through `writer`.
    pub fn new(writer: Arc<dyn OutboxWriter>) -> Self {
        Self { writer }
    }

    /// The writer.
    pub fn writer(&self) -> &Arc<dyn OutboxWriter> {
        &self.writer
    }
}

/// Writes a unit's messages into its transaction: implemented by a persistence crate.
pub trait OutboxWriter: Send + Sync + 'static {
    /// Whether the unit writes into a transaction: `false` when it opted out of it, and then
    /// its messages are published after the commit instead.
    fn is_active(&self) -> bool;

    /// Adds `message` to the rows written in `unit`'s transaction just before it commits
    /// (beginning one then if the unit ran no statement).
    fn stage(&self, unit: &UnitOfWork, message: OutboxMessage) -> Result<(), BusError>;

    /// Where the relay reads the committed rows.
    fn source(&self) -> Arc<dyn OutboxSource>;
}

/// A table of committed outbox rows that a relay publishes: implemented by a persistence
/// crate.
pub trait OutboxSource: fmt::Debug + Send + Sync + 'static {
    /// Identifies the table: one relay per key and [`Bus`].
    fn key(&self) -> String;

    /// Claims up to `limit` committed rows, oldest first, exclusively: no other claim gets
    /// them until this one completes, is dropped, or (for a lease) expires.
    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Box<dyn OutboxClaim>, BusError>>;

    /// Resolves when a commit in this process wrote rows (the relay also polls, for rows
    /// other processes left behind).
    fn committed(&self) -> BoxFuture<'_, ()>;
}

/// Rows claimed by one relay pass.
pub trait OutboxClaim: Send {
    /// The claimed rows.
    fn rows(&self) -> &[OutboxRow];

    /// Deletes the rows in `done` (their messages were published) and releases the others.
    fn complete(self: Box<Self>, done: Vec<i64>) -> BoxFuture<'static, Result<(), BusError>>;
}

/// One claimed outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The row's key in its table.
    pub seq: i64,
    /// Its message, or why it cannot be read.
    pub message: Result<OutboxMessage, String>,
}

/// How a relay runs.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    /// How many rows one pass claims.
    pub batch_size: usize,
    /// How often the relay looks for rows no commit in this process announced.
    pub poll_interval: Duration,
    /// How long the relay waits after a pass that could not publish.
    pub retry_delay: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// The relays of one [`Bus`], by source key.
#[derive(Default)]
pub(crate) struct Relays {
    running: Mutex<HashMap<String, Running>>,
    options: Mutex<RelayOptions>,
}

struct Running {
    source: Arc<dyn OutboxSource>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Relays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self.lock();
        f.debug_struct("Relays")
            .field("sources", &running.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Relays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_options(&self, options: RelayOptions) {
        *self.options.lock().unwrap_or_else(|e| e.into_inner()) = options;
    }

    pub(crate) fn is_running(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Starts a relay for `source` unless one runs; needs a Tokio runtime.
    pub(crate) fn attach(&self, bus: &Bus, source: Arc<dyn OutboxSource>) {
        let key = source.key();
        let mut running = self.lock();
        if running.contains_key(&key) {
            return;
        }
        let options = *self.options.lock().unwrap_or_else(|e| e.into_inner());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(relay(bus.clone(), Arc::clone(&source), options, stopped));
        tracing::debug!(source = %key, "outbox relay started");
        running.insert(key, Running { source, stop, task });
    }

    /// Publishes what is left within `grace`, then stops every relay.
    pub(crate) async fn drain(&self, bus: &Bus, grace: Duration) {
        let running: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        let batch_size = self
            .options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batch_size;
        for relay in running {
            let _ = relay.stop.send(true);
            // The relay finishes the pass it is in; then this drains the rest.
            let _ = relay.task.await;
            let drained = tokio::time::timeout(grace, async {
                let mut refused = Refused::default();
                loop {
                    match relay_pass(bus, relay.source.as_ref(), batch_size, &mut refused).await {
                        Ok(Pass { claimed: 0, .. }) => return Ok(()),
                        Ok(Pass { failed: 0, .. }) => {}
                        Ok(Pass { failed, .. }) => {
                            return Err(format!("{failed} messages could not be published"));
                        }
                        Err(error) => return Err(error.to_string()),
                    }
                }
            })
            .await;
            match drained {
                Ok(Ok(())) => tracing::debug!(source = %relay.source.key(), "outbox drained"),
                Ok(Err(error)) => {
                    tracing::warn!(source = %relay.source.key(), %error, "the outbox could not be drained before stopping; its rows stay and are published by the next relay")
                }
                Err(_) => {
                    tracing::warn!(source = %relay.source.key(), "the outbox was not drained within the grace period; its rows stay and are published by the next relay")
                }
            }
        }
    }
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    pub(crate) claimed: usize,
    pub(crate) failed: usize,
}

/// How many passes in a row the broker refused each row (unroutable, nacked), by row.
#[derive(Default)]
pub(crate) struct Refused(HashMap<i64, u32>);

/// How many relay passes a message the broker refuses is tried before it is dead-lettered
/// (its queue may just not be declared yet).
pub const REFUSED_ATTEMPTS: u32 = 5;

/// The copy of a refused message that goes to the dead-letter exchange.
fn dead_letter(mut outgoing: Outgoing, error: &BusError) -> Outgoing {
    outgoing.route = Route::DeadLetter;
    outgoing.mandatory = false;
    outgoing.headers.insert(
        crate::headers::LAST_ERROR.to_string(),
        HeaderValue::from(error.to_string()),
    );
    outgoing.headers.insert(
        crate::headers::DEAD_LETTER_REASON.to_string(),
        HeaderValue::from(crate::delayed::UNROUTABLE_REASON),
    );
    outgoing
}

/// Claims one batch, publishes it, deletes what was published. A message the broker refuses
/// [`REFUSED_ATTEMPTS`] passes in a row goes to the dead-letter exchange instead, so refused
/// rows never hold back the rows behind them.
pub(crate) async fn relay_pass(
    bus: &Bus,
    source: &dyn OutboxSource,
    limit: usize,
    refused: &mut Refused,
) -> Result<Pass, BusError> {
    let claim = source.claim(limit).await?;
    let rows = claim.rows();
    if rows.is_empty() {
        claim.complete(Vec::new()).await?;
        return Ok(Pass {
            claimed: 0,
            failed: 0,
        });
    }
    let claimed = rows.len();
    let mut done = Vec::with_capacity(claimed);
    let mut publishes = Vec::new();
    let mut publish_seqs = Vec::new();
    let mut failed = 0;
    for row in rows {
        match &row.message {
            Ok(OutboxMessage::Publish(outgoing)) => {
                publishes.push(outgoing.clone());
                publish_seqs.push(row.seq);
            }
            Ok(OutboxMessage::Delay(delayed)) => match bus.enqueue(delayed.clone()).await {
                Ok(()) => done.push(row.seq),
                Err(error) => {
                    failed += 1;
                    tracing::warn!(%error, seq = row.seq, "storing a delayed message from the outbox failed; it is retried");
                }
            },
            Err(reason) => {
                // It would fail again on every pass: say so and remove it.
                tracing::error!(seq = row.seq, %reason, "dropping an unreadable outbox row");
                done.push(row.seq);
            }
        }
    }
    if !publishes.is_empty() {
        // Pipelined with confirms; what the broker confirmed is deleted, the rest retried.
        let results = bus.publisher().publish_each(publishes.clone()).await;
        let mut letters = Vec::new();
        let mut letter_seqs = Vec::new();
        for ((result, seq), outgoing) in results.into_iter().zip(publish_seqs).zip(publishes) {
            match result {
                Ok(()) => {
                    refused.0.remove(&seq);
                    done.push(seq);
                }
                Err(error @ (BusError::Unroutable { .. } | BusError::Refused { .. })) => {
                    if refused.0.len() > 10_000 {
                        // Rows another relay settled meanwhile: start counting again.
                        refused.0.clear();
                    }
                    let attempts = refused.0.entry(seq).or_default();
                    *attempts += 1;
                    if *attempts >= REFUSED_ATTEMPTS {
                        tracing::error!(%error, seq, "the broker refused an outbox message {REFUSED_ATTEMPTS} times; dead-lettering it");
                        letters.push(dead_letter(outgoing, &error));
                        letter_seqs.push(seq);
                    } else {
                        failed += 1;
                        tracing::warn!(%error, seq, "the broker refused an outbox message; it is retried");
                    }
                }
                Err(error) => {
                    failed += 1;
                    tracing::warn!(%error, seq, "an outbox message could not be published; it is retried");
                }
            }
        }
        if !letters.is_empty() {
            let results = bus.publisher().publish_each(letters).await;
            for (result, seq) in results.into_iter().zip(letter_seqs) {
                match result {
                    Ok(()) => {
                        refused.0.remove(&seq);
                        done.push(seq);
                    }
                    Err(error) => {
                        failed += 1;
                        tracing::warn!(%error, seq, "dead-lettering a refused outbox message failed; it is retried");
                    }
                }
            }
        }
    }
    claim.complete(done).await?;
    Ok(Pass { claimed, failed })
}

async fn relay(
    bus: Bus,
    source: Arc<dyn OutboxSource>,
    options: RelayOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut refused = Refused::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match relay_pass(&bus, source.as_ref(), options.batch_size, &mut refused).await
        {
            // A full batch: more may be waiting.
            Ok(Pass { claimed, failed: 0 }) if claimed >= options.batch_size => continue,
            Ok(Pass { failed: 0, .. }) => None,
            Ok(Pass { failed, .. }) => {
                bus.record_relay_failures(failed);
                Some(options.retry_delay)
            }
            Err(error) => {
                tracing::warn!(%error, source = %source.key(), "outbox relay pass failed");
                Some(options.retry_delay)
            }
        };
        let wait = pause.unwrap_or(options.poll_interval);
        tokio::select! {
            () = source.committed(), if pause.is_none() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, MessageKind};

    #[derive(Serialize, Deserialize)]
    struct Made {
        n: u32,
    }

    impl Message for Made {
        const TOPIC: &'static str = "thing.made";
        const KIND: MessageKind = MessageKind::Task;
    }

    #[test]
    fn a_message_reads_back_as_it_was_written() {
        let mut outgoing = Outgoing::message(&Made { n: 3 }).unwrap();
        outgoing.headers.insert("x-a".into(), 1_i64.into());
        let publish = OutboxMessage::Publish(outgoing);
        assert_eq!(OutboxMessage::decode(&publish.encode()).unwrap(), publish);

        let mut binary = Outgoing::message(&Made { n: 4 }).unwrap();
        binary.body = vec![0xff, 0x00, 0xfe];
        binary.route = Route::Queue("q".into());
        let binary = OutboxMessage::Publish(binary);
        let encoded = binary.encode();
        assert!(String::from_utf8_lossy(&encoded).contains("body_base64"));
        assert_eq!(OutboxMessage::decode(&encoded).unwrap(), binary);

        let delay = OutboxMessage::Delay(
            DelayedMessage::of(&Made { n: 5 }, std::time::SystemTime::now()).unwrap(),
        );
        assert_eq!(OutboxMessage::decode(&delay.encode()).unwrap(), delay);
        assert!(OutboxMessage::decode(b"{\"kind\":\"nope\"}").is_err());
    }
}
