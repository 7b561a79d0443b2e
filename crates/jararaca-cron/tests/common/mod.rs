//! The test's corner of the broker and of Redis: its own exchange, dead-letter names and
//! queues, and its own Redis key prefix, removed afterwards.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use jararaca_bus::{BrokerUrl, DeadLetterNames, QueueSpec, Topology};
use jararaca_cron::RedisBeatStore;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};

pub struct Namespace {
    pub url: BrokerUrl,
    pub name: String,
    pub redis: String,
    pub queues: Vec<String>,
    pub keep_dead_letters: bool,
}

impl Namespace {
    /// A namespace named after `prefix` (exchange, dead-letter names, Redis key prefix);
    /// `None` (a skip) without RabbitMQ or Redis.
    pub fn new(prefix: &str) -> Option<Self> {
        let amqp = jararaca_testing::rabbitmq()?;
        let redis = jararaca_testing::redis()?;
        let name = jararaca_testing::unique_name(prefix);
        let url = BrokerUrl::parse(&format!("{amqp}?exchange={name}&prefetch_count=4"))
            .unwrap()
            .dead_letter(DeadLetterNames::prefixed(&name));
        Some(Self {
            url,
            name,
            redis,
            queues: Vec::new(),
            keep_dead_letters: false,
        })
    }

    /// A Redis store whose keys carry this namespace's prefix.
    pub async fn store(&self) -> RedisBeatStore {
        RedisBeatStore::connect(&self.redis)
            .await
            .unwrap()
            .with_prefix(format!("{}:", self.name))
    }

    /// Declares the exchange, the dead-letter objects and the queues of `action_ids`.
    pub async fn declare(&mut self, action_ids: &[&str]) {
        let topology = action_ids
            .iter()
            .fold(Topology::new(), |t, id| t.queue(QueueSpec::action(*id)));
        jararaca_bus::declare(&self.url, &topology, false)
            .await
            .unwrap();
        self.queues.extend(action_ids.iter().map(|s| s.to_string()));
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

    /// Records every message published to the exchange with `routing_key` (body and arrival
    /// time), in a queue of its own with no length limit.
    pub async fn record(&mut self, routing_key: &str) -> Recorder {
        let queue = format!("{}.record.{}", self.name, self.queues.len());
        let (connection, channel) = self.channel().await;
        channel
            .queue_declare(
                ShortString::from(queue.as_str()),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                ShortString::from(queue.as_str()),
                ShortString::from(self.url.exchange.as_str()),
                ShortString::from(routing_key),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = channel
            .basic_consume(
                ShortString::from(queue.as_str()),
                ShortString::from("recorder"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.queues.push(queue);
        let seen: Arc<Mutex<Vec<(String, SystemTime)>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let _keep = (connection, channel);
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = String::from_utf8_lossy(&delivery.data).into_owned();
                sink.lock().unwrap().push((body, SystemTime::now()));
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
        });
        Recorder { seen, task }
    }

    /// Like [`cleanup`](Self::cleanup), leaving the dead-letter exchange and queue (the
    /// fixed `dlx`/`dlq` other services share).
    pub async fn cleanup_keeping_dead_letters(mut self) {
        self.keep_dead_letters = true;
        self.cleanup().await;
    }

    pub async fn cleanup(self) {
        let (connection, channel) = self.channel().await;
        let dead_letter_queue = (!self.keep_dead_letters).then_some(&self.url.dead_letter.queue);
        for queue in self.queues.iter().chain(dead_letter_queue) {
            let _ = channel
                .queue_delete(
                    ShortString::from(queue.as_str()),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        let dead_letter_exchange =
            (!self.keep_dead_letters).then_some(&self.url.dead_letter.exchange);
        for exchange in std::iter::once(&self.url.exchange).chain(dead_letter_exchange) {
            let _ = channel
                .exchange_delete(
                    ShortString::from(exchange.as_str()),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
        if let Ok(client) = redis::Client::open(self.redis.as_str())
            && let Ok(mut redis) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.name))
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
            }
        }
    }
}

pub struct Recorder {
    seen: Arc<Mutex<Vec<(String, SystemTime)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// What arrived so far.
    pub fn seen(&self) -> Vec<(String, SystemTime)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to `within` for `count` messages.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<(String, SystemTime)> {
        let deadline = tokio::time::Instant::now() + within;
        while self.seen.lock().unwrap().len() < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seen()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stop signal for spawned beats and workers.
pub fn stopper() -> (
    tokio::sync::watch::Sender<bool>,
    impl Fn() -> futures_util::future::BoxFuture<'static, ()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let until = move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        }) as futures_util::future::BoxFuture<'static, ()>
    };
    (tx, until)
}
