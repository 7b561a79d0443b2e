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

    /// Sends several messages in order, resolving with the outcome of each once the broker
    /// answered them all: `Ok` exactly for those it has, so a caller that sends the rest
    /// again never duplicates one. The default sends them one by one.
    fn publish_each(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Vec<Result<(), BusError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(messages.len());
            for message in messages {
                results.push(self.publish(message).await);
            }
            results
        })
    }

    /// Whether the broker can be reached now, for a readiness check: answers within one
    /// connection attempt, without retrying.
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async { Ok(()) })
    }
}
