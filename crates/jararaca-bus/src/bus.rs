//! [`Bus`] (a publisher and a delayed-message store), [`BusLayer`] and the unit-of-work
//! staging handle [`UnitBus`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jararaca_di::{Envelope, UnitOfWork};
use jararaca_retry::RetryPolicy;
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::delayed::{DelayedMessage, DelayedStore};
use crate::outbox::{OutboxMessage, OutboxSource, RelayOptions, Relays, UnitOutbox};
use crate::{BusError, Message, Outgoing, Publisher};

/// A publisher plus (optionally) a delayed-message store: what a service publishes with.
///
/// Outside a unit of work its methods send at once. Inside one, [`BusLayer`] makes it
/// ambient and messages are staged with [`UnitBus`] or
/// [`MessageExt::publish`](crate::MessageExt::publish): written to the unit's transactional
/// outbox when it has one (see [`outbox`](crate::outbox)), else sent after the unit commits.
#[derive(Clone)]
pub struct Bus {
    publisher: Arc<dyn Publisher>,
    store: Option<Arc<dyn DelayedStore>>,
    shared: Arc<Shared>,
}

/// What every clone of a bus shares: its relays and how it reports what it could not send.
struct Shared {
    relays: Relays,
    after_commit_retry: Mutex<RetryPolicy>,
    on_not_published: Mutex<Option<NotPublishedHandler>>,
    not_published: AtomicU64,
    relay_failures: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            relays: Relays::default(),
            after_commit_retry: Mutex::new(default_after_commit_retry()),
            on_not_published: Mutex::new(None),
            not_published: AtomicU64::new(0),
            relay_failures: AtomicU64::new(0),
        }
    }
}

/// The default retry of after-commit publishing: two more attempts, 100 ms then 200 ms later.
fn default_after_commit_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(2)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
}

/// Called with what a committed unit staged but could not publish (after-commit mode only:
/// the outbox keeps such messages and retries them).
pub type NotPublishedHandler = Arc<dyn Fn(&NotPublished) + Send + Sync>;

/// Messages a committed unit staged that were not published, even after retrying.
#[derive(Debug)]
pub struct NotPublished {
    /// The messages, in the order they were staged.
    pub messages: Vec<OutboxMessage>,
    /// The last error.
    pub error: BusError,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("publisher", &self.publisher)
            .field("store", &self.store)
            .field("relays", &self.shared.relays)
            .finish()
    }
}

impl Bus {
    /// A bus that publishes with `publisher` and has no delayed-message store yet.
    pub fn new(publisher: impl Publisher) -> Self {
        Self::from_arc(Arc::new(publisher))
    }

    /// Like [`Bus::new`], for a publisher that is already shared.
    pub fn from_arc(publisher: Arc<dyn Publisher>) -> Self {
        Self {
            publisher,
            store: None,
            shared: Arc::default(),
        }
    }

    /// Uses `store` for `delay()` and `schedule()`.
    #[must_use]
    pub fn with_store(mut self, store: impl DelayedStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Like [`Bus::with_store`], for a store that is already shared.
    #[must_use]
    pub fn with_store_arc(mut self, store: Arc<dyn DelayedStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The publisher.
    pub fn publisher(&self) -> &Arc<dyn Publisher> {
        &self.publisher
    }

    /// The delayed-message store, if any.
    pub fn store(&self) -> Option<&Arc<dyn DelayedStore>> {
        self.store.as_ref()
    }

    fn require_store(&self) -> Result<&Arc<dyn DelayedStore>, BusError> {
        self.store.as_ref().ok_or(BusError::NoDelayedStore)
    }

    /// Publishes `message` now.
    pub async fn publish<M: Message>(&self, message: &M) -> Result<(), BusError> {
        self.publisher.publish(Outgoing::message(message)?).await
    }

    /// Stores `message` for delivery after `delay`.
    pub async fn delay<M: Message>(&self, message: &M, delay: Duration) -> Result<(), BusError> {
        let store = self.require_store()?;
        store
            .enqueue(DelayedMessage::of(message, SystemTime::now() + delay)?)
            .await
    }

    /// Stores `message` for delivery at `at`.
    pub async fn schedule<M: Message>(&self, message: &M, at: SystemTime) -> Result<(), BusError> {
        let store = self.require_store()?;
        store.enqueue(DelayedMessage::of(message, at)?).await
    }

    /// Stores a delayed message built by hand (idempotency keys and policies).
    pub async fn enqueue(&self, message: DelayedMessage) -> Result<(), BusError> {
        self.require_store()?.enqueue(message).await
    }

    /// Retries after-commit publishing with `policy` (default: two retries, 100 ms and
    /// 200 ms after the first attempt). Units that write to an outbox do not use it: their
    /// relay retries until the message is out.
    #[must_use]
    pub fn with_after_commit_retry(self, policy: RetryPolicy) -> Self {
        *lock(&self.shared.after_commit_retry) = policy;
        self
    }

    /// Calls `handler` with the messages of a committed unit that after-commit publishing
    /// could not send even after retrying (they are also logged and counted in
    /// [`Bus::not_published`]): the place to alert, or to keep them elsewhere.
    #[must_use]
    pub fn on_not_published(self, handler: impl Fn(&NotPublished) + Send + Sync + 'static) -> Self {
        *lock(&self.shared.on_not_published) = Some(Arc::new(handler));
        self
    }

    /// How many staged messages of committed units after-commit publishing could not send.
    pub fn not_published(&self) -> u64 {
        self.shared.not_published.load(Ordering::Relaxed)
    }

    /// How the outbox relays of this bus run (batch size, polling); set it before the first
    /// relay starts.
    #[must_use]
    pub fn with_relay_options(self, options: RelayOptions) -> Self {
        self.shared.relays.set_options(options);
        self
    }

    /// Starts relaying `source` (an outbox table) with this bus's publisher and store, unless
    /// a relay for it runs already. The first unit that writes to an outbox starts its relay
    /// by itself; attach at startup to publish at once what an earlier process left there.
    /// Needs a Tokio runtime.
    pub fn attach_outbox(&self, source: Arc<dyn OutboxSource>) {
        self.shared.relays.attach(self, source);
    }

    /// Whether a relay runs for the outbox `key` ([`OutboxSource::key`]).
    pub fn relays_outbox(&self, key: &str) -> bool {
        self.shared.relays.is_running(key)
    }

    /// Stops the outbox relays after publishing what is in their outboxes, within `grace`;
    /// what is left stays in the table for the next relay. The bus capability does this when
    /// the service stops.
    pub async fn drain_outboxes(&self, grace: Duration) {
        self.shared.relays.drain(self, grace).await;
    }

    pub(crate) fn record_relay_failures(&self, failed: usize) {
        self.shared
            .relay_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
    }

    /// How many times an outbox relay could not publish a message (each is retried, and
    /// stays in its table until it is out): a number that grows means the broker or the
    /// delayed store refuses messages.
    pub fn outbox_failures(&self) -> u64 {
        self.shared.relay_failures.load(Ordering::Relaxed)
    }

    fn report_not_published(&self, not_published: NotPublished) {
        let count = not_published.messages.len();
        self.shared
            .not_published
            .fetch_add(count as u64, Ordering::Relaxed);
        tracing::error!(count, error = %not_published.error, "messages of a committed unit were not published");
        let handler = lock(&self.shared.on_not_published).clone();
        if let Some(handler) = handler {
            handler(&not_published);
        }
    }
}

tokio::task_local! {
    static CURRENT: Bus;
}

/// Makes a [`Bus`] available to every unit of work: ambient (for
/// [`MessageExt`](crate::MessageExt) and [`UnitBus::current`]) and in the extensions (for
/// [`UnitBus::from_extensions`]). Put it inside the
/// [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer).
#[derive(Debug, Clone)]
pub struct BusLayer {
    bus: Bus,
}

impl BusLayer {
    /// Makes `bus` available to every unit of work.
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }
}

impl<S> Layer<S> for BusLayer {
    type Service = BusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BusService {
            inner,
            bus: self.bus.clone(),
        }
    }
}

/// The service of [`BusLayer`].
#[derive(Debug, Clone)]
pub struct BusService<S> {
    inner: S,
    bus: Bus,
}

impl<S, R> Service<R> for BusService<S>
where
    S: Service<R>,
    R: Envelope,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Bus, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        req.extensions_mut().insert(self.bus.clone());
        let future = CURRENT.sync_scope(self.bus.clone(), || self.inner.call(req));
        CURRENT.scope(self.bus.clone(), future)
    }
}

/// Messages staged in one unit of work, sent by one after-commit action.
#[derive(Default)]
struct Outbox {
    staged: Mutex<Option<Staged>>,
}

#[derive(Default)]
struct Staged {
    publishes: Vec<Outgoing>,
    delays: Vec<DelayedMessage>,
}

/// The bus of one unit of work: what it publishes is staged and sent after the unit
/// commits, or dropped if it fails.
///
/// Get it with [`UnitBus::current`] (ambient) or [`UnitBus::from_extensions`] (from a
/// delivery's or request's extensions).
#[derive(Clone)]
pub struct UnitBus {
    bus: Bus,
    unit: UnitOfWork,
}

impl fmt::Debug for UnitBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitBus")
            .field("bus", &self.bus)
            .field("unit", &self.unit)
            .finish()
    }
}

/// The publisher of the current unit of work (the reference's `use_publisher()`): what it
/// publishes, delays or schedules is staged and sent after the unit commits. The same as
/// [`UnitBus::current`].
pub fn use_publisher() -> Result<UnitBus, BusError> {
    UnitBus::current()
}

impl UnitBus {
    /// Stages into `unit` with `bus`.
    pub fn new(bus: Bus, unit: UnitOfWork) -> Self {
        Self { bus, unit }
    }

    /// The bus of the current unit of work: the one [`BusLayer`] set, else the [`Bus`] of the
    /// unit's container (as a service's bus capability provides it).
    pub fn current() -> Result<Self, BusError> {
        let bus = match CURRENT.try_with(Bus::clone) {
            Ok(bus) => bus,
            Err(_) => jararaca_di::use_container()
                .ok()
                .and_then(|c| c.get::<Bus>().ok())
                .map(|bus| (*bus).clone())
                .ok_or(BusError::OutsideUnit {
                    what: "bus (BusLayer, or a Bus in the unit's container)",
                })?,
        };
        let unit = jararaca_di::use_unit_of_work().map_err(|_| BusError::OutsideUnit {
            what: "unit of work (UnitOfWorkLayer)",
        })?;
        Ok(Self { bus, unit })
    }

    /// The bus of the unit whose extensions these are, for handlers that take their
    /// dependencies explicitly: the one [`BusLayer`] put there, else the [`Bus`] of the
    /// unit's container.
    pub fn from_extensions(extensions: &http::Extensions) -> Result<Self, BusError> {
        let bus = match extensions.get::<Bus>() {
            Some(bus) => bus.clone(),
            None => extensions
                .get::<jararaca_di::Scope>()
                .and_then(|scope| scope.container().get::<Bus>().ok())
                .map(|bus| (*bus).clone())
                .ok_or(BusError::OutsideUnit {
                    what: "bus (BusLayer, or a Bus in the unit's container)",
                })?,
        };
        let unit = extensions
            .get::<UnitOfWork>()
            .cloned()
            .ok_or(BusError::OutsideUnit {
                what: "unit of work (UnitOfWorkLayer)",
            })?;
        Ok(Self { bus, unit })
    }

    /// The bus itself, to send at once (bypassing the unit of work).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Stages `message`; it is published after the unit commits.
    ///
    /// In a traced unit (an HTTP request, a delivery) it gets a `PUBLISH <topic>` span and
    /// carries that span's `traceparent`.
    pub fn publish<M: Message>(&self, message: &M) -> Result<(), BusError> {
        self.stage_traced(Outgoing::message(message)?, M::TOPIC)
    }

    /// Stages `message` under `topic` instead of its own (`"<topic>.#"` as routing key): the
    /// reference's `use_publisher().publish(message, "custom.topic")`.
    pub fn publish_to<M: Message>(&self, message: &M, topic: &str) -> Result<(), BusError> {
        let mut outgoing = Outgoing::message(message)?;
        outgoing.route = crate::message::Route::Main(crate::message::topic_routing_key(topic));
        self.stage_traced(outgoing, topic)
    }

    /// Stages `outgoing` with a `PUBLISH <topic>` span's `traceparent` when the unit is traced.
    fn stage_traced(&self, mut outgoing: Outgoing, topic: &str) -> Result<(), BusError> {
        if let Some(parent) = self.unit.trace() {
            crate::trace::publish(parent, topic, &mut outgoing.headers);
        }
        self.stage(|staged| staged.publishes.push(outgoing))
    }

    /// Stages a message built by hand (traced as [`UnitBus::publish`] does, under its
    /// routing key, unless it carries a `traceparent` of its own).
    pub fn publish_outgoing(&self, mut outgoing: Outgoing) -> Result<(), BusError> {
        if let Some(parent) = self.unit.trace()
            && !outgoing.headers.contains_key(crate::TRACEPARENT)
        {
            let topic = outgoing.routing_key().trim_end_matches(".#").to_string();
            crate::trace::publish(parent, &topic, &mut outgoing.headers);
        }
        self.stage(|staged| staged.publishes.push(outgoing))
    }

    /// Stages `message` for delivery `delay` after now; it is stored after the unit commits.
    pub fn delay<M: Message>(&self, message: &M, delay: Duration) -> Result<(), BusError> {
        self.schedule(message, SystemTime::now() + delay)
    }

    /// Stages `message` for delivery at `at`; it is stored after the unit commits.
    pub fn schedule<M: Message>(&self, message: &M, at: SystemTime) -> Result<(), BusError> {
        self.bus.require_store()?;
        let mut delayed = DelayedMessage::of(message, at)?;
        if let Some(parent) = self.unit.trace() {
            crate::trace::publish(parent, M::TOPIC, &mut delayed.headers);
        }
        self.stage(|staged| staged.delays.push(delayed))
    }

    fn stage(&self, add: impl FnOnce(&mut Staged)) -> Result<(), BusError> {
        if self.unit.is_decided() {
            return Err(BusError::Unit(jararaca_di::UnitError::Decided {
                kind: self.unit.kind().as_str(),
            }));
        }
        if let Some(outbox) = self.unit.get_local::<UnitOutbox>()
            && outbox.writer().is_active()
        {
            // Written in the unit's transaction; its relay publishes once it committed.
            let mut staged = Staged::default();
            add(&mut staged);
            let writer = outbox.writer();
            for message in staged.into_messages() {
                writer.stage(&self.unit, message)?;
            }
            self.bus.attach_outbox(writer.source());
            return Ok(());
        }
        let outbox = self.unit.local(Outbox::default);
        let mut slot = outbox.staged.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(staged) => add(staged),
            None => {
                let mut staged = Staged::default();
                add(&mut staged);
                *slot = Some(staged);
                drop(slot);
                // One action sends everything the unit staged, in order.
                let bus = self.bus.clone();
                let outbox = Arc::clone(&outbox);
                self.unit
                    .after_commit("publish staged messages", move || flush(bus, outbox))?;
            }
        }
        Ok(())
    }
}

impl Staged {
    fn into_messages(self) -> impl Iterator<Item = OutboxMessage> {
        self.publishes
            .into_iter()
            .map(OutboxMessage::Publish)
            .chain(self.delays.into_iter().map(OutboxMessage::Delay))
    }
}

/// After-commit publishing: everything at once (pipelined), then what the broker did not
/// confirm one by one with the bus's retry policy. What still fails is reported, not silently
/// dropped.
async fn flush(bus: Bus, outbox: Arc<Outbox>) -> Result<(), jararaca_di::BoxError> {
    let staged = outbox
        .staged
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let mut messages = std::collections::VecDeque::new();
    if !staged.publishes.is_empty() {
        let results = bus.publisher.publish_each(staged.publishes.clone()).await;
        for (result, outgoing) in results.into_iter().zip(staged.publishes) {
            if let Err(error) = result {
                tracing::warn!(%error, "publishing a unit's message failed; retrying it");
                messages.push_back(OutboxMessage::Publish(outgoing));
            }
        }
    }
    messages.extend(staged.delays.into_iter().map(OutboxMessage::Delay));
    let policy = *lock(&bus.shared.after_commit_retry);
    while let Some(message) = messages.front() {
        let sent = policy
            .retry(|| async {
                match message {
                    OutboxMessage::Publish(outgoing) => {
                        bus.publisher.publish(outgoing.clone()).await
                    }
                    OutboxMessage::Delay(delayed) => bus.enqueue(delayed.clone()).await,
                }
            })
            .await;
        match sent {
            Ok(()) => {
                messages.pop_front();
            }
            Err(error) => {
                let count = messages.len();
                let reason = error.to_string();
                bus.report_not_published(NotPublished {
                    messages: messages.into(),
                    error,
                });
                return Err(BusError::NotPublished { count, reason }.into());
            }
        }
    }
    Ok(())
}

/// Publishing from a route: `async fn create(bus: UnitBus, …)` stages messages in the
/// request's unit of work; it is not part of the API contract.
impl jararaca_api::RouteInput for UnitBus {}

/// Seconds since the Unix epoch of `at` (0 before the epoch).
pub(crate) fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `UnitBus` as an axum extractor: `async fn create(bus: UnitBus, …)` stages publishes in
/// the request's unit of work. Without [`BusLayer`] and the unit-of-work layer around the
/// route, the request is answered with a 500 (a wiring mistake, logged with what is missing).
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for UnitBus {
    type Rejection = MissingBus;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions).map_err(MissingBus)
    }
}

/// The rejection of the [`UnitBus`] extractor.
#[cfg(feature = "axum")]
#[derive(Debug)]
pub struct MissingBus(BusError);

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for MissingBus {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self.0, "cannot extract the unit's bus");
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"detail":"Internal Server Error"}"#,
        )
            .into_response()
    }
}

#[cfg(all(test, feature = "axum"))]
mod extractor_tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use jararaca_di::UnitOfWorkLayer;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::{InMemoryBroker, Message, MessageKind};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Created {
        n: u32,
    }

    impl Message for Created {
        const TOPIC: &'static str = "thing.created";
        const KIND: MessageKind = MessageKind::Event;
    }

    async fn status(router: &Router, uri: &str) -> http::StatusCode {
        router
            .clone()
            .oneshot(http::Request::post(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn an_http_handler_publishes_through_the_extractor_only_when_it_succeeds() {
        let broker = InMemoryBroker::new();
        broker.declare_queue("probe", "thing.created.#");
        let bus = Bus::new(broker.clone());
        let router = Router::new()
            .route(
                "/ok",
                post(|bus: UnitBus| async move {
                    bus.publish(&Created { n: 1 })
                        .map(|()| http::StatusCode::CREATED)
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
                }),
            )
            .route(
                "/fails",
                post(|bus: UnitBus| async move {
                    let _ = bus.publish(&Created { n: 2 });
                    http::StatusCode::CONFLICT
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(UnitOfWorkLayer::new())
                    .layer(BusLayer::new(bus)),
            );
        assert_eq!(status(&router, "/ok").await, http::StatusCode::CREATED);
        assert_eq!(status(&router, "/fails").await, http::StatusCode::CONFLICT);
        let published: Vec<String> = broker
            .peek("probe")
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        assert_eq!(published, [r#"{"n":1}"#]);

        let bare = Router::new().route("/ok", post(|_bus: UnitBus| async { "unreachable" }));
        assert_eq!(
            status(&bare, "/ok").await,
            http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

#[cfg(test)]
mod after_commit_tests {
    use std::sync::atomic::AtomicUsize;

    use futures_util::future::BoxFuture;
    use jararaca_di::{UnitKind, UnitOfWork};

    use super::*;
    use crate::{InMemoryBroker, MessageKind};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Made {
        n: u32,
    }

    impl Message for Made {
        const TOPIC: &'static str = "thing.made";
        const KIND: MessageKind = MessageKind::Event;
    }

    /// Refuses the first `failures` publishes, then forwards to the broker.
    #[derive(Debug)]
    struct Flaky {
        failures: AtomicUsize,
        broker: InMemoryBroker,
    }

    impl Publisher for Flaky {
        fn publish(&self, message: Outgoing) -> BoxFuture<'_, Result<(), BusError>> {
            Box::pin(async move {
                let left = self.failures.load(Ordering::Relaxed);
                if left > 0 {
                    self.failures.store(left - 1, Ordering::Relaxed);
                    return Err(BusError::Config("the broker is away".into()));
                }
                self.broker.publish(message).await
            })
        }
    }

    fn flaky(failures: usize) -> (Bus, InMemoryBroker) {
        let broker = InMemoryBroker::new();
        broker.declare_queue("probe", "thing.made.#");
        let bus = Bus::new(Flaky {
            failures: AtomicUsize::new(failures),
            broker: broker.clone(),
        })
        .with_after_commit_retry(
            RetryPolicy::default()
                .initial_delay(Duration::from_millis(1))
                .max_retries(2)
                .jitter(false),
        );
        (bus, broker)
    }

    async fn commit_one(bus: &Bus, n: u32) {
        let unit = UnitOfWork::new(UnitKind::Http);
        UnitBus::new(bus.clone(), unit.clone())
            .publish(&Made { n })
            .unwrap();
        unit.finish(true).await.unwrap();
    }

    #[tokio::test]
    async fn after_commit_publishing_retries_a_failed_publish() {
        let (bus, broker) = flaky(2);
        commit_one(&bus, 1).await;
        assert_eq!(broker.peek("probe").len(), 1);
        assert_eq!(bus.not_published(), 0);
    }

    #[tokio::test]
    async fn what_still_fails_is_counted_and_handed_to_the_hook() {
        let (bus, broker) = flaky(usize::MAX);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bus = bus.on_not_published({
            let seen = Arc::clone(&seen);
            move |failed: &NotPublished| {
                lock(&seen).push((failed.messages.len(), failed.error.to_string()));
            }
        });
        commit_one(&bus, 2).await;
        assert!(broker.peek("probe").is_empty());
        assert_eq!(bus.not_published(), 1);
        let seen = lock(&seen).clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 1);
        assert!(seen[0].1.contains("the broker is away"), "{seen:?}");
    }
}

#[cfg(test)]
mod tests {
    use jararaca_di::{UnitKind, UnitOfWork};
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::memory::InMemoryBroker;

    #[derive(Debug, Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }

    impl Message for Ping {
        const TOPIC: &'static str = "ping";
        const KIND: crate::MessageKind = crate::MessageKind::Event;
    }

    #[tokio::test]
    async fn a_message_can_be_published_under_another_topic() {
        let broker = InMemoryBroker::new();
        broker.declare_queue("own", "ping.#");
        broker.declare_queue("custom", "custom.topic.#");
        let bus = Bus::new(broker.clone());
        let unit = UnitOfWork::new(UnitKind::Http);
        let staged = unit
            .scope(async {
                use_publisher().and_then(|p| p.publish_to(&Ping { n: 1 }, "custom.topic"))
            })
            .await;
        assert!(
            matches!(staged, Err(BusError::OutsideUnit { .. })),
            "no bus in this unit"
        );

        let publisher = UnitBus::new(bus, unit.clone());
        publisher
            .publish_to(&Ping { n: 1 }, "custom.topic")
            .unwrap();
        publisher.publish(&Ping { n: 2 }).unwrap();
        unit.finish(true).await.unwrap();
        let custom = broker.peek("custom");
        assert_eq!(custom.len(), 1);
        assert_eq!(custom[0].routing_key, "custom.topic.#");
        assert_eq!(custom[0].body, br#"{"n":1}"#);
        assert_eq!(broker.peek("own").len(), 1);
    }
}
