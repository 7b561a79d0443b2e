//! The in-process broker: the embedded default for a service running whole in one process,
//! and the broker of unit tests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use crate::headers::{DEAD_LETTER_QUEUE, DEAD_LETTER_REASON, HeaderValue, Headers};
use crate::{BusError, Outgoing, Publisher, Route};

/// Whether `routing_key` matches the AMQP topic `pattern`: words split on `.`, `*` is exactly
/// one word, `#` is zero or more words. A literal `#` in the key is an ordinary word, so the
/// reference's published key `order.created.#` matches the binding `order.created.#`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches_words(&pattern, &key)
}

fn matches_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_words(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&first, key_rest)) => {
                (word == "*" || word == first) && matches_words(rest, key_rest)
            }
            None => false,
        },
    }
}

/// A message held by the in-memory broker.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// The routing key it was published with.
    pub routing_key: String,
    /// The body.
    pub body: Vec<u8>,
    /// Its headers.
    pub headers: Headers,
    /// Its message id.
    pub message_id: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Whether it was delivered before and put back.
    pub redelivered: bool,
}

/// A message in the in-memory broker's dead-letter list.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The queue it died in.
    pub queue: String,
    /// Why: `rejected`, or the worker's `x-dead-letter-reason`.
    pub reason: String,
    /// The message, with the headers it had then.
    pub message: StoredMessage,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<StoredMessage>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    bindings: Vec<(String, String)>,
    queues: HashMap<String, Queue>,
    dead: Vec<DeadLetter>,
    unroutable: usize,
}

/// A broker in the process: a topic exchange with `*`/`#` bindings, queues, the default
/// exchange (route straight to a queue), and a dead-letter list. Clones share the broker.
///
/// Deliveries that are neither acknowledged nor rejected (a handler task that was dropped)
/// go back to the head of their queue, as RabbitMQ requeues them when a channel closes, with
/// their attempt counted in `x-retry-count` (the worker dead-letters them once the handler's
/// retry budget is spent).
#[derive(Clone, Default)]
pub struct InMemoryBroker {
    inner: Arc<Mutex<State>>,
}

impl fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryBroker")
            .field("queues", &state.queues.keys().collect::<Vec<_>>())
            .field("bindings", &state.bindings)
            .field("dead_letters", &state.dead.len())
            .finish()
    }
}

impl InMemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `queue` (if new) and binds it to the main exchange with `binding_key`.
    pub fn declare_queue(&self, queue: &str, binding_key: &str) {
        let mut state = self.lock();
        state.queues.entry(queue.to_string()).or_default();
        let binding = (binding_key.to_string(), queue.to_string());
        if !state.bindings.contains(&binding) {
            state.bindings.push(binding);
        }
    }

    /// How many messages wait in `queue` (not counting deliveries in progress).
    pub fn queue_len(&self, queue: &str) -> usize {
        self.lock().queues.get(queue).map_or(0, |q| q.ready.len())
    }

    /// The messages waiting in `queue`, oldest first.
    pub fn peek(&self, queue: &str) -> Vec<StoredMessage> {
        self.lock()
            .queues
            .get(queue)
            .map(|q| q.ready.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The dead-letter list.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// How many non-mandatory messages matched no queue and were dropped.
    pub fn unroutable_count(&self) -> usize {
        self.lock().unroutable
    }

    /// Puts every dead letter back on the queue it died in (with a fresh retry budget);
    /// returns how many.
    pub fn requeue_dead_letters(&self) -> usize {
        let mut state = self.lock();
        let dead = std::mem::take(&mut state.dead);
        let count = dead.len();
        for mut letter in dead {
            letter.message.headers.remove(crate::headers::RETRY_COUNT);
            letter
                .message
                .headers
                .insert(crate::headers::REQUEUED_FROM_DLQ.into(), true.into());
            letter.message.redelivered = false;
            push(&mut state, &letter.queue, letter.message, false);
        }
        count
    }

    /// Waits for the next message of `queue` and takes it for delivery.
    pub(crate) async fn receive(&self, queue: &str) -> Result<MemoryDelivery, BusError> {
        loop {
            let notify = {
                let mut state = self.lock();
                let q = state
                    .queues
                    .get_mut(queue)
                    .ok_or_else(|| BusError::NoSuchQueue(queue.to_string()))?;
                if let Some(message) = q.ready.pop_front() {
                    return Ok(MemoryDelivery {
                        message,
                        acker: MemoryAcker {
                            broker: self.clone(),
                            queue: queue.to_string(),
                            pending: None,
                        },
                    });
                }
                Arc::clone(&q.notify)
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check: a message may have arrived between unlocking and registering.
            if self.queue_len(queue) > 0 {
                continue;
            }
            notified.await;
        }
    }

    fn route(&self, message: Outgoing) -> Result<(), BusError> {
        let mut state = self.lock();
        let stored = StoredMessage {
            routing_key: message.routing_key().to_string(),
            body: message.body,
            headers: message.headers,
            message_id: message.message_id,
            content_type: message.content_type,
            redelivered: false,
        };
        match message.route {
            Route::Main(key) => {
                let targets: Vec<String> = state
                    .bindings
                    .iter()
                    .filter(|(pattern, _)| topic_matches(pattern, &key))
                    .map(|(_, queue)| queue.clone())
                    .collect();
                if targets.is_empty() {
                    return unroutable(&mut state, message.mandatory, "(main exchange)", &key);
                }
                let mut targets = targets;
                targets.dedup();
                for queue in targets {
                    push(&mut state, &queue, stored.clone(), false);
                }
            }
            Route::Queue(queue) => {
                if !state.queues.contains_key(&queue) {
                    return unroutable(&mut state, message.mandatory, "", &queue);
                }
                push(&mut state, &queue, stored, false);
            }
            Route::DeadLetter => {
                let text = |name: &str| match stored.headers.get(name) {
                    Some(HeaderValue::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let letter = DeadLetter {
                    queue: text(DEAD_LETTER_QUEUE),
                    reason: text(DEAD_LETTER_REASON),
                    message: stored,
                };
                state.dead.push(letter);
            }
        }
        Ok(())
    }
}

fn unroutable(
    state: &mut State,
    mandatory: bool,
    exchange: &str,
    key: &str,
) -> Result<(), BusError> {
    if mandatory {
        return Err(BusError::Unroutable {
            exchange: exchange.to_string(),
            routing_key: key.to_string(),
        });
    }
    state.unroutable += 1;
    Ok(())
}

fn push(state: &mut State, queue: &str, message: StoredMessage, front: bool) {
    let q = state.queues.entry(queue.to_string()).or_default();
    if front {
        q.ready.push_front(message);
    } else {
        q.ready.push_back(message);
    }
    q.notify.notify_one();
}

impl Publisher for InMemoryBroker {
    fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
        let result = self.route(message);
        Box::pin(async move { result })
    }
}

/// A message taken from an in-memory queue, and what settles it.
pub(crate) struct MemoryDelivery {
    pub(crate) message: StoredMessage,
    pub(crate) acker: MemoryAcker,
}

/// Settles one in-memory delivery. Dropped unsettled, it puts the message back at the head of
/// its queue with its attempt counted (`x-retry-count + 1`), so a delivery that keeps being
/// dropped still spends its retry budget.
pub(crate) struct MemoryAcker {
    broker: InMemoryBroker,
    queue: String,
    /// The message, kept for a requeue or a dead letter.
    pending: Option<StoredMessage>,
}

impl fmt::Debug for MemoryAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAcker")
            .field("queue", &self.queue)
            .finish()
    }
}

impl MemoryAcker {
    pub(crate) fn hold(&mut self, message: StoredMessage) {
        self.pending = Some(message);
    }

    pub(crate) fn ack(mut self) {
        self.pending = None;
    }

    /// Back to the head of the queue, as it is (RabbitMQ's `reject(requeue=true)`).
    pub(crate) fn requeue(mut self) {
        if let Some(message) = self.pending.take() {
            self.put_back(message, None);
        }
    }

    /// Back to the head of the queue with these headers (an attempt counted by the worker).
    pub(crate) fn requeue_with(mut self, headers: Headers) {
        if let Some(message) = self.pending.take() {
            self.put_back(message, Some(headers));
        }
    }

    /// Into the dead-letter list with these headers (reason and error set by the worker).
    pub(crate) fn dead_letter_with(mut self, headers: Headers, reason: &str) {
        if let Some(mut message) = self.pending.take() {
            message.headers = headers;
            self.broker.lock().dead.push(DeadLetter {
                queue: self.queue.clone(),
                reason: reason.to_string(),
                message,
            });
        }
    }

    pub(crate) fn reject(mut self) {
        if let Some(message) = self.pending.take() {
            self.broker.lock().dead.push(DeadLetter {
                queue: self.queue.clone(),
                reason: "rejected".to_string(),
                message,
            });
        }
    }

    fn put_back(&self, mut message: StoredMessage, headers: Option<Headers>) {
        if let Some(headers) = headers {
            message.headers = headers;
        }
        message.redelivered = true;
        push(&mut self.broker.lock(), &self.queue, message, true);
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some(mut message) = self.pending.take() {
            let count = crate::headers::retry_count(&message.headers);
            message.headers.insert(
                crate::headers::RETRY_COUNT.to_string(),
                HeaderValue::from(count.saturating_add(1)),
            );
            self.put_back(message, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_follows_amqp() {
        assert!(topic_matches("order.created.#", "order.created.#"));
        assert!(topic_matches("order.created.#", "order.created"));
        assert!(topic_matches("order.created.#", "order.created.eu.x"));
        assert!(!topic_matches("order.created.#", "order.updated.#"));
        assert!(topic_matches("order.*", "order.created"));
        assert!(!topic_matches("order.*", "order.created.x"));
        assert!(!topic_matches("order.*", "order"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("*.created.#", "order.created.#"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.#.z", "a.b.c"));
        assert!(topic_matches("app.Ctl.tick", "app.Ctl.tick"));
    }

    fn message(route: Route, mandatory: bool) -> Outgoing {
        Outgoing {
            route,
            body: b"{}".to_vec(),
            headers: Headers::new(),
            message_id: None,
            content_type: None,
            content_encoding: None,
            mandatory,
            persistent: true,
        }
    }

    #[tokio::test]
    async fn routes_by_topic_and_by_queue_and_refuses_unroutable_tasks() {
        let broker = InMemoryBroker::new();
        broker.declare_queue("a", "order.created.#");
        broker.declare_queue("b", "order.#");
        broker
            .publish(message(Route::Main("order.created.#".into()), true))
            .await
            .unwrap();
        assert_eq!((broker.queue_len("a"), broker.queue_len("b")), (1, 1));
        broker
            .publish(message(Route::Queue("a".into()), false))
            .await
            .unwrap();
        assert_eq!((broker.queue_len("a"), broker.queue_len("b")), (2, 1));
        let err = broker
            .publish(message(Route::Main("email.send.#".into()), true))
            .await;
        assert!(matches!(err, Err(BusError::Unroutable { .. })));
        broker
            .publish(message(Route::Main("email.send.#".into()), false))
            .await
            .unwrap();
        assert_eq!(broker.unroutable_count(), 1);
    }

    #[tokio::test]
    async fn unsettled_deliveries_go_back_to_the_head() {
        let broker = InMemoryBroker::new();
        broker.declare_queue("q", "t.#");
        broker
            .publish(message(Route::Queue("q".into()), false))
            .await
            .unwrap();
        let mut delivery = broker.receive("q").await.unwrap();
        assert_eq!(broker.queue_len("q"), 0);
        delivery.acker.hold(delivery.message.clone());
        drop(delivery);
        assert_eq!(broker.queue_len("q"), 1);
        let mut delivery = broker.receive("q").await.unwrap();
        assert!(delivery.message.redelivered);
        assert_eq!(
            crate::headers::retry_count(&delivery.message.headers),
            1,
            "the dropped attempt counts"
        );
        delivery.acker.hold(delivery.message.clone());
        drop(delivery);
        let mut delivery = broker.receive("q").await.unwrap();
        assert_eq!(crate::headers::retry_count(&delivery.message.headers), 2);
        delivery.acker.hold(delivery.message.clone());
        delivery.acker.reject();
        assert_eq!(broker.dead_letters()[0].queue, "q");
        assert_eq!(broker.requeue_dead_letters(), 1);
        assert_eq!(broker.queue_len("q"), 1);
    }
}
