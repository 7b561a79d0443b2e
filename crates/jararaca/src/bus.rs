//! The message-bus side of a microservice (feature `bus`): message controllers whose handlers
//! run in the same unit of work, DI scope and interceptors as HTTP routes, publishing from
//! any unit of work, and the `worker` and `declare` commands.
//!
//! With no `BROKER_URL`, a service runs whole in one process on the in-memory broker: the
//! `server` command runs the worker's handlers beside the HTTP routes. With `BROKER_URL`
//! (RabbitMQ) and `BACKEND_URL` (Redis, for delayed messages and retries), `server`
//! publishes to RabbitMQ and `worker` processes consume, as many as needed.
//!
//! ```
//! use jararaca::Microservice;
//! use jararaca::bus::{Delivery, Message, MessageController, MessageKind};
//! use jararaca::BoxError;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct TaskCreated {
//!     title: String,
//! }
//!
//! impl Message for TaskCreated {
//!     const TOPIC: &'static str = "task.created";
//!     const KIND: MessageKind = MessageKind::Event;
//! }
//!
//! async fn on_task_created(task: TaskCreated, _delivery: Delivery) -> Result<(), BoxError> {
//!     println!("created: {}", task.title);
//!     Ok(())
//! }
//!
//! let service = Microservice::new("tasks").message_controller(
//!     MessageController::new("TasksWorker").handler::<TaskCreated, _, _>("on_task_created", on_task_created),
//! );
//! // The queue name the reference would give the handler: `<topic>.<service>.<Controller>.<method>`.
//! assert_eq!(service.bus_topology().queues[0].name, "task.created.tasks.TasksWorker.on_task_created");
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use jararaca_bus::*;
use jararaca_di::{Container, ScopeLayer, UnitOfWorkLayer};
use tower::ServiceBuilder;

use crate::BoxError;

type MakeService = Arc<dyn Fn() -> HandlerService + Send + Sync>;
pub(crate) type HandlerInterceptor = Arc<dyn Fn(HandlerService) -> HandlerService + Send + Sync>;

/// A tower layer that can wrap message handlers: what
/// [`Microservice::handler_interceptor`](crate::Microservice::handler_interceptor) takes.
/// Implemented for every layer whose service over [`Delivery`] is cloneable, `Send + Sync`
/// and returns `Result<(), BoxError>`.
pub trait HandlerLayer: Send + Sync + 'static {
    /// Wraps one handler's service.
    fn wrap_handler(&self, inner: HandlerService) -> HandlerService;
}

impl<L> HandlerLayer for L
where
    L: tower_layer::Layer<HandlerService> + Send + Sync + 'static,
    L::Service: tower_service::Service<Delivery, Response = (), Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower_service::Service<Delivery>>::Future: Send + 'static,
{
    fn wrap_handler(&self, inner: HandlerService) -> HandlerService {
        HandlerService::new(self.layer(inner))
    }
}

/// One handler of a [`MessageController`], with the reference's per-handler options.
#[derive(Clone)]
pub struct HandlerSpec {
    method: String,
    topic: &'static str,
    kind: MessageKind,
    queue: Option<String>,
    timeout: Option<Duration>,
    retry_policy: Option<jararaca_retry::RetryPolicy>,
    dead_letter_on_error: bool,
    name: Option<String>,
    group: Option<String>,
    channel_id: Option<String>,
    prefetch: Option<u16>,
    make: MakeService,
}

impl fmt::Debug for HandlerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerSpec")
            .field("method", &self.method)
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .field("name", &self.name)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl HandlerSpec {
    /// Consumes from `queue` instead of the default name (to take over a Python handler's
    /// queue, say).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Fails (and retries) a handler running longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The retry budget and backoff for this handler.
    pub fn retry_policy(mut self, policy: jararaca_retry::RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Dead-letters failures at once instead of retrying them.
    pub fn dead_letter_on_error(mut self) -> Self {
        self.dead_letter_on_error = true;
        self
    }

    /// The name `worker --handlers` selects it by.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The group `worker --groups` selects it by.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Handlers with one channel id share a channel and its prefetch.
    pub fn channel_id(mut self, channel_id: impl Into<String>) -> Self {
        self.channel_id = Some(channel_id.into());
        self
    }

    /// This handler's prefetch.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    fn queue_name(&self, service: &str, controller: &str) -> String {
        self.queue.clone().unwrap_or_else(|| {
            handler_queue_name(
                self.topic,
                service,
                &format!("{controller}.{}", self.method),
            )
        })
    }
}

/// Message handlers grouped like the reference's `@MessageBusController` class. Each handler
/// becomes a tower service over [`Delivery`], wrapped in the unit of work, the DI scope, the
/// staging publisher and the service's handler interceptors.
#[derive(Debug, Clone)]
pub struct MessageController {
    name: String,
    handlers: Vec<HandlerSpec>,
}

impl MessageController {
    /// A controller named `name` (part of its handlers' queue names).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            handlers: Vec::new(),
        }
    }

    /// Handles messages of type `M` with `handler(message, delivery)`, as method `method`.
    pub fn handler<M, F, Fut>(self, method: impl Into<String>, handler: F) -> Self
    where
        M: Message,
        F: Fn(M, Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.handler_with(method, handler, |spec| spec)
    }

    /// Like [`handler`](Self::handler), with options: `|h| h.timeout(…).retry_policy(…)`.
    pub fn handler_with<M, F, Fut>(
        mut self,
        method: impl Into<String>,
        handler: F,
        options: impl FnOnce(HandlerSpec) -> HandlerSpec,
    ) -> Self
    where
        M: Message,
        F: Fn(M, Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let make: MakeService = Arc::new(move || HandlerService::new(typed(handler.clone())));
        let spec = HandlerSpec {
            method: method.into(),
            topic: M::TOPIC,
            kind: M::KIND,
            queue: None,
            timeout: None,
            retry_policy: None,
            dead_letter_on_error: false,
            name: None,
            group: None,
            channel_id: None,
            prefetch: None,
            make,
        };
        self.handlers.push(options(spec));
        self
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its handlers.
    pub fn handlers(&self) -> &[HandlerSpec] {
        &self.handlers
    }
}

/// Where a service's messages go: read from `BROKER_URL` and `BACKEND_URL` unless set.
#[derive(Debug, Clone, Default)]
pub struct BusSettings {
    /// RabbitMQ, `amqp://user:pass@host:port/vhost?exchange=X&prefetch_count=N`; without it,
    /// the in-process broker.
    pub broker_url: Option<String>,
    /// Redis, for delayed messages and retries; without it, an in-process store.
    pub backend_url: Option<String>,
}

impl BusSettings {
    /// `BROKER_URL` and `BACKEND_URL` from the environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            broker_url: var("BROKER_URL"),
            backend_url: var("BACKEND_URL"),
        }
    }
}

/// The bus of a built service.
#[derive(Clone)]
pub(crate) struct AppBus {
    pub(crate) bus: Bus,
    pub(crate) transport: BusTransport,
    pub(crate) store: Arc<dyn DelayedStore>,
    service: String,
    controllers: Vec<MessageController>,
    interceptors: Vec<HandlerInterceptor>,
}

#[derive(Clone)]
pub(crate) enum BusTransport {
    Memory(InMemoryBroker),
    Amqp(Box<BrokerUrl>),
}

impl fmt::Debug for AppBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppBus")
            .field(
                "in_memory",
                &matches!(self.transport, BusTransport::Memory(_)),
            )
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

/// The queues a service's handlers consume from, for `declare`.
pub(crate) fn topology(service: &str, controllers: &[MessageController]) -> Topology {
    controllers
        .iter()
        .fold(Topology::new(), |topology, controller| {
            controller.handlers.iter().fold(topology, |topology, spec| {
                topology.queue(QueueSpec::handler(
                    spec.queue_name(service, &controller.name),
                    spec.topic,
                ))
            })
        })
}

impl AppBus {
    pub(crate) async fn connect(
        settings: BusSettings,
        service: String,
        controllers: Vec<MessageController>,
        interceptors: Vec<HandlerInterceptor>,
    ) -> Result<Self, BusError> {
        let store: Arc<dyn DelayedStore> = match &settings.backend_url {
            Some(url) => Arc::new(RedisStore::connect(url).await?),
            None => Arc::new(InMemoryStore::default()),
        };
        let (publisher, transport): (Arc<dyn Publisher>, BusTransport) = match &settings.broker_url
        {
            Some(url) => {
                let url = BrokerUrl::parse(url)?;
                (
                    Arc::new(AmqpPublisher::lazy(&url)),
                    BusTransport::Amqp(Box::new(url)),
                )
            }
            None => {
                let broker = InMemoryBroker::new();
                (Arc::new(broker.clone()), BusTransport::Memory(broker))
            }
        };
        Ok(Self {
            bus: Bus::from_arc(publisher).with_store_arc(Arc::clone(&store)),
            transport,
            store,
            service,
            controllers,
            interceptors,
        })
    }

    pub(crate) fn is_in_memory(&self) -> bool {
        matches!(self.transport, BusTransport::Memory(_))
    }

    /// A worker for every handler, each wrapped in the unit of work, the DI scope, the staging
    /// publisher and the handler interceptors. It also pumps due delayed messages.
    pub(crate) fn worker(&self, container: &Container) -> Worker {
        let mut worker = match &self.transport {
            BusTransport::Memory(broker) => Worker::in_memory(broker.clone()),
            BusTransport::Amqp(url) => Worker::amqp((**url).clone()),
        };
        worker = worker
            .store(Arc::clone(&self.store))
            .pump(Duration::from_secs(1));
        for controller in &self.controllers {
            for spec in &controller.handlers {
                let mut inner = (spec.make)();
                for interceptor in &self.interceptors {
                    inner = interceptor(inner);
                }
                let service = ServiceBuilder::new()
                    .layer(UnitOfWorkLayer::new())
                    .layer(ScopeLayer::new(container.clone()))
                    .layer(BusLayer::new(self.bus.clone()))
                    .service(inner);
                let mut handler = Handler::for_topic(
                    spec.topic,
                    spec.kind,
                    spec.queue_name(&self.service, &controller.name),
                    service,
                );
                if let Some(timeout) = spec.timeout {
                    handler = handler.timeout(timeout);
                }
                if let Some(policy) = spec.retry_policy {
                    handler = handler.retry_policy(policy);
                }
                if spec.dead_letter_on_error {
                    handler = handler.dead_letter_on_error();
                }
                if let Some(name) = &spec.name {
                    handler = handler.name(name.clone());
                }
                if let Some(group) = &spec.group {
                    handler = handler.group(group.clone());
                }
                if let Some(channel_id) = &spec.channel_id {
                    handler = handler.channel_id(channel_id.clone());
                }
                if let Some(prefetch) = spec.prefetch {
                    handler = handler.prefetch(prefetch);
                }
                worker = worker.handler(handler);
            }
        }
        worker
    }
}

/// Publishing from a route: `async fn create(bus: UnitBus, …)` stages messages in the
/// request's unit of work (the ambient `message.publish()` works too).
impl crate::http::RouteInput for UnitBus {}
