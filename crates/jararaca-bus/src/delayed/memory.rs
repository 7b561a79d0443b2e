//! The in-process delayed-message store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Claimed, DelayedMessage, DelayedStore, PayloadPolicy, TimePolicy, new_task_id};
use crate::BusError;

/// Delayed messages kept in memory: the embedded default, with the same idempotency rules
/// as [`RedisStore`](crate::RedisStore). Clones share the store.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    due: BTreeSet<(i64, String)>,
    scores: HashMap<String, i64>,
    metadata: HashMap<String, DelayedMessage>,
    /// Leased ids with the end of their lease.
    in_flight: HashMap<String, i64>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.lock().scores.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waiting messages with their dispatch times, earliest first.
    pub fn pending(&self) -> Vec<(i64, DelayedMessage)> {
        let state = self.lock();
        state
            .due
            .iter()
            .filter_map(|(at, id)| state.metadata.get(id).map(|m| (*at, m.clone())))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DelayedStore for InMemoryStore {
    fn enqueue(&self, message: DelayedMessage) -> BoxFuture<'_, Result<(), BusError>> {
        let mut state = self.lock();
        let keyed = message.idempotency_key.is_some();
        let id = message.idempotency_key.clone().unwrap_or_else(new_task_id);
        let score = message.dispatch_time;
        let keep_payload = keyed && message.payload_policy == PayloadPolicy::Ignore;
        if !(keep_payload && state.metadata.contains_key(&id)) {
            state.metadata.insert(id.clone(), message.clone());
        }
        let old = state.scores.get(&id).copied();
        let new_score = match (old, keyed, message.time_policy) {
            (Some(old), true, TimePolicy::Greater) => old.max(score),
            (Some(old), true, TimePolicy::Lesser) => old.min(score),
            _ => score,
        };
        if let Some(old) = old {
            state.due.remove(&(old, id.clone()));
        }
        state.due.insert((new_score, id.clone()));
        state.scores.insert(id, new_score);
        Box::pin(async { Ok(()) })
    }

    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, BusError>> {
        let mut state = self.lock();
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            state.in_flight.remove(&id);
            if !state.scores.contains_key(&id) {
                state.due.insert((now, id.clone()));
                state.scores.insert(id, now);
            }
        }
        let ids: Vec<(i64, String)> = state
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .cloned()
            .collect();
        let mut claimed = Vec::with_capacity(ids.len());
        for key in ids {
            state.due.remove(&key);
            state.scores.remove(&key.1);
            if let Some(message) = state.metadata.get(&key.1).cloned() {
                state.in_flight.insert(key.1.clone(), lease_until);
                claimed.push(Claimed { id: key.1, message });
            }
        }
        Box::pin(async { Ok(claimed) })
    }

    fn complete(&self, id: &str) -> BoxFuture<'_, Result<(), BusError>> {
        let mut state = self.lock();
        state.in_flight.remove(id);
        if !state.scores.contains_key(id) {
            state.metadata.remove(id);
        }
        Box::pin(async { Ok(()) })
    }

    fn retry_at(&self, claimed: Claimed, at: i64) -> BoxFuture<'_, Result<(), BusError>> {
        let mut state = self.lock();
        let mut message = claimed.message;
        message.dispatch_time = at;
        state.in_flight.remove(&claimed.id);
        if let Some(old) = state.scores.insert(claimed.id.clone(), at) {
            state.due.remove(&(old, claimed.id.clone()));
        }
        state.due.insert((at, claimed.id.clone()));
        state.metadata.insert(claimed.id, message);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Headers;

    fn message(at: i64, payload: &str) -> DelayedMessage {
        DelayedMessage {
            message_topic: "t".into(),
            idempotency_key: None,
            dispatch_time: at,
            payload: payload.into(),
            headers: Headers::new(),
            target_queue: None,
            message_id: None,
            content_type: None,
            payload_policy: PayloadPolicy::Ignore,
            time_policy: TimePolicy::Replace,
            content_encoding: None,
            payload_encoding: None,
            unroutable_attempts: None,
        }
    }

    #[tokio::test]
    async fn claims_only_due_messages_once_in_time_order() {
        let store = InMemoryStore::new();
        store.enqueue(message(20, "late")).await.unwrap();
        store.enqueue(message(10, "early")).await.unwrap();
        store.enqueue(message(99, "future")).await.unwrap();
        let due = store.claim_due(20, 10, 80).await.unwrap();
        let payloads: Vec<_> = due.iter().map(|c| c.message.payload.as_str()).collect();
        assert_eq!(payloads, ["early", "late"]);
        assert!(store.claim_due(20, 10, 80).await.unwrap().is_empty());
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn a_lease_that_ends_unsettled_makes_the_message_due_again_until_completed() {
        let store = InMemoryStore::new();
        store.enqueue(message(10, "once")).await.unwrap();
        let first = store.claim_due(10, 10, 70).await.unwrap();
        assert_eq!(first.len(), 1);
        // Its pump died: nobody else gets it while the lease runs.
        assert!(store.claim_due(69, 10, 129).await.unwrap().is_empty());
        let again = store.claim_due(70, 10, 130).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, first[0].id, "the same message, under its id");
        store.complete(&again[0].id).await.unwrap();
        assert!(store.claim_due(1000, 10, 1060).await.unwrap().is_empty());
        assert!(store.is_empty());

        // A failed publish puts it back, due when asked.
        store.enqueue(message(10, "retried")).await.unwrap();
        let claimed = store.claim_due(10, 10, 70).await.unwrap().remove(0);
        store.retry_at(claimed, 20).await.unwrap();
        assert!(store.claim_due(19, 10, 79).await.unwrap().is_empty());
        assert_eq!(store.claim_due(20, 10, 80).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn idempotency_policies() {
        let store = InMemoryStore::new();
        let keyed = |at, p: &str, pp, tp| message(at, p).idempotent("k", pp, tp);
        store
            .enqueue(keyed(50, "a", PayloadPolicy::Ignore, TimePolicy::Replace))
            .await
            .unwrap();
        store
            .enqueue(keyed(40, "b", PayloadPolicy::Ignore, TimePolicy::Greater))
            .await
            .unwrap();
        let pending = store.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].0, pending[0].1.payload.as_str()), (50, "a"));
        store
            .enqueue(keyed(30, "c", PayloadPolicy::Replace, TimePolicy::Lesser))
            .await
            .unwrap();
        let pending = store.pending();
        assert_eq!((pending[0].0, pending[0].1.payload.as_str()), (30, "c"));
        // Without a key every message is its own entry.
        store.enqueue(message(1, "x")).await.unwrap();
        store.enqueue(message(1, "x")).await.unwrap();
        assert_eq!(store.len(), 3);
    }
}
