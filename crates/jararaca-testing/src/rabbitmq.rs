//! A test's own corner of RabbitMQ: its own exchange, and afterwards its queues and exchange
//! deleted. The shared `dlx` exchange and `dlq` queue (fixed names in the reference's
//! topology, declared by every service) are left in place: tests running at the same time
//! share them, and one that deleted them would break the others' dead-lettering.

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

/// A unique exchange on RabbitMQ.
#[derive(Debug)]
pub struct RabbitNamespace {
    amqp: String,
    exchange: String,
}

async fn connect(amqp: &str) -> Connection {
    Connection::connect(amqp, ConnectionProperties::default())
        .await
        .unwrap()
}

impl RabbitNamespace {
    /// A namespace on the server at `amqp`, with an exchange named from `prefix`.
    pub async fn new(amqp: &str, prefix: &str) -> Self {
        Self {
            amqp: amqp.to_owned(),
            exchange: crate::unique_name(prefix),
        }
    }

    /// The broker URL in the reference's form, with this namespace's exchange.
    pub fn broker_url(&self) -> String {
        format!("{}?exchange={}&prefetch_count=8", self.amqp, self.exchange)
    }

    /// The exchange's name.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Deletes `queues` and the exchange.
    pub async fn cleanup(self, queues: impl IntoIterator<Item = String>) {
        let connection = connect(&self.amqp).await;
        let channel = connection.create_channel().await.unwrap();
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = connection.close(200, "done".into()).await;
    }
}
