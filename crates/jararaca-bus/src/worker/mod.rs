//! The worker: consumes every handler's queue and runs its service, with bounded
//! concurrency, retries, dead-lettering, graceful stop and (for RabbitMQ) reconnection.

mod ack;
#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "amqp")]
mod batch;
mod consumer;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub(crate) use self::ack::AckHandle;
use self::consumer::{ChannelPlan, StopMode, supervise};
use self::process::Runtime;
#[cfg(feature = "amqp")]
use crate::BrokerUrl;
use crate::delayed::{DelayedStore, InMemoryStore, run_pump};
use crate::memory::InMemoryBroker;
use crate::topology::Topology;
use crate::{BusError, Handler, Publisher};

#[derive(Debug, Clone)]
enum Transport {
    #[cfg(feature = "amqp")]
    Amqp(Box<BrokerUrl>),
    Memory(InMemoryBroker),
}

/// Called with the delivery tag and `multiple` of each acknowledgement a batch is about to
/// send: a seam for fault tests.
pub(crate) type AckHook = fn(u64, bool);

/// How long in-flight handlers may finish after a stop is requested (the reference's
/// `--gracious-shutdown-seconds` default).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(20);

/// Consumes the queues of its handlers and runs them.
///
/// Each handler's service runs inside the worker's policy, built from reusable layers:
/// [`SettleLayer`](crate::SettleLayer) (the [`SettlePolicy`](crate::SettlePolicy) of its
/// [`HandlerOptions`](crate::HandlerOptions)) around
/// [`CatchPanicLayer`](jararaca_di::CatchPanicLayer) around tower's `TimeoutLayer` (when the
/// handler has a timeout); the worker then carries out the resulting
/// [`Settlement`](crate::Settlement) on its broker.
///
/// * concurrency per channel is bounded by its prefetch (`prefetch_count` of the URL, or the
///   handler's or channel's own);
/// * a message is acknowledged only after its service (with its unit of work) succeeded;
///   on RabbitMQ a contiguous run of settled deliveries is acknowledged with one
///   `basic.ack(multiple)`, sent once it holds a quarter of the prefetch and otherwise
///   within 5 ms; a rejection or requeue goes alone, after the run below it. What is not
///   sent when the process dies or the connection drops is delivered again by the broker
///   (at least once, as for any unacknowledged message);
/// * a failure, a timeout or a panic of the handler is retried with backoff through the
///   delayed-message store (`x-retry-count`, `x-last-error`: `the handler panicked: <msg>`
///   for a panic), then dead-lettered; an undecodable body is dead-lettered at once; the
///   dead-lettered copy carries the reason in `x-dead-letter-reason`, the error in
///   `x-last-error` and the queue in `x-dead-letter-queue`;
/// * a delivery whose processing is dropped before it is settled (the grace period ran out,
///   its consumer died) is sent back to its queue with `x-retry-count + 1`, or dead-lettered
///   once the retry budget is spent, so it can neither be lost nor loop forever; on
///   RabbitMQ, if that copy cannot be sent, the original is requeued as it is, and when the
///   worker's own future is dropped (or the connection is lost) the broker redelivers it
///   uncounted, as after a crash;
/// * an acknowledgement that RabbitMQ's client reports as without effect (its channel
///   closed) is an error ([`BusError::NotSettled`]), logged with the queue and returned by
///   [`Delivery::ack_now`](crate::Delivery::ack_now);
/// * [`run`](Worker::run) stops consuming when its shutdown future completes, lets in-flight
///   handlers finish within the grace period and leaves everything else on the queue;
/// * a consumer that ends while the worker is not stopping (its task panicked, the broker
///   cancelled it, its connection was lost) is restarted with backoff and logged at ERROR,
///   never left silent: with RabbitMQ the session (connection and consumers) is reopened,
///   on the in-memory broker that consumer alone is started again. The backoff grows while
///   restarts follow each other quickly and starts over after a minute of steady running.
pub struct Worker {
    transport: Transport,
    handlers: Vec<Handler>,
    store: Option<Arc<dyn DelayedStore>>,
    pump_interval: Option<Duration>,
    grace: Duration,
    only_names: Option<BTreeSet<String>>,
    only_groups: Option<BTreeSet<String>>,
    default_prefetch: u16,
    before_batched_ack: Option<AckHook>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("transport", &self.transport)
            .field("handlers", &self.handlers)
            .field("store", &self.store)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker on RabbitMQ. The URL's `prefetch_count` (or `AMQP_PREFETCH_COUNT`) is
    /// required, as in the reference.
    #[cfg(feature = "amqp")]
    pub fn amqp(url: BrokerUrl) -> Self {
        Self::with_transport(Transport::Amqp(Box::new(url)))
    }

    /// A worker on the in-process broker: the embedded default. Its handler queues are
    /// created and bound when it starts.
    pub fn in_memory(broker: InMemoryBroker) -> Self {
        Self::with_transport(Transport::Memory(broker))
    }

    fn with_transport(transport: Transport) -> Self {
        Self {
            transport,
            handlers: Vec::new(),
            store: None,
            pump_interval: None,
            grace: DEFAULT_GRACE_PERIOD,
            only_names: None,
            only_groups: None,
            default_prefetch: 32,
            before_batched_ack: None,
        }
    }

    /// Adds a handler.
    #[must_use]
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handlers.push(handler);
        self
    }

    /// Keeps retries in `store` (a [`RedisStore`](crate::RedisStore) in production). Without
    /// one the worker keeps them in memory and pumps them itself, which loses pending
    /// retries when the process stops.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn DelayedStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Also runs the delayed-message pump every `interval` (the all-in-one mode; otherwise
    /// the beat runs it).
    #[must_use]
    pub fn pump(mut self, interval: Duration) -> Self {
        self.pump_interval = Some(interval);
        self
    }

    /// How long in-flight handlers may finish after a stop ([`DEFAULT_GRACE_PERIOD`]).
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Runs only the handlers with these names (`--handlers`); unnamed ones are skipped.
    #[must_use]
    pub fn only_handlers(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.only_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Runs only the handlers in these groups (`--groups`).
    #[must_use]
    pub fn only_groups(mut self, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.only_groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// The prefetch of the in-memory broker's channels (RabbitMQ takes it from the URL).
    #[must_use]
    pub fn default_prefetch(mut self, prefetch: u16) -> Self {
        self.default_prefetch = prefetch;
        self
    }

    /// Calls `hook` with the delivery tag and `multiple` of each batched RabbitMQ
    /// acknowledgement just before it is sent: a seam for fault tests (a test kills the
    /// process there), not part of the API.
    #[doc(hidden)]
    #[must_use]
    pub fn before_batched_ack(mut self, hook: fn(u64, bool)) -> Self {
        self.before_batched_ack = Some(hook);
        self
    }

    /// The queues its handlers need, for [`declare`](crate::declare).
    pub fn topology(&self) -> Topology {
        self.selected()
            .fold(Topology::new(), |t, h| t.queue(h.queue_spec()))
    }

    fn selected(&self) -> impl Iterator<Item = &Handler> {
        self.handlers
            .iter()
            .filter(|h| keep(self.only_names.as_ref(), self.only_groups.as_ref(), h))
    }

    /// Runs until `shutdown` completes, then stops gracefully and returns `Ok`. Returns an
    /// error only when it cannot start (a wrong URL, missing topology on first connect);
    /// once running, lost connections and consumers are restarted instead.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), BusError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let main = self.run_until(stop_rx);
        tokio::pin!(main);
        tokio::pin!(shutdown);
        tokio::select! {
            result = &mut main => return result,
            () = &mut shutdown => {
                tracing::info!("stopping the worker: no new messages, finishing in-flight ones");
                let _ = stop_tx.send(true);
            }
        }
        main.await
    }

    async fn run_until(mut self, stop: watch::Receiver<bool>) -> Result<(), BusError> {
        if let Some(names) = &self.only_names {
            let unknown: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|name| !self.handlers.iter().any(|h| h.names().any(|n| n == *name)))
                .collect();
            if !unknown.is_empty() {
                let known: BTreeSet<&str> = self.handlers.iter().flat_map(Handler::names).collect();
                return Err(BusError::Config(format!(
                    "no handler is named {}: --handlers takes a handler's name, its method, \
                     `Controller.method` or its queue: {}",
                    unknown.join(", "),
                    known.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let handlers: Vec<Handler> = std::mem::take(&mut self.handlers)
            .into_iter()
            .filter(|h| keep(self.only_names.as_ref(), self.only_groups.as_ref(), h))
            .collect();
        if handlers.is_empty() {
            return Err(BusError::Config(
                "no handler to run: add handlers, or check the --handlers/--groups filters".into(),
            ));
        }
        let (store, pump_interval) = match self.store.clone() {
            Some(store) => (store, self.pump_interval),
            None => {
                let store: Arc<dyn DelayedStore> = Arc::new(InMemoryStore::new());
                (
                    store,
                    Some(self.pump_interval.unwrap_or(Duration::from_secs(1))),
                )
            }
        };
        match self.transport.clone() {
            #[cfg(feature = "amqp")]
            Transport::Amqp(url) => {
                let default_prefetch = url.prefetch_count.ok_or_else(|| {
                    BusError::Config(
                        "the worker needs a prefetch: add `&prefetch_count=<n>` to the broker URL or set AMQP_PREFETCH_COUNT".into(),
                    )
                })?;
                let publisher: Arc<dyn Publisher> = Arc::new(crate::AmqpPublisher::lazy(&url));
                let plan = Plan::new(
                    handlers,
                    &url.consumer_retry,
                    &store,
                    &publisher,
                    self.before_batched_ack,
                    |h| {
                        channel_key(
                            h,
                            url.shared_default_channel,
                            &url.prefetch_count_by_channel_id,
                            default_prefetch,
                        )
                    },
                );
                let pump = pump_task(pump_interval, &store, &publisher);
                let result = amqp::run(&url, &plan, self.grace, stop).await;
                finish_pump(pump).await;
                result
            }
            Transport::Memory(broker) => {
                let publisher: Arc<dyn Publisher> = Arc::new(broker.clone());
                let bindings: Vec<(String, String)> = handlers
                    .iter()
                    .map(|h| (h.queue.clone(), h.binding_key()))
                    .collect();
                let no_overrides = BTreeMap::new();
                let prefetch = self.default_prefetch;
                let plan = Plan::new(
                    handlers,
                    &jararaca_retry::RetryPolicy::default()
                        .initial_delay(Duration::from_secs(5))
                        .backoff_factor(3.0),
                    &store,
                    &publisher,
                    None,
                    |h| channel_key(h, false, &no_overrides, prefetch),
                );
                for (queue, binding_key) in &bindings {
                    broker.declare_queue(queue, binding_key);
                }
                let pump = pump_task(pump_interval, &store, &publisher);
                let (mode_tx, mode_rx) = watch::channel(StopMode::Running);
                let mut tasks = tokio::task::JoinSet::new();
                for (runtime, channel) in plan.runtimes.iter().zip(&plan.semaphores) {
                    tasks.spawn(supervise(
                        broker.clone(),
                        Arc::clone(runtime),
                        Arc::clone(channel),
                        mode_rx.clone(),
                    ));
                }
                let mut stop = stop;
                let _ = stop.wait_for(|s| *s).await;
                let _ = mode_tx.send(StopMode::Drain(tokio::time::Instant::now() + self.grace));
                while tasks.join_next().await.is_some() {}
                finish_pump(pump).await;
                Ok(())
            }
        }
    }
}

fn keep(
    names: Option<&BTreeSet<String>>,
    groups: Option<&BTreeSet<String>>,
    handler: &Handler,
) -> bool {
    let by_name = names.is_none_or(|names| handler.names().any(|n| names.contains(n)));
    let by_group = groups.is_none_or(|groups| {
        handler
            .options
            .group
            .as_ref()
            .is_some_and(|g| groups.contains(g))
    });
    by_name && by_group
}

/// The handlers as the worker runs them, with what their channels share.
pub(crate) struct Plan {
    pub(crate) runtimes: Vec<Arc<Runtime>>,
    /// One per runtime (its channel's permits and prefetch); runtimes on one channel share it.
    pub(crate) semaphores: Vec<Arc<ChannelPlan>>,
    /// The channel key and prefetch of each runtime.
    pub(crate) channels: Vec<(String, u16)>,
}

impl Plan {
    fn new(
        handlers: Vec<Handler>,
        default_retry: &jararaca_retry::RetryPolicy,
        store: &Arc<dyn DelayedStore>,
        publisher: &Arc<dyn Publisher>,
        before_batched_ack: Option<AckHook>,
        channel_of: impl Fn(&Handler) -> (String, u16),
    ) -> Self {
        let mut by_channel: BTreeMap<String, Arc<ChannelPlan>> = BTreeMap::new();
        let mut plan = Plan {
            runtimes: Vec::new(),
            semaphores: Vec::new(),
            channels: Vec::new(),
        };
        for handler in handlers {
            let (key, prefetch) = channel_of(&handler);
            let channel = Arc::clone(
                by_channel
                    .entry(key.clone())
                    .or_insert_with(|| Arc::new(ChannelPlan::new(prefetch, before_batched_ack))),
            );
            plan.runtimes.push(Arc::new(Runtime::new(
                handler,
                default_retry,
                store,
                publisher,
            )));
            plan.semaphores.push(channel);
            plan.channels.push((key, prefetch));
        }
        plan
    }
}

/// The channel a handler runs on and its prefetch, as the reference picks them: its own
/// `channel_id`, else `DEFAULT` when channels are shared, else its queue name.
fn channel_key(
    handler: &Handler,
    shared_default: bool,
    by_channel: &BTreeMap<String, u16>,
    default_prefetch: u16,
) -> (String, u16) {
    let key = match (&handler.options.channel_id, shared_default) {
        (Some(id), _) => id.clone(),
        (None, true) => "DEFAULT".to_string(),
        (None, false) => handler.queue.clone(),
    };
    let prefetch = by_channel
        .get(&key)
        .copied()
        .or(handler.options.prefetch)
        .unwrap_or(default_prefetch);
    (key, prefetch)
}

/// The delayed-message pump running beside the consumers.
struct PumpTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the pump (if the worker runs one).
fn pump_task(
    interval: Option<Duration>,
    store: &Arc<dyn DelayedStore>,
    publisher: &Arc<dyn Publisher>,
) -> Option<PumpTask> {
    let interval = interval?;
    let store = Arc::clone(store);
    let publisher = Arc::clone(publisher);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_pump(&*store, &*publisher, interval, async move {
            let _ = stopped.await;
        })
        .await;
    });
    Some(PumpTask { stop, task })
}

/// Stops the pump after the consumers (retries scheduled while draining are stored), letting
/// a pass in progress finish so no claimed message is lost.
async fn finish_pump(pump: Option<PumpTask>) {
    if let Some(pump) = pump {
        let _ = pump.stop.send(());
        let _ = pump.task.await;
    }
}
