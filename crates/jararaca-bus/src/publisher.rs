//! The [`Publisher`] trait every broker implements.

use std::fmt;

use futures_util::future::BoxFuture;

use crate::{BusError, Outgoing};

/// Sends messages to a broker: RabbitMQ ([`AmqpPublisher`](crate::AmqpPublisher)) or the
/// in-process [`InMemoryBroker`](crate::InMemoryBroker).
///
/// `publish` resolves once the broker has the message (a publisher confirm for RabbitMQ),
/// so a caller that acknowledges something afterwards never loses it.
pub trait Publisher: fmt::Debug + Send + Sync + 'static {
    /// Sends one message.
    fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>>;

    /// Sends several messages in order, resolving when the broker has them all. Brokers
    /// pipeline them (RabbitMQ publishes all, then awaits the confirms).
    fn publish_all(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            for message in messages {
                self.publish(message).await?;
            }
            Ok(())
        })
    }

    /// Whether the broker can be reached now, for a readiness check: answers within one
    /// connection attempt, without retrying.
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async { Ok(()) })
    }
}
