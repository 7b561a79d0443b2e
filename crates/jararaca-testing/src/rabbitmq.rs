//! A test's own corner of RabbitMQ: its own exchange, and afterwards nothing left behind —
//! its queues and exchange are deleted, and the shared `dlx`/`dlq` too if the test created
//! them and nothing uses them.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

/// A unique exchange on RabbitMQ, and what existed before the test.
#[derive(Debug)]
pub struct RabbitNamespace {
    amqp: String,
    exchange: String,
    dlx_existed: bool,
    dlq_existed: bool,
}

async fn connect(amqp: &str) -> Connection {
    Connection::connect(amqp, ConnectionProperties::default())
        .await
        .unwrap()
}

/// Whether `name` exists, by a passive declare on a channel of its own (a failed passive
/// declare closes its channel).
async fn exists(connection: &Connection, name: &str, queue: bool) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let found = if queue {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), passive, FieldTable::default())
            .await
            .is_ok()
    } else {
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Direct,
                passive,
                FieldTable::default(),
            )
            .await
            .is_ok()
    };
    let _ = channel.close(200, "checked".into()).await;
    found
}

impl RabbitNamespace {
    /// A namespace on the server at `amqp`, with an exchange named from `prefix`.
    pub async fn new(amqp: &str, prefix: &str) -> Self {
        let connection = connect(amqp).await;
        let dlx_existed = exists(&connection, "dlx", false).await;
        let dlq_existed = exists(&connection, "dlq", true).await;
        let _ = connection.close(200, "done".into()).await;
        Self {
            amqp: amqp.to_owned(),
            exchange: crate::unique_name(prefix),
            dlx_existed,
            dlq_existed,
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

    /// Deletes `queues`, the exchange, and `dlx`/`dlq` if the test created them and they
    /// are unused and empty.
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
        if !self.dlq_existed {
            let unused_and_empty = QueueDeleteOptions {
                if_unused: true,
                if_empty: true,
                ..QueueDeleteOptions::default()
            };
            let _ = channel.queue_delete("dlq".into(), unused_and_empty).await;
        }
        if !self.dlx_existed {
            let channel = connection.create_channel().await.unwrap();
            let unused = ExchangeDeleteOptions {
                if_unused: true,
                ..ExchangeDeleteOptions::default()
            };
            let _ = channel.exchange_delete("dlx".into(), unused).await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
