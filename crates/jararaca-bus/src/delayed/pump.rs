//! The pump: publishes delayed messages when they are due (the reference's beat does this).

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::{Claimed, DelayedStore};
use crate::bus::unix_seconds;
use crate::headers::{DEAD_LETTER_QUEUE, DEAD_LETTER_REASON, HeaderValue, LAST_ERROR};
use crate::{BusError, Outgoing, Publisher, Route};

/// How many due messages one pass claims (the reference's `delayed_messages_batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How long a pump holds the messages it claimed before any pump may claim them again: a
/// pump killed between claiming and publishing delays them by this much, never loses them.
pub const CLAIM_LEASE_SECS: i64 = 60;

/// How far a message whose publishing failed is pushed back (the reference's 10 s). A
/// message no queue took is pushed back this much times 2^(attempts - 1).
pub const FAILED_DISPATCH_DELAY_SECS: i64 = 10;

/// How many times a due message no queue takes (`Unroutable`: its queue was deleted, or
/// nothing is bound to its topic) is put back before it is dead-lettered: with
/// [`FAILED_DISPATCH_DELAY_SECS`] that is after 10, 20, 40, 80 and 160 s, about five minutes
/// for a `declare` to bring the queue back.
pub const UNROUTABLE_RETRIES: u32 = 5;

/// The `x-dead-letter-reason` of a delayed message dead-lettered because no queue took it.
pub const UNROUTABLE_REASON: &str = "unroutable";

/// How many times putting a message back in the store is tried before the pump leaves it
/// to its lease.
pub const PUT_BACK_ATTEMPTS: u32 = 3;

/// The first wait between put-back attempts (doubled after each).
const PUT_BACK_BACKOFF: Duration = Duration::from_millis(200);

/// Claims the messages due now and publishes them; returns how many were sent.
///
/// Messages are leased for [`CLAIM_LEASE_SECS`] and deleted only once the publisher has
/// them (a confirm for RabbitMQ), so each is published at least once: a pump that dies before
/// deleting leaves them to be claimed again when the lease ends.
///
/// Every message is published `mandatory`. One that no queue takes is put back with growing
/// delays ([`UNROUTABLE_RETRIES`] times), then published to the dead-letter exchange with
/// `x-dead-letter-reason: unroutable`, `x-last-error` and (for a retry) `x-dead-letter-queue`;
/// if even that fails it is put back again, never dropped. This applies to delayed events too:
/// a delayed event nothing is bound to ends in the dead-letter queue.
///
/// When publishing fails otherwise (the broker is unreachable, it refused the message), the
/// message and the rest of the batch are put back, due [`FAILED_DISPATCH_DELAY_SECS`] later,
/// without trying to publish them. Putting back is tried [`PUT_BACK_ATTEMPTS`] times with
/// backoff; if the store still fails, the message stays leased and any pump claims it again
/// when the lease ends. The first error is returned after the whole batch.
pub async fn pump_due(
    store: &dyn DelayedStore,
    publisher: &dyn Publisher,
    batch_size: usize,
) -> Result<usize, BusError> {
    let now = unix_seconds(SystemTime::now());
    let due = store
        .claim_due(now, batch_size, now + CLAIM_LEASE_SECS)
        .await?;
    let mut sent = 0;
    let mut first_error: Option<BusError> = None;
    for claimed in due {
        if first_error
            .as_ref()
            .is_some_and(|e| !matches!(e, BusError::Unroutable { .. }))
        {
            // The publisher is failing: do not wait on it once per message.
            put_back(store, claimed, now + FAILED_DISPATCH_DELAY_SECS).await;
            continue;
        }
        let outgoing = match claimed.message.to_outgoing() {
            Ok(outgoing) => outgoing,
            Err(error) => {
                // Only a bug writes such a payload, and it would fail the same way again.
                tracing::error!(%error, id = %claimed.id, "dropping a delayed message whose payload cannot be decoded");
                if let Err(error) = store.complete(&claimed.id).await {
                    tracing::warn!(%error, id = %claimed.id, "deleting an undecodable delayed message failed");
                }
                continue;
            }
        };
        match publisher.publish(outgoing.clone()).await {
            Ok(()) => {
                sent += 1;
                if let Err(error) = store.complete(&claimed.id).await {
                    tracing::warn!(%error, id = %claimed.id, "a published delayed message could not be deleted; it is sent again when its lease ends");
                }
            }
            Err(error @ BusError::Unroutable { .. }) => {
                unroutable(store, publisher, claimed, outgoing, &error, now).await;
                first_error.get_or_insert(error);
            }
            Err(error) => {
                tracing::warn!(%error, topic = %claimed.message.message_topic, "publishing a due delayed message failed; putting it and the rest of the batch back for 10 s");
                put_back(store, claimed, now + FAILED_DISPATCH_DELAY_SECS).await;
                first_error = Some(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(sent),
    }
}

/// A due message no queue took: put back with a growing delay, or dead-lettered once it
/// has been put back [`UNROUTABLE_RETRIES`] times.
async fn unroutable(
    store: &dyn DelayedStore,
    publisher: &dyn Publisher,
    mut claimed: Claimed,
    outgoing: Outgoing,
    error: &BusError,
    now: i64,
) {
    let attempts = claimed.message.unroutable_attempts.unwrap_or(0);
    let delay = FAILED_DISPATCH_DELAY_SECS.saturating_mul(1 << attempts.min(20));
    if attempts < UNROUTABLE_RETRIES {
        tracing::warn!(%error, id = %claimed.id, attempt = attempts + 1, delay_secs = delay, "no queue took a due delayed message; putting it back");
        claimed.message.unroutable_attempts = Some(attempts + 1);
        put_back(store, claimed, now.saturating_add(delay)).await;
        return;
    }
    let mut letter = outgoing;
    letter.route = Route::DeadLetter;
    letter
        .headers
        .insert(LAST_ERROR.to_string(), HeaderValue::from(error.to_string()));
    letter.headers.insert(
        DEAD_LETTER_REASON.to_string(),
        HeaderValue::from(UNROUTABLE_REASON),
    );
    if let Some(queue) = &claimed.message.target_queue {
        letter.headers.insert(
            DEAD_LETTER_QUEUE.to_string(),
            HeaderValue::from(queue.as_str()),
        );
    }
    match publisher.publish(letter).await {
        Ok(()) => {
            tracing::error!(%error, id = %claimed.id, attempts, "no queue took a due delayed message; dead-lettered it");
            if let Err(error) = store.complete(&claimed.id).await {
                tracing::warn!(%error, id = %claimed.id, "a dead-lettered delayed message could not be deleted; it is handled again when its lease ends");
            }
        }
        Err(dead_letter_error) => {
            tracing::error!(%error, %dead_letter_error, id = %claimed.id, "no queue took a due delayed message and dead-lettering it failed; keeping it");
            put_back(store, claimed, now.saturating_add(delay)).await;
        }
    }
}

/// Ends `claimed`'s lease and stores it again, due at `at`, trying [`PUT_BACK_ATTEMPTS`]
/// times; if all fail, its lease ends by itself and a pump claims it again.
async fn put_back(store: &dyn DelayedStore, claimed: Claimed, at: i64) {
    let mut wait = PUT_BACK_BACKOFF;
    for attempt in 1..=PUT_BACK_ATTEMPTS {
        match store.retry_at(claimed.clone(), at).await {
            Ok(()) => return,
            Err(error) if attempt < PUT_BACK_ATTEMPTS => {
                tracing::warn!(%error, id = %claimed.id, attempt, "putting a delayed message back failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => {
                tracing::warn!(%error, id = %claimed.id, attempts = attempt, "a delayed message could not be put back; its lease ends within 60 s and a pump claims it again");
            }
        }
    }
}

/// Runs [`pump_due`] every `interval` until `shutdown` completes. Errors are logged and the
/// pump carries on (a broker or Redis outage delays messages; it does not stop the pump).
pub async fn run_pump(
    store: &dyn DelayedStore,
    publisher: &dyn Publisher,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        loop {
            match pump_due(store, publisher, DEFAULT_BATCH_SIZE).await {
                // A full batch means more may be due right now.
                Ok(sent) if sent >= DEFAULT_BATCH_SIZE => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "delayed-message pump pass failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::delayed::{DelayedMessage, InMemoryStore};
    use crate::{InMemoryBroker, Message, MessageKind};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Ping {
        n: u32,
    }

    impl Message for Ping {
        const TOPIC: &'static str = "ping";
        const KIND: MessageKind = MessageKind::Event;
    }

    /// The in-memory store, with `retry_at` failing its first `failures` calls.
    #[derive(Debug)]
    struct Flaky {
        inner: InMemoryStore,
        failures: AtomicU32,
        put_backs: AtomicU32,
    }

    impl DelayedStore for Flaky {
        fn enqueue(&self, message: DelayedMessage) -> BoxFuture<'_, Result<(), BusError>> {
            self.inner.enqueue(message)
        }
        fn claim_due(
            &self,
            now: i64,
            limit: usize,
            lease_until: i64,
        ) -> BoxFuture<'_, Result<Vec<Claimed>, BusError>> {
            self.inner.claim_due(now, limit, lease_until)
        }
        fn complete(&self, id: &str) -> BoxFuture<'_, Result<(), BusError>> {
            self.inner.complete(id)
        }
        fn retry_at(&self, claimed: Claimed, at: i64) -> BoxFuture<'_, Result<(), BusError>> {
            self.put_backs.fetch_add(1, Ordering::SeqCst);
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                Box::pin(async { Err(BusError::Config("the store is down".into())) })
            } else {
                self.inner.retry_at(claimed, at)
            }
        }
    }

    fn due_ping(n: u32) -> DelayedMessage {
        DelayedMessage::of(&Ping { n }, SystemTime::now() - Duration::from_secs(1)).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_put_back_is_retried_with_backoff() {
        let store = Flaky {
            inner: InMemoryStore::new(),
            failures: AtomicU32::new(PUT_BACK_ATTEMPTS - 1),
            put_backs: AtomicU32::new(0),
        };
        store.enqueue(due_ping(1)).await.unwrap();
        // Nothing is bound to `ping`: unroutable, so it is put back.
        let broker = InMemoryBroker::new();
        let started = tokio::time::Instant::now();
        let result = pump_due(&store, &broker, 10).await;
        assert!(
            matches!(result, Err(BusError::Unroutable { .. })),
            "{result:?}"
        );
        assert_eq!(store.put_backs.load(Ordering::SeqCst), PUT_BACK_ATTEMPTS);
        assert!(
            started.elapsed() >= PUT_BACK_BACKOFF * 3,
            "it waited between attempts"
        );
        let pending = store.inner.pending();
        assert_eq!(pending.len(), 1, "the last attempt put it back");
        assert_eq!(pending[0].1.unroutable_attempts, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_put_back_that_keeps_failing_is_left_to_the_lease() {
        let store = Flaky {
            inner: InMemoryStore::new(),
            failures: AtomicU32::new(u32::MAX),
            put_backs: AtomicU32::new(0),
        };
        store.enqueue(due_ping(1)).await.unwrap();
        let broker = InMemoryBroker::new();
        let _ = pump_due(&store, &broker, 10).await;
        assert_eq!(store.put_backs.load(Ordering::SeqCst), PUT_BACK_ATTEMPTS);
        // Still leased, so not due yet; once the lease ends any pump claims it again.
        let now = unix_seconds(SystemTime::now());
        assert!(
            store
                .inner
                .claim_due(now, 10, now + 60)
                .await
                .unwrap()
                .is_empty()
        );
        let reclaimed = store
            .inner
            .claim_due(now + CLAIM_LEASE_SECS + 1, 10, now + 200)
            .await
            .unwrap();
        assert_eq!(reclaimed.len(), 1);
    }

    #[tokio::test]
    async fn an_unroutable_message_is_put_back_then_dead_lettered_with_a_reason() {
        let store = InMemoryStore::new();
        let mut message = due_ping(7);
        message.target_queue = Some("gone".into());
        message.unroutable_attempts = Some(UNROUTABLE_RETRIES - 1);
        store.enqueue(message).await.unwrap();
        let broker = InMemoryBroker::new();
        let _ = pump_due(&store, &broker, 10).await;
        let pending = store.pending();
        assert_eq!(pending.len(), 1, "put back once more");
        let expected = unix_seconds(SystemTime::now())
            + FAILED_DISPATCH_DELAY_SECS * (1 << (UNROUTABLE_RETRIES - 1));
        assert!(
            (pending[0].0 - expected).abs() <= 1,
            "{} vs {expected}",
            pending[0].0
        );
        assert_eq!(pending[0].1.unroutable_attempts, Some(UNROUTABLE_RETRIES));
        assert!(broker.dead_letters().is_empty());

        // Due again with its put-backs spent: dead-lettered, and gone from the store.
        let mut spent = pending[0].1.clone();
        spent.dispatch_time = 0;
        let store = InMemoryStore::new();
        store.enqueue(spent).await.unwrap();
        let _ = pump_due(&store, &broker, 10).await;
        assert!(
            store.is_empty()
                && store
                    .claim_due(i64::MAX, 10, i64::MAX)
                    .await
                    .unwrap()
                    .is_empty()
        );
        let dead = broker.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].queue.as_str(), dead[0].reason.as_str()),
            ("gone", UNROUTABLE_REASON)
        );
        let headers = &dead[0].message.headers;
        assert_eq!(
            headers.get(DEAD_LETTER_REASON),
            Some(&HeaderValue::from(UNROUTABLE_REASON))
        );
        assert_eq!(
            headers.get(DEAD_LETTER_QUEUE),
            Some(&HeaderValue::from("gone"))
        );
        assert!(
            matches!(headers.get(LAST_ERROR), Some(HeaderValue::String(e)) if e.contains("gone"))
        );
        assert_eq!(dead[0].message.body, br#"{"n":7}"#);
    }
}
