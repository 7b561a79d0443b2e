//! The pump: publishes delayed messages when they are due (the reference's beat does this).

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::DelayedStore;
use crate::bus::unix_seconds;
use crate::{BusError, Publisher};

/// How many due messages one pass claims (the reference's `delayed_messages_batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// How far a message whose publishing failed is pushed back (the reference's 10 s).
pub const FAILED_DISPATCH_DELAY_SECS: i64 = 10;

/// Claims the messages due now and publishes them; returns how many were sent.
///
/// A message that cannot be published goes back into the store, due
/// [`FAILED_DISPATCH_DELAY_SECS`] later, and the first such error is returned after the
/// whole batch was handled.
pub async fn pump_due(
    store: &dyn DelayedStore,
    publisher: &dyn Publisher,
    batch_size: usize,
) -> Result<usize, BusError> {
    let now = unix_seconds(SystemTime::now());
    let due = store.claim_due(now, batch_size).await?;
    let mut sent = 0;
    let mut first_error = None;
    for mut message in due {
        match publisher.publish(message.to_outgoing()).await {
            Ok(()) => sent += 1,
            Err(error) => {
                tracing::warn!(%error, topic = %message.message_topic, "publishing a due delayed message failed; retrying in 10 s");
                message.dispatch_time = now + FAILED_DISPATCH_DELAY_SECS;
                // A re-enqueue under the same idempotency key must move the time forward.
                message.time_policy = super::TimePolicy::Replace;
                message.payload_policy = super::PayloadPolicy::Replace;
                if let Err(store_error) = store.enqueue(message).await {
                    tracing::error!(%store_error, "a due delayed message could not be put back and is lost");
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
