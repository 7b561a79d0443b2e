//! The pump: publishes delayed messages when they are due (the reference's beat does this).

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::DelayedStore;
use crate::bus::unix_seconds;
use crate::{BusError, Publisher};

/// How many due messages one pass claims (the reference's `delayed_messages_batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How long a pump holds the messages it claimed before any pump may claim them again: a
/// pump killed between claiming and publishing delays them by this much, never loses them.
pub const CLAIM_LEASE_SECS: i64 = 60;

/// How far a message whose publishing failed is pushed back (the reference's 10 s).
pub const FAILED_DISPATCH_DELAY_SECS: i64 = 10;

/// Claims the messages due now and publishes them; returns how many were sent.
///
/// Messages are leased for [`CLAIM_LEASE_SECS`] and deleted only once the publisher has
/// them (a confirm for RabbitMQ), so each is published at least once: a pump that dies before
/// deleting leaves them to be claimed again when the lease ends. A message that cannot be
/// published is put back, due [`FAILED_DISPATCH_DELAY_SECS`] later (if even that fails, its
/// lease ends and it is claimed again); the first error is returned after the whole batch.
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
    let mut first_error = None;
    for claimed in due {
        match publisher.publish(claimed.message.to_outgoing()).await {
            Ok(()) => {
                sent += 1;
                if let Err(error) = store.complete(&claimed.id).await {
                    tracing::warn!(%error, id = %claimed.id, "a published delayed message could not be deleted; it is sent again when its lease ends");
                }
            }
            Err(error) => {
                tracing::warn!(%error, topic = %claimed.message.message_topic, "publishing a due delayed message failed; retrying in 10 s");
                let id = claimed.id.clone();
                if let Err(store_error) = store
                    .retry_at(claimed, now + FAILED_DISPATCH_DELAY_SECS)
                    .await
                {
                    tracing::warn!(%store_error, %id, "a delayed message could not be put back; it is claimed again when its lease ends");
                }
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(sent),
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
