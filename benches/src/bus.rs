//! The `bus` workload: consuming persistent JSON messages from RabbitMQ, decoding each and
//! acknowledging it, through the jararaca `Worker` (one `typed` handler wrapped in
//! `UnitOfWorkLayer` + `ScopeLayer`, as a service runs it) and through a raw lapin consumer
//! doing the same decode and ack, at the same prefetch.
//!
//! The raw consumer acknowledges each message on its own; the worker acknowledges runs of
//! settled deliveries with one `basic.ack(multiple)` (see the crate's README), which is
//! what the ratio measures against.
//!
//! Each run pre-publishes a batch into a fresh queue (publisher confirms, not timed), then
//! times consumption only: from starting the consumer until the last message was decoded
//! and acknowledged (for the worker: handled; its last acknowledgement follows within a
//! few milliseconds, when the run is sent or at the stop). The queue must be empty
//! afterwards (every message acknowledged), or the run fails. Both sides run five times by
//! default, alternating which goes first, and the ratio is of the medians.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use jararaca_bus::{
    BrokerUrl, DeadLetterNames, Delivery, Handler, Message, MessageKind, QueueSpec, Topology,
    Worker, declare, typed,
};
use jararaca_di::{Container, ScopeLayer, UnitOfWorkLayer};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tower::ServiceBuilder;

use crate::harness::{self, BoxError, median};

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The longest one consumption may take before the run is abandoned.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(300);

/// The message of the workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Item {
    id: u64,
    name: String,
}

impl Message for Item {
    const TOPIC: &'static str = "bench.item";
    const KIND: MessageKind = MessageKind::Task;
}

/// Options of the `bus` workload.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    runs: usize,
    messages: u64,
    prefetch: u16,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 5,
            messages: 100_000,
            prefetch: 256,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            match flag {
                "--runs" => options.runs = (number as usize).max(3),
                "--messages" => options.messages = number.max(1),
                "--prefetch" => {
                    options.prefetch = u16::try_from(number)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("--prefetch must be 1 to 65535, not {number}"))?
                }
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(options)
    }
}

/// Runs the workload and prints the ratio last.
pub(crate) fn run(options: &Options) -> ExitCode {
    // Two worker threads, the same for both consumers: the machine's cores are shared with
    // RabbitMQ, as in production.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    harness::report("bus", runtime, bench(options))
}

async fn bench(options: &Options) -> Result<f64, BoxError> {
    let amqp = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    println!(
        "bus: consume {} persistent JSON messages (pre-published, not timed), decode and ack, \
         prefetch {}, {} runs each, alternating",
        options.messages, options.prefetch, options.runs
    );
    let targets = ["raw", "jararaca"];
    let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..options.runs {
        // Alternate which goes first so drift in the machine's state favours neither.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let target = targets[index];
            let batch = Batch::prepare(&amqp, options).await?;
            let measured = match target {
                "raw" => consume_raw(&batch).await,
                _ => consume_jararaca(&batch).await,
            };
            let left = batch.left().await;
            batch.cleanup().await;
            let elapsed = measured?;
            match left {
                Ok(0) => {}
                Ok(n) => return Err(format!("{target}: {n} messages left unacknowledged").into()),
                Err(e) => return Err(e),
            }
            let rate = options.messages as f64 / elapsed.as_secs_f64();
            println!(
                "run {}: {target:>8} {rate:>9.0} msg/s  ({:.2} s)",
                run + 1,
                elapsed.as_secs_f64()
            );
            results[index].push(rate);
        }
    }
    let raw = median(&mut results[0]);
    let ours = median(&mut results[1]);
    println!("median: raw lapin {raw:.0} msg/s, jararaca Worker {ours:.0} msg/s");
    Ok(ours / raw)
}

/// A fresh exchange and handler queue holding `messages` messages.
struct Batch {
    url: BrokerUrl,
    queue: String,
    messages: u64,
}

impl Batch {
    async fn prepare(amqp: &str, options: &Options) -> Result<Self, BoxError> {
        let name = format!(
            "jararaca_bench_bus_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let url = BrokerUrl::parse(&format!(
            "{amqp}?exchange={name}&prefetch_count={}",
            options.prefetch
        ))
        .map_err(|e| format!("{e} (set AMQP_URL to a reachable RabbitMQ)"))?
        .dead_letter(DeadLetterNames::prefixed(&name));
        let queue = format!("{}.{name}.Items.on_item", Item::TOPIC);
        declare(
            &url,
            &Topology::new().queue(QueueSpec::handler(&queue, Item::TOPIC)),
            false,
        )
        .await?;
        let batch = Self {
            url,
            queue,
            messages: options.messages,
        };
        batch.publish().await?;
        Ok(batch)
    }

    async fn connect(&self) -> Result<Connection, BoxError> {
        Ok(Connection::connect(&self.url.connection_url, ConnectionProperties::default()).await?)
    }

    /// Publishes the batch as jararaca does (persistent, a message id, compact JSON) straight
    /// into the queue, with publisher confirms in windows.
    async fn publish(&self) -> Result<(), BoxError> {
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut pending = Vec::with_capacity(1000);
        for id in 0..self.messages {
            let body = serde_json::to_vec(&Item {
                id,
                name: format!("item number {id}"),
            })?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(jararaca_bus::new_message_id()));
            pending.push(
                channel
                    .basic_publish(
                        ShortString::from(""),
                        ShortString::from(self.queue.as_str()),
                        BasicPublishOptions::default(),
                        &body,
                        properties,
                    )
                    .await?,
            );
            if pending.len() == 1000 {
                for confirm in pending.drain(..) {
                    confirm.await?;
                }
            }
        }
        for confirm in pending {
            confirm.await?;
        }
        let _ = connection.close(200, "published".into()).await;
        Ok(())
    }

    /// Messages still in the queue (ready or unacknowledged).
    async fn left(&self) -> Result<u32, BoxError> {
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        let queue = channel
            .queue_declare(
                ShortString::from(self.queue.as_str()),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = connection.close(200, "counted".into()).await;
        Ok(queue.message_count())
    }

    async fn cleanup(&self) {
        let Ok(connection) = self.connect().await else {
            return;
        };
        if let Ok(channel) = connection.create_channel().await {
            let dl = &self.url.dead_letter;
            for queue in [&self.queue, &dl.queue] {
                let _ = channel
                    .queue_delete(
                        ShortString::from(queue.as_str()),
                        QueueDeleteOptions::default(),
                    )
                    .await;
            }
            for exchange in [&self.url.exchange, &dl.exchange] {
                let _ = channel
                    .exchange_delete(
                        ShortString::from(exchange.as_str()),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
        }
        let _ = connection.close(200, "done".into()).await;
    }
}

/// The baseline: one lapin consumer at the same prefetch, decoding each message into the
/// same struct and acknowledging it. Acknowledgements are pipelined (awaiting each before
/// taking the next delivery halves the throughput), at most a prefetch of them in flight.
async fn consume_raw(batch: &Batch) -> Result<Duration, BoxError> {
    let connection = batch.connect().await?;
    let channel = connection.create_channel().await?;
    let prefetch = batch.url.prefetch_count.unwrap_or(256);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let started = Instant::now();
    let mut consumer = channel
        .basic_consume(
            ShortString::from(batch.queue.as_str()),
            ShortString::from("raw"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut received = 0;
    let mut acked = 0;
    let mut checksum = 0;
    let mut acks = FuturesUnordered::new();
    let elapsed = tokio::time::timeout(CONSUME_TIMEOUT, async {
        while acked < batch.messages {
            tokio::select! {
                Some(ack) = acks.next() => {
                    ack?;
                    acked += 1;
                }
                delivery = consumer.next(), if received < batch.messages => {
                    let delivery = delivery.ok_or("the consumer ended early")??;
                    let item: Item = serde_json::from_slice(&delivery.data)?;
                    checksum += item.id;
                    received += 1;
                    acks.push(async move { delivery.acker.ack(BasicAckOptions::default()).await });
                }
            }
        }
        Ok::<_, BoxError>(started.elapsed())
    })
    .await
    .map_err(|_| format!("raw: not done within {CONSUME_TIMEOUT:?}"))??;
    check(checksum, batch.messages)?;
    let _ = connection.close(200, "consumed".into()).await;
    Ok(elapsed)
}

/// Ours: the worker with one typed handler inside the unit-of-work and DI scope layers.
async fn consume_jararaca(batch: &Batch) -> Result<Duration, BoxError> {
    let container = Container::builder().value(Label).build().await?;
    let handled = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let total = batch.messages;
    let service = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(ScopeLayer::new(container))
        .service(typed({
            let handled = Arc::clone(&handled);
            let checksum = Arc::clone(&checksum);
            let done = Arc::clone(&done);
            move |item: Item, _delivery: Delivery| {
                checksum.fetch_add(item.id, Ordering::Relaxed);
                if handled.fetch_add(1, Ordering::AcqRel) + 1 == total {
                    done.notify_one();
                }
                async { Ok(()) }
            }
        }));
    let worker = Worker::amqp(batch.url.clone())
        .grace_period(Duration::from_secs(30))
        .handler(Handler::new::<Item, _>(&batch.queue, service));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let finished = tokio::time::timeout(CONSUME_TIMEOUT, done.notified()).await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    running.await??;
    finished.map_err(|_| format!("jararaca: not done within {CONSUME_TIMEOUT:?}"))?;
    check(checksum.load(Ordering::Acquire), total)?;
    Ok(elapsed)
}

/// A value the container provides, so the scope layer has a real container to scope.
#[derive(Debug)]
struct Label;

/// Every message was decoded once: the ids `0..n` add up to `n(n-1)/2`.
fn check(checksum: u64, n: u64) -> Result<(), BoxError> {
    let expected = n * (n - 1) / 2;
    if checksum == expected {
        Ok(())
    } else {
        Err(format!("decoded ids add up to {checksum}, not {expected}").into())
    }
}
