//! One consumer: takes deliveries off a queue while permits last and runs them.

use std::sync::Arc;

#[cfg(feature = "amqp")]
use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::AckHook;
use super::ack::Acker;
#[cfg(feature = "amqp")]
use super::batch::{AckBatch, AmqpAcker};
use super::process::{Raw, Runtime};
use crate::memory::InMemoryBroker;

/// What the consumers on one channel share.
#[derive(Debug)]
pub(crate) struct ChannelPlan {
    /// The channel's prefetch (0: unbounded).
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    prefetch: u16,
    /// One per delivery the prefetch lets run at once.
    permits: Arc<Semaphore>,
    /// Called before each batched acknowledgement is sent (fault tests).
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    before_batched_ack: Option<AckHook>,
}

impl ChannelPlan {
    pub(crate) fn new(prefetch: u16, before_batched_ack: Option<AckHook>) -> Self {
        let permits = if prefetch == 0 {
            Semaphore::MAX_PERMITS
        } else {
            usize::from(prefetch)
        };
        Self {
            prefetch,
            permits: Arc::new(Semaphore::new(permits)),
            before_batched_ack,
        }
    }
}

/// Where a consumer's deliveries come from.
pub(crate) enum Source {
    #[cfg(feature = "amqp")]
    Amqp(Box<(lapin::Consumer, lapin::Channel)>),
    Memory(InMemoryBroker),
}

/// Whether consumers should keep going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    Running,
    /// Stop taking messages; in-flight ones may finish until the deadline.
    Drain(Instant),
    /// The connection is gone: drop everything now (the broker redelivers).
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    Abort,
}

/// How a consumer ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It was told to stop.
    Stopped,
    /// Its source failed (a lost connection, a cancelled consumer).
    Lost(String),
}

// Moved once per message: boxing the delivery would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Next {
    Delivery(Raw, Acker),
    Lost(String),
}

impl Source {
    /// Acknowledgements in runs, for a RabbitMQ consumer.
    #[cfg(feature = "amqp")]
    fn ack_batch(&self, plan: &ChannelPlan) -> Option<Arc<AckBatch>> {
        match self {
            Self::Amqp(amqp) => Some(Arc::new(AckBatch::new(
                amqp.1.clone(),
                plan.prefetch,
                plan.before_batched_ack,
            ))),
            Self::Memory(_) => None,
        }
    }

    async fn next(
        &mut self,
        queue: &str,
        #[cfg(feature = "amqp")] batch: Option<&Arc<AckBatch>>,
    ) -> Next {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(amqp) => match amqp.0.next().await {
                Some(Ok(delivery)) => {
                    let tag = delivery.delivery_tag;
                    let (raw, acker) = from_lapin(delivery);
                    Next::Delivery(raw, Acker::Amqp(AmqpAcker::new(acker, tag, batch)))
                }
                Some(Err(error)) => Next::Lost(error.to_string()),
                None => Next::Lost("the broker cancelled the consumer".to_string()),
            },
            Self::Memory(broker) => match broker.receive(queue).await {
                Ok(mut delivery) => {
                    let message = delivery.message;
                    delivery.acker.hold(message.clone());
                    let raw = Raw {
                        body: message.body,
                        headers: message.headers,
                        message_id: message.message_id,
                        routing_key: message.routing_key,
                        redelivered: message.redelivered,
                        content_type: message.content_type,
                        content_encoding: None,
                    };
                    Next::Delivery(raw, Acker::Memory(delivery.acker))
                }
                Err(error) => Next::Lost(error.to_string()),
            },
        }
    }

    /// Stops deliveries to this consumer; what the broker already sent goes back.
    async fn cancel(&mut self) {
        #[cfg(feature = "amqp")]
        if let Self::Amqp(amqp) = self {
            let (consumer, channel) = &mut **amqp;
            let tag = consumer.tag();
            let cancel = channel.basic_cancel(tag, lapin::options::BasicCancelOptions::default());
            match tokio::time::timeout(crate::amqp::CLOSE_TIMEOUT, cancel).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "cancelling a consumer failed"),
                Err(_) => tracing::debug!("cancelling a consumer timed out"),
            }
            // Deliveries already on their way when the cancel was sent.
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(std::time::Duration::from_millis(50), consumer.next()).await
            {
                let requeued = delivery
                    .acker
                    .reject(lapin::options::BasicRejectOptions { requeue: true })
                    .await;
                if !matches!(requeued, Ok(true)) {
                    // Closing the channel returns it all the same.
                    tracing::debug!(
                        ?requeued,
                        "requeueing a delivery that arrived after the cancel did not work"
                    );
                }
            }
        }
    }
}

#[cfg(feature = "amqp")]
fn from_lapin(delivery: lapin::message::Delivery) -> (Raw, lapin::Acker) {
    let properties = &delivery.properties;
    let raw = Raw {
        headers: properties
            .headers()
            .as_ref()
            .map(crate::headers::amqp::from_table)
            .unwrap_or_default(),
        message_id: properties.message_id().as_ref().map(|s| s.to_string()),
        content_type: properties.content_type().as_ref().map(|s| s.to_string()),
        content_encoding: properties
            .content_encoding()
            .as_ref()
            .map(|s| s.to_string()),
        routing_key: delivery.routing_key.to_string(),
        redelivered: delivery.redelivered,
        body: delivery.data,
    };
    (raw, delivery.acker)
}

/// Runs one consumer until `mode` leaves `Running` or its source fails.
pub(crate) async fn consume(
    mut source: Source,
    runtime: Arc<Runtime>,
    channel: Arc<ChannelPlan>,
    mut mode: watch::Receiver<StopMode>,
) -> Ended {
    #[cfg(feature = "amqp")]
    let batch = source.ack_batch(&channel);
    // A set, so the timer goes with the consumer.
    #[cfg(feature = "amqp")]
    let mut timer = JoinSet::new();
    #[cfg(feature = "amqp")]
    if let Some(batch) = &batch {
        timer.spawn(Arc::clone(batch).linger());
    }
    let mut tasks = JoinSet::new();
    let ended = loop {
        // A permit first: no more messages run at once than the prefetch allows.
        let permit = tokio::select! {
            biased;
            _ = mode.wait_for(|m| *m != StopMode::Running) => break Ended::Stopped,
            permit = Arc::clone(&channel.permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Ended::Stopped,
            },
        };
        let next = tokio::select! {
            biased;
            _ = mode.wait_for(|m| *m != StopMode::Running) => break Ended::Stopped,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            next = source.next(
                &runtime.queue,
                #[cfg(feature = "amqp")]
                batch.as_ref(),
            ) => next,
        };
        match next {
            Next::Delivery(raw, acker) => {
                let runtime = Arc::clone(&runtime);
                tasks.spawn(async move {
                    runtime.process(raw, acker).await;
                    drop(permit);
                });
            }
            Next::Lost(reason) => break Ended::Lost(reason),
        }
        // Reap finished tasks without waiting, so the set stays small.
        while tasks.try_join_next().is_some() {}
    };
    let current = *mode.borrow();
    if let (Ended::Stopped, StopMode::Drain(deadline)) = (&ended, current) {
        {
            source.cancel().await;
            let drained = tokio::time::timeout_at(deadline, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(queue = %runtime.queue, left = tasks.len(), "grace period over; abandoning in-flight messages (they return to the queue)");
            }
        }
    }
    // Whatever is still running is dropped: each of its deliveries is requeued with the
    // attempt counted before the channel goes.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let left = runtime.in_flight.wait_idle(SETTLE_TIMEOUT).await;
    if left > 0 {
        tracing::warn!(queue = %runtime.queue, left, "abandoned deliveries were not settled in time; the broker requeues them");
    }
    // What is settled and not acknowledged yet goes before the channel closes; on a lost
    // connection it cannot, and the broker delivers those messages again.
    #[cfg(feature = "amqp")]
    if let Some(batch) = &batch
        && *mode.borrow() != StopMode::Abort
        && let Err(error) = batch.flush(true).await
    {
        tracing::debug!(queue = %runtime.queue, %error, "sending the last acknowledgements failed; the broker delivers those messages again");
    }
    ended
}

/// How long abandoned deliveries may take to be settled before their channel closes.
pub(crate) const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A consumer that ran this long without ending counts as steady: its next restart starts
/// the backoff over.
pub(crate) const STEADY: std::time::Duration = std::time::Duration::from_secs(60);

/// The backoff between restarts of a consumer that ended unexpectedly: 1 s doubling to 60 s.
pub(crate) fn restart_backoff() -> jararaca_retry::RetryPolicy {
    jararaca_retry::RetryPolicy::default()
}

/// Runs one in-memory consumer until the worker stops, restarting it with backoff whenever it
/// ends (or its task panics) while the worker is running.
pub(crate) async fn supervise(
    broker: InMemoryBroker,
    runtime: Arc<Runtime>,
    channel: Arc<ChannelPlan>,
    mut mode: watch::Receiver<StopMode>,
) {
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        // A set, not a bare spawn, so the consumer goes when the supervisor is dropped.
        let mut task = JoinSet::new();
        task.spawn(consume(
            Source::Memory(broker.clone()),
            Arc::clone(&runtime),
            Arc::clone(&channel),
            mode.clone(),
        ));
        let ended = task.join_next().await;
        if *mode.borrow() != StopMode::Running {
            return;
        }
        let reason = match ended {
            Some(Ok(Ended::Lost(reason))) => reason,
            Some(Ok(Ended::Stopped)) | None => "it stopped".to_string(),
            Some(Err(error)) => format!("its task failed: {error}"),
        };
        if started.elapsed() >= STEADY {
            failures = 0;
        }
        let delay = restart_backoff().delay_for(failures);
        failures = failures.saturating_add(1);
        tracing::error!(queue = %runtime.queue, %reason, ?delay, restarts = failures, "a consumer ended unexpectedly; restarting it");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = mode.wait_for(|m| *m != StopMode::Running) => return,
        }
    }
}
