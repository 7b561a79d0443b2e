//! Settling one delivery on its transport, and what happens when nobody does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::process::{Original, Runtime};
use crate::headers::retry_count;
use crate::memory::MemoryAcker;
use crate::{BusError, Settlement};

/// Why an abandoned delivery is retried, in its `x-last-error`.
pub(crate) const ABANDONED: &str = "the delivery was abandoned before it was settled (its \
                                    handler was cancelled, or the worker stopped or lost it)";

/// The transport's own settle handle.
pub(crate) enum Acker {
    #[cfg(feature = "amqp")]
    Amqp(super::batch::AmqpAcker),
    Memory(MemoryAcker),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ack,
    /// Acknowledge, and send what is due on the channel at once.
    AckNow,
    Reject,
    Requeue,
}

impl Op {
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    fn operation(self) -> &'static str {
        match self {
            Self::Ack | Self::AckNow => "acknowledging",
            Self::Reject => "rejecting",
            Self::Requeue => "requeueing",
        }
    }
}

impl Acker {
    async fn settle(
        self,
        op: Op,
        #[cfg_attr(not(feature = "amqp"), allow(unused_variables))] queue: &str,
    ) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(acker) => {
                let done = match op {
                    Op::Ack => acker.ack(false).await?,
                    Op::AckNow => acker.ack(true).await?,
                    Op::Reject => reject(acker, false).await?,
                    Op::Requeue => reject(acker, true).await?,
                };
                if done {
                    Ok(())
                } else {
                    // lapin's answer for an acker whose channel is gone or that was used.
                    Err(BusError::NotSettled {
                        operation: op.operation(),
                        queue: queue.to_string(),
                    })
                }
            }
            Self::Memory(acker) => {
                match op {
                    Op::Ack | Op::AckNow => acker.ack(),
                    Op::Reject => acker.reject(),
                    Op::Requeue => acker.requeue(),
                }
                Ok(())
            }
        }
    }
}

/// Rejects a RabbitMQ delivery alone (requeueing it or not): `Ok(false)` when lapin
/// reports it had no effect.
#[cfg(feature = "amqp")]
async fn reject(acker: super::batch::AmqpAcker, requeue: bool) -> Result<bool, BusError> {
    let operation = if requeue { "requeueing" } else { "rejecting" };
    acker
        .alone(|acker| async move {
            acker
                .reject(lapin::options::BasicRejectOptions { requeue })
                .await
        })
        .await
        .map_err(|source| BusError::Amqp { operation, source })
}

/// What settles a delivery: the worker, or the handler through
/// [`Delivery::ack_now`](crate::Delivery::ack_now).
///
/// Dropped without a decision (its processing was cancelled, its consumer died), it requeues
/// the message with the attempt counted, or dead-letters it once the handler's retry budget
/// is spent, so an abandoned message can neither be lost nor loop forever.
pub(crate) struct AckHandle {
    acker: Option<Acker>,
    queue: Arc<str>,
    abandon: Option<Abandon>,
}

/// What an abandoned delivery needs to be settled anyway.
struct Abandon {
    runtime: Arc<Runtime>,
    original: Arc<Original>,
    in_flight: InFlightGuard,
}

impl AckHandle {
    pub(crate) fn new(acker: Acker, runtime: &Arc<Runtime>, original: Arc<Original>) -> Self {
        Self {
            acker: Some(acker),
            queue: Arc::clone(&runtime.queue),
            abandon: Some(Abandon {
                runtime: Arc::clone(runtime),
                original,
                in_flight: runtime.in_flight.enter(),
            }),
        }
    }

    async fn settle(mut self, op: Op) -> Result<(), BusError> {
        match self.acker.take() {
            Some(acker) => acker.settle(op, &self.queue).await,
            None => Ok(()),
        }
    }

    /// Acknowledges the message. On RabbitMQ the acknowledgement may go out a few
    /// milliseconds later, with those of the deliveries before it.
    pub(crate) async fn ack(self) -> Result<(), BusError> {
        self.settle(Op::Ack).await
    }

    /// Acknowledges the message and sends the acknowledgement at once.
    pub(crate) async fn ack_now(self) -> Result<(), BusError> {
        self.settle(Op::AckNow).await
    }

    /// Rejects it without requeueing: the broker dead-letters it (without a reason).
    pub(crate) async fn reject(self) -> Result<(), BusError> {
        self.settle(Op::Reject).await
    }

    /// Puts it back on its queue as it is.
    pub(crate) async fn requeue(self) -> Result<(), BusError> {
        self.settle(Op::Requeue).await
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        // Without a worker around it (a hand-made handle), the transport's own drop applies.
        let Some(Abandon {
            runtime,
            original,
            in_flight,
        }) = self.abandon.take()
        else {
            return;
        };
        let count = retry_count(&original.headers);
        let settlement = runtime
            .policy
            .retry(count, ABANDONED.to_string(), Some(Duration::ZERO));
        tracing::warn!(queue = %self.queue, attempt = count + 1, "a delivery was dropped before it was settled; settling it");
        match acker {
            Acker::Memory(acker) => {
                match settlement {
                    Settlement::DeadLetter { reason, error } => acker.dead_letter_with(
                        original.dead_letter_headers(reason, &error, &self.queue),
                        reason.as_str(),
                    ),
                    _ => acker.requeue_with(original.retry_headers(count + 1, ABANDONED)),
                }
                drop(in_flight);
            }
            #[cfg(feature = "amqp")]
            Acker::Amqp(acker) if runtime.torn_down.load(Ordering::SeqCst) => {
                tracing::debug!(queue = %self.queue, "the worker was dropped; the broker redelivers the abandoned delivery");
                drop((acker, in_flight));
            }
            #[cfg(feature = "amqp")]
            Acker::Amqp(acker) => match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        acker
                            .alone(|acker| runtime.settle_abandoned(acker, &original, settlement))
                            .await;
                        drop(in_flight);
                    });
                }
                // No runtime left: the broker requeues it when the channel closes.
                Err(_) => drop(acker),
            },
        }
    }
}

/// Counts a consumer's unsettled deliveries, so its connection is closed only after every
/// abandoned one was settled.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    /// Waits until no delivery is unsettled, at most `limit`; returns how many still are.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> usize {
        let idle = async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, idle).await;
        self.count.load(Ordering::SeqCst)
    }
}

/// One unsettled delivery of an [`InFlight`].
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
