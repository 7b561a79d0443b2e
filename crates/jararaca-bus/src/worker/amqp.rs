//! The worker on RabbitMQ: one session per connection, reopened with backoff when lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jararaca_retry::RetryPolicy;
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
use crate::amqp::{ACCESS_REFUSED_RETRY, close, connect, soft_error};
use crate::{BrokerUrl, BusError};

/// Runs sessions until `stop`; the first session's failure to start is returned.
pub(super) async fn run(
    url: &BrokerUrl,
    plan: &Plan,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let _torn_down = TearDown(plan);
    let mut backoff = Backoff::new(url.connection_retry);
    let mut started_once = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let session = tokio::select! {
            session = start(url, plan) => session,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let delay = match session {
            Ok(session) => {
                started_once = true;
                backoff.connected();
                let started = tokio::time::Instant::now();
                tracing::info!(queues = plan.runtimes.len(), "worker consuming");
                match session.run(plan, grace, stop.clone()).await {
                    Ended::Stopped => return Ok(()),
                    Ended::Lost(reason) => {
                        tracing::error!(%reason, "the worker session ended unexpectedly; reconnecting and restarting the consumers");
                        backoff.session_ended(started.elapsed())
                    }
                }
            }
            // The same credentials would be refused again: say so now, and do not hammer
            // the broker (some lock accounts out after repeated failures).
            Err(error @ BusError::AccessRefused { .. }) if !started_once => return Err(error),
            Err(error @ BusError::AccessRefused { .. }) => {
                tracing::error!(%error, "RabbitMQ refused the worker's login; trying again in 30 s");
                ACCESS_REFUSED_RETRY
            }
            // Nothing to resume yet: a wrong URL or missing topology is the caller's to fix.
            Err(error) if !started_once && !is_connect_failure(&error) => return Err(error),
            Err(error) if !started_once && backoff.failures >= url.connection_retry.max_retries => {
                return Err(error);
            }
            Err(error) if is_connect_failure(&error) => {
                tracing::warn!(%error, attempt = backoff.failures + 1, "connecting the worker to RabbitMQ failed");
                backoff.connect_failed()
            }
            // Connected, then failed to set the session up.
            Err(error) => {
                tracing::warn!(%error, "starting a worker session failed");
                backoff.connected();
                backoff.session_ended(Duration::ZERO)
            }
        };
        let delay = if started_once {
            delay.min(RESUME_MAX_DELAY)
        } else {
            delay
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

fn is_connect_failure(error: &BusError) -> bool {
    matches!(
        error,
        BusError::Amqp {
            operation: "connect",
            ..
        }
    )
}

/// The most a worker that has consumed before waits between attempts to resume, whatever
/// the URL's `connection_retry_max_delay`: after an outage it consumes again within this
/// long of the broker's return.
pub(super) const RESUME_MAX_DELAY: Duration = Duration::from_secs(5);

/// The delays between worker sessions, from the URL's connection retry policy.
#[derive(Debug)]
struct Backoff {
    policy: RetryPolicy,
    /// Connection attempts failed in a row; a connection that opens resets it.
    failures: u32,
    /// Sessions in a row that connected but failed to start or ended before running
    /// [`STEADY`]; they back off among themselves, so a session that keeps dying at once does
    /// not reconnect in a hot loop.
    flaps: u32,
}

impl Backoff {
    fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            flaps: 0,
        }
    }

    /// A connection opened: the outage, if any, is over.
    fn connected(&mut self) {
        self.failures = 0;
    }

    /// The wait after a failed connection attempt.
    fn connect_failed(&mut self) -> Duration {
        let delay = self.policy.delay_for(self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// The wait after a session that ran for `lasted` ended.
    fn session_ended(&mut self, lasted: Duration) -> Duration {
        if lasted >= STEADY {
            self.flaps = 0;
        }
        let delay = self.policy.delay_for(self.flaps.min(16));
        self.flaps = self.flaps.saturating_add(1);
        delay
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
struct Session {
    connection: Connection,
    /// The consumers' channels, closed before the connection.
    channels: Vec<Channel>,
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
        channels: channels.into_values().collect(),
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
        close(&self.connection, &self.channels, "worker stopping").await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .initial_delay(Duration::from_secs(1))
            .backoff_factor(2.0)
            .max_delay(Duration::from_secs(60))
            .jitter(false)
    }

    #[test]
    fn a_connection_that_opens_resets_the_backoff() {
        let mut backoff = Backoff::new(policy());
        let outage: Vec<_> = (0..7).map(|_| backoff.connect_failed()).collect();
        assert_eq!(outage.last(), Some(&Duration::from_secs(60)), "{outage:?}");
        // The broker is back, but the first session dies at once (say its queues are not
        // up yet): the next try comes after the initial delay, not after another minute.
        backoff.connected();
        assert_eq!(
            backoff.session_ended(Duration::from_millis(10)),
            Duration::from_secs(1)
        );
        // Should the broker go again, connecting starts over from the initial delay.
        assert_eq!(backoff.connect_failed(), Duration::from_secs(1));
    }

    #[test]
    fn sessions_that_keep_dying_back_off_until_one_runs_steadily() {
        let mut backoff = Backoff::new(policy());
        let quick = Duration::from_millis(10);
        let delays: Vec<_> = (0..4)
            .map(|_| {
                backoff.connected();
                backoff.session_ended(quick)
            })
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8].map(Duration::from_secs),
            "a flapping session backs off"
        );
        assert_eq!(backoff.session_ended(STEADY), Duration::from_secs(1));
    }
}
