//! One consumer: takes deliveries off a queue while permits last and runs them.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::AckHandle;
use super::process::{Raw, Runtime};
use crate::memory::InMemoryBroker;

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
    Delivery(Raw, AckHandle),
    Lost(String),
}

impl Source {
    async fn next(&mut self, queue: &str) -> Next {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(amqp) => match amqp.0.next().await {
                Some(Ok(delivery)) => {
                    let (raw, acker) = from_lapin(delivery);
                    Next::Delivery(raw, AckHandle::Amqp(acker))
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
                    Next::Delivery(raw, AckHandle::Memory(delivery.acker))
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
            match tokio::time::timeout(super::amqp::CLOSE_TIMEOUT, cancel).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "cancelling a consumer failed"),
                Err(_) => tracing::debug!("cancelling a consumer timed out"),
            }
            // Deliveries already on their way when the cancel was sent.
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(std::time::Duration::from_millis(50), consumer.next()).await
            {
                let _ = delivery
                    .acker
                    .reject(lapin::options::BasicRejectOptions { requeue: true })
                    .await;
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
    semaphore: Arc<Semaphore>,
    mut mode: watch::Receiver<StopMode>,
) -> Ended {
    let mut tasks = JoinSet::new();
    let ended = loop {
        // A permit first: no more messages run at once than the prefetch allows.
        let permit = tokio::select! {
            biased;
            _ = mode.wait_for(|m| *m != StopMode::Running) => break Ended::Stopped,
            permit = Arc::clone(&semaphore).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Ended::Stopped,
            },
        };
        let next = tokio::select! {
            biased;
            _ = mode.wait_for(|m| *m != StopMode::Running) => break Ended::Stopped,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            next = source.next(&runtime.queue) => next,
        };
        match next {
            Next::Delivery(raw, handle) => {
                let runtime = Arc::clone(&runtime);
                tasks.spawn(async move {
                    runtime.process(raw, handle).await;
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
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    ended
}
