//! The RabbitMQ publisher: publisher confirms, mandatory tasks, reconnect on demand.

use std::fmt;

use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{Channel, Confirmation, Connection, PublisherConfirm};
use tokio::sync::Mutex;

use super::{connect_with_retry, destination, properties};
use crate::{BrokerUrl, BusError, Outgoing, Publisher};

/// Publishes to RabbitMQ with publisher confirms: `publish` resolves when the broker has
/// the message, fails with [`BusError::Unroutable`] when a mandatory message (a task) found
/// no queue, and reconnects by itself when the connection was lost.
pub struct AmqpPublisher {
    url: BrokerUrl,
    link: Mutex<Option<Link>>,
}

struct Link {
    // Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

impl fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpPublisher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AmqpPublisher {
    /// Connects now (retrying per the URL's `connection_retry_*`), so a wrong URL fails at
    /// startup.
    pub async fn connect(url: &BrokerUrl) -> Result<Self, BusError> {
        let publisher = Self::lazy(url);
        publisher.channel().await?;
        Ok(publisher)
    }

    /// Connects on the first publish.
    pub fn lazy(url: &BrokerUrl) -> Self {
        Self {
            url: url.clone(),
            link: Mutex::new(None),
        }
    }

    /// Closes the connection (it is reopened by the next publish).
    pub async fn close(&self) {
        if let Some(link) = self.link.lock().await.take() {
            let _ = link._connection.close(200, "bye".into()).await;
        }
    }

    async fn channel(&self) -> Result<Channel, BusError> {
        self.channel_with(true).await
    }

    /// The open channel, or a new connection (retried per the URL when `retry`).
    async fn channel_with(&self, retry: bool) -> Result<Channel, BusError> {
        let mut link = self.link.lock().await;
        if let Some(current) = link.as_ref()
            && current.channel.status().connected()
        {
            return Ok(current.channel.clone());
        }
        *link = None;
        let connection = if retry {
            connect_with_retry(&self.url, "jararaca publisher").await?
        } else {
            super::connect(&self.url, "jararaca publisher").await?
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(BusError::amqp("opening a channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BusError::amqp("enabling publisher confirms"))?;
        *link = Some(Link {
            _connection: connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }

    async fn start(
        &self,
        channel: &Channel,
        message: &Outgoing,
    ) -> Result<PublisherConfirm, BusError> {
        let (exchange, routing_key) = destination(&self.url, message);
        channel
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: message.mandatory,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties(message),
            )
            .await
            .map_err(BusError::amqp("publishing"))
    }

    async fn settle(&self, message: &Outgoing, confirm: PublisherConfirm) -> Result<(), BusError> {
        let (exchange, routing_key) = destination(&self.url, message);
        match confirm
            .await
            .map_err(BusError::amqp("awaiting a publisher confirm"))?
        {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::Unroutable {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
            }),
            Confirmation::Nack(_) => Err(BusError::Refused {
                routing_key: routing_key.to_string(),
            }),
        }
    }

    async fn publish_batch(&self, messages: &[Outgoing]) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            confirms.push(self.start(&channel, message).await?);
        }
        for (message, confirm) in messages.iter().zip(confirms) {
            self.settle(message, confirm).await?;
        }
        Ok(())
    }

    async fn publish_with_reconnect(&self, messages: Vec<Outgoing>) -> Result<(), BusError> {
        match self.publish_batch(&messages).await {
            Err(BusError::Amqp { operation, source }) => {
                // A dropped connection shows up here once; publish again on a fresh one.
                tracing::warn!(%source, operation, "publishing failed; reconnecting and retrying once");
                *self.link.lock().await = None;
                self.publish_batch(&messages).await
            }
            other => other,
        }
    }
}

impl Publisher for AmqpPublisher {
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move { self.channel_with(false).await.map(drop) })
    }

    fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_with_reconnect(vec![message]))
    }

    fn publish_all(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_with_reconnect(messages))
    }
}
