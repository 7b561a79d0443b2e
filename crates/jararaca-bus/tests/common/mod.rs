//! The test's corner of the broker: its own exchange, dead-letter names and queues, removed
//! afterwards. Each test file adds the helpers only it needs in its own `impl Namespace`.

#![allow(dead_code, unreachable_pub)]

use jararaca_bus::{BrokerUrl, DeadLetterNames};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};

pub struct Namespace {
    pub url: BrokerUrl,
    pub name: String,
    pub queues: Vec<String>,
}

impl Namespace {
    /// A namespace named after `prefix`, its broker URL ending with `query` (such as
    /// `&prefetch_count=4`); `None` (a skip) without a broker.
    pub fn with(prefix: &str, query: &str) -> Option<Self> {
        Self::named(jararaca_testing::unique_name(prefix), query)
    }

    /// Like [`Namespace::with`], with the exact name.
    pub fn named(name: String, query: &str) -> Option<Self> {
        let amqp = jararaca_testing::rabbitmq()?;
        let url = BrokerUrl::parse(&format!("{amqp}?exchange={name}{query}"))
            .unwrap()
            .dead_letter(DeadLetterNames::prefixed(&name));
        Some(Self {
            url,
            name,
            queues: Vec::new(),
        })
    }

    pub async fn channel(&self) -> (lapin::Connection, lapin::Channel) {
        let connection = lapin::Connection::connect(
            &self.url.connection_url,
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    }

    /// Messages in `queue`, ready or not yet acknowledged by an open channel.
    pub async fn message_count(&self, queue: &str) -> u32 {
        let (connection, channel) = self.channel().await;
        let count = channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
        let _ = connection.close(200, "counted".into()).await;
        count
    }

    pub async fn cleanup(self) {
        let (connection, channel) = self.channel().await;
        for queue in self.queues.iter().chain([&self.url.dead_letter.queue]) {
            let _ = channel
                .queue_delete(
                    ShortString::from(queue.as_str()),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        for exchange in [&self.url.exchange, &self.url.dead_letter.exchange] {
            let _ = channel
                .exchange_delete(
                    ShortString::from(exchange.as_str()),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
