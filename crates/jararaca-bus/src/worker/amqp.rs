//! The worker on RabbitMQ: one session per connection, reopened with backoff when lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPSoftError;
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Plan;
use super::consumer::{Ended, SETTLE_TIMEOUT, STEADY, Source, StopMode, consume};
use crate::amqp::{connect, soft_error};
use crate::{BrokerUrl, BusError};

/// Runs sessions until `stop`; the first session's failure to start is returned.
pub(super) async fn run(
    url: &BrokerUrl,
    plan: &Plan,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let _torn_down = TearDown(plan);
    let mut failures: u32 = 0;
    let mut started_once = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let session = tokio::select! {
            session = start(url, plan) => session,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match session {
            Ok(session) => {
                started_once = true;
                let started = tokio::time::Instant::now();
                tracing::info!(queues = plan.runtimes.len(), "worker consuming");
                match session.run(plan, grace, stop.clone()).await {
                    Ended::Stopped => return Ok(()),
                    Ended::Lost(reason) => {
                        // Sessions that keep ending at once back off further and further.
                        if started.elapsed() >= STEADY {
                            failures = 0;
                        }
                        tracing::error!(%reason, "the worker session ended unexpectedly; reconnecting and restarting the consumers");
                    }
                }
            }
            // Nothing to resume yet: a wrong URL or missing topology is the caller's to fix.
            Err(error)
                if !started_once
                    && !matches!(
                        error,
                        BusError::Amqp {
                            operation: "connect",
                            ..
                        }
                    ) =>
            {
                return Err(error);
            }
            Err(error) if !started_once && failures >= url.connection_retry.max_retries => {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, attempt = failures + 1, "starting a worker session failed");
            }
        }
        let delay = url.connection_retry.delay_for(failures.min(16));
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// Marks the handlers as torn down when the worker stops or is dropped: deliveries abandoned
/// after that are left to the broker, whose connection is going.
struct TearDown<'a>(&'a Plan);

impl Drop for TearDown<'_> {
    fn drop(&mut self) {
        for runtime in &self.0.runtimes {
            runtime
                .torn_down
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// How long closing a connection or cancelling a consumer may take before it is abandoned.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

struct Session {
    connection: Connection,
    consumers: JoinSet<Ended>,
    mode: watch::Sender<StopMode>,
}

async fn start(url: &BrokerUrl, plan: &Plan) -> Result<Session, BusError> {
    let connection = connect(url, &format!("jararaca worker {}", url.exchange)).await?;
    let check = open(&connection).await?;
    passive_exchange(&check, &url.exchange, ExchangeKind::Topic).await?;
    let check = open(&connection).await?;
    passive_exchange(&check, &url.dead_letter.exchange, ExchangeKind::Direct).await?;
    let check = open(&connection).await?;
    passive_queue(&check, &url.dead_letter.queue).await?;

    let mut channels: BTreeMap<&str, Channel> = BTreeMap::new();
    let (mode, mode_rx) = watch::channel(StopMode::Running);
    let mut consumers = JoinSet::new();
    for ((runtime, semaphore), (key, prefetch)) in plan
        .runtimes
        .iter()
        .zip(&plan.semaphores)
        .zip(&plan.channels)
    {
        let channel = match channels.get(key.as_str()) {
            Some(channel) => channel.clone(),
            None => {
                let channel = open(&connection).await?;
                channel
                    .basic_qos(
                        *prefetch,
                        BasicQosOptions {
                            global: url.qos_global,
                        },
                    )
                    .await
                    .map_err(BusError::amqp("setting the prefetch"))?;
                channels.insert(key, channel.clone());
                channel
            }
        };
        passive_queue(&channel, &runtime.queue).await?;
        let consumer = channel
            .basic_consume(
                ShortString::from(&*runtime.queue),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(BusError::amqp("starting a consumer"))?;
        consumers.spawn(consume(
            Source::Amqp(Box::new((consumer, channel))),
            Arc::clone(runtime),
            Arc::clone(semaphore),
            mode_rx.clone(),
        ));
    }
    Ok(Session {
        connection,
        consumers,
        mode,
    })
}

impl Session {
    async fn run(mut self, plan: &Plan, grace: Duration, mut stop: watch::Receiver<bool>) -> Ended {
        let mut events = self.connection.events_listener();
        let ended = tokio::select! {
            _ = stop.wait_for(|s| *s) => Ended::Stopped,
            Some(joined) = self.consumers.join_next() => match joined {
                Ok(Ended::Stopped) => Ended::Lost("a consumer stopped".into()),
                Ok(lost) => lost,
                Err(error) => Ended::Lost(format!("a consumer task failed: {error}")),
            },
            reason = connection_error(&mut events) => Ended::Lost(reason),
        };
        let mode = match ended {
            Ended::Stopped => StopMode::Drain(tokio::time::Instant::now() + grace),
            Ended::Lost(_) => StopMode::Abort,
        };
        let _ = self.mode.send(mode);
        while self.consumers.join_next().await.is_some() {}
        // A consumer that died dropped its deliveries without waiting for them to be settled.
        for runtime in &plan.runtimes {
            let left = runtime.in_flight.wait_idle(SETTLE_TIMEOUT).await;
            if left > 0 {
                tracing::warn!(queue = %runtime.queue, left, "abandoned deliveries were not settled in time; the broker requeues them");
            }
        }
        // Closing returns every unacknowledged message to its queue; a connection that no
        // longer answers is simply dropped, which the broker treats the same way.
        let _ = tokio::time::timeout(
            CLOSE_TIMEOUT,
            self.connection.close(200, "worker stopping".into()),
        )
        .await;
        ended
    }
}

async fn connection_error(
    events: &mut (impl futures_util::Stream<Item = lapin::Event> + Unpin),
) -> String {
    while let Some(event) = events.next().await {
        if let lapin::Event::Error(error) = event {
            return error.to_string();
        }
    }
    "the connection closed".to_string()
}

async fn open(connection: &Connection) -> Result<Channel, BusError> {
    connection
        .create_channel()
        .await
        .map_err(BusError::amqp("opening a channel"))
}

fn missing(name: &str, error: lapin::Error) -> BusError {
    match soft_error(&error) {
        Some((AMQPSoftError::NOTFOUND, detail)) => BusError::MissingTopology {
            name: name.to_string(),
            detail,
        },
        _ => BusError::Amqp {
            operation: "checking the topology",
            source: error,
        },
    }
}

async fn passive_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), BusError> {
    channel
        .exchange_declare(
            ShortString::from(name),
            kind,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| missing(name, e))
}

async fn passive_queue(channel: &Channel, name: &str) -> Result<(), BusError> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(drop)
        .map_err(|e| missing(name, e))
}
