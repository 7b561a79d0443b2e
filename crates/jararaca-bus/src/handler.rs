//! Message handlers: a tower service over [`Delivery`] plus the reference's options.

use jararaca_di::trace::AsyncBoundary;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, Ready, ready};
use jararaca_di::BoxError;
use jararaca_retry::RetryPolicy;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::message::topic_routing_key;
use crate::topology::QueueSpec;
use crate::{Delivery, Message, MessageKind};

/// The type-erased handler service the worker runs (boxed once, when registered).
pub type HandlerService = BoxCloneSyncService<Delivery, (), BoxError>;

/// The queue name the reference gives a handler: `<topic>.<module>.<qualname>`, where the
/// qualname is `Controller.method`. Pass the Python module and qualname to take over a
/// Python handler's queue.
///
/// ```
/// assert_eq!(
///     jararaca_bus::handler_queue_name("order.created", "sampleapp.app", "OrdersWorkerController.on_order_created"),
///     "order.created.sampleapp.app.OrdersWorkerController.on_order_created",
/// );
/// ```
pub fn handler_queue_name(topic: &str, module: &str, qualname: &str) -> String {
    format!("{topic}.{module}.{qualname}")
}

/// One message handler: its topic, queue, options and service.
#[derive(Clone)]
pub struct Handler {
    pub(crate) topic: String,
    pub(crate) queue: String,
    pub(crate) kind: MessageKind,
    pub(crate) options: HandlerOptions,
    pub(crate) service: HandlerService,
    /// A scheduled action's queue: bound with its own name, `x-max-length=1`.
    pub(crate) action: bool,
    /// More names `--handlers` knows it by (its method, `Controller.method`).
    pub(crate) aliases: Vec<String>,
}

/// The reference's per-handler options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HandlerOptions {
    /// Longest a handler may run; running longer counts as a failure (it is retried).
    pub timeout: Option<Duration>,
    /// The retry budget and backoff; `None` uses the broker URL's `consumer_retry_*`.
    pub retry_policy: Option<RetryPolicy>,
    /// Dead-letter failures at once instead of retrying them.
    pub dead_letter_on_error: bool,
    /// The name `--handlers` selects it by.
    pub name: Option<String>,
    /// The group `--groups` selects it by.
    pub group: Option<String>,
    /// Handlers with the same channel id share a channel and its prefetch.
    pub channel_id: Option<String>,
    /// This handler's prefetch (overrides the URL's).
    pub prefetch: Option<u16>,
    /// How a delivery's span relates to its publisher's; `None` reads
    /// `JARARACA_OBSERVABILITY_TRACE_ASYNC_BOUNDARY` (the reference's per-message
    /// `TRACE_BOUNDARY`, from [`Message::TRACE_BOUNDARY`]).
    pub trace_boundary: Option<AsyncBoundary>,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("kind", &self.kind)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// Handles messages of type `M` from `queue` with `service` (usually interceptor layers
    /// around [`typed`]).
    pub fn new<M, S>(queue: impl Into<String>, service: S) -> Self
    where
        M: Message,
        S: tower_service::Service<Delivery, Response = (), Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let mut handler = Self::for_topic(M::TOPIC, M::KIND, queue, service);
        handler.options.trace_boundary = M::TRACE_BOUNDARY;
        handler
    }

    /// Handles the messages of `topic` from `queue`, for handlers without a Rust message type.
    pub fn for_topic<S>(
        topic: impl Into<String>,
        kind: MessageKind,
        queue: impl Into<String>,
        service: S,
    ) -> Self
    where
        S: tower_service::Service<Delivery, Response = (), Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            topic: topic.into(),
            queue: queue.into(),
            kind,
            options: HandlerOptions::default(),
            service: BoxCloneSyncService::new(service),
            action: false,
            aliases: Vec::new(),
        }
    }

    /// Consumes the triggers of the scheduled action `id` from its queue: named `id`, bound
    /// with `id` and declared with `x-max-length=1`, as the reference declares action queues.
    /// Failures are dead-lettered at once (a trigger is never retried).
    pub fn action<S>(id: impl Into<String>, service: S) -> Self
    where
        S: tower_service::Service<Delivery, Response = (), Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let id = id.into();
        let mut handler = Self::for_topic(id.clone(), MessageKind::Event, id, service);
        handler.action = true;
        handler.options.dead_letter_on_error = true;
        handler
    }

    /// Whether it consumes a scheduled action's queue ([`Handler::action`]).
    pub fn is_action(&self) -> bool {
        self.action
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The options.
    pub fn options(&self) -> &HandlerOptions {
        &self.options
    }

    /// The queue to declare for it: bound with `<topic>.#`, dead-lettering to `dlx` (for a
    /// scheduled action: bound with its queue name, `x-max-length=1`).
    pub fn queue_spec(&self) -> QueueSpec {
        if self.action {
            return QueueSpec::action(&self.queue);
        }
        QueueSpec::handler(&self.queue, &self.topic)
    }

    /// The binding key of its queue.
    pub fn binding_key(&self) -> String {
        if self.action {
            return self.queue.clone();
        }
        topic_routing_key(&self.topic)
    }

    /// Consumes from `queue` instead (to take over a Python handler's queue, say).
    #[must_use]
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Lets `--handlers` select it by `name` too.
    #[must_use]
    pub fn with_alias(mut self, name: impl Into<String>) -> Self {
        self.aliases.push(name.into());
        self
    }

    /// Every name `--handlers` selects it by: its `name` option, its method and
    /// `Controller.method` (for a controller's handler), and its queue.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.options
            .name
            .as_deref()
            .into_iter()
            .chain(self.aliases.iter().map(String::as_str))
            .chain(std::iter::once(self.queue.as_str()))
    }

    /// Wraps its service, in interceptor layers for instance.
    #[must_use]
    pub fn map_service(mut self, wrap: impl FnOnce(HandlerService) -> HandlerService) -> Self {
        self.service = wrap(self.service);
        self
    }

    /// Fails a run that takes longer than `timeout` (it is retried, never left unacked).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Uses this retry budget and backoff.
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry_policy = Some(policy);
        self
    }

    /// Dead-letters failures at once (the reference's `nack_on_exception=False`, without
    /// its wait).
    #[must_use]
    pub fn dead_letter_on_error(mut self) -> Self {
        self.options.dead_letter_on_error = true;
        self
    }

    /// Names it, for `--handlers`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Puts it in a group, for `--groups`.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.options.group = Some(group.into());
        self
    }

    /// Shares the channel (and prefetch) of the other handlers with this channel id.
    #[must_use]
    pub fn channel_id(mut self, channel_id: impl Into<String>) -> Self {
        self.options.channel_id = Some(channel_id.into());
        self
    }

    /// Sets its prefetch (0 = unlimited): how many of its messages run at once.
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.options.prefetch = Some(prefetch);
        self
    }

    /// Sets how its deliveries' spans relate to their publishers' (link or child).
    #[must_use]
    pub fn trace_boundary(mut self, boundary: AsyncBoundary) -> Self {
        self.options.trace_boundary = Some(boundary);
        self
    }
}

/// A handler service from an async function of the decoded message and the delivery.
///
/// A body that does not decode fails with [`PayloadError`](crate::PayloadError), which the
/// worker dead-letters at once.
///
/// ```
/// # use jararaca_bus::{typed, Delivery, Message, MessageKind};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl Message for Ping { const TOPIC: &'static str = "ping"; const KIND: MessageKind = MessageKind::Event; }
/// let service = typed(|ping: Ping, _delivery: Delivery| async move {
///     println!("ping {}", ping.n);
///     Ok(())
/// });
/// # let _ = service;
/// ```
pub fn typed<M, F, Fut>(handler: F) -> Typed<M, F>
where
    M: serde::de::DeserializeOwned,
    F: Fn(M, Delivery) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    Typed {
        handler,
        _message: PhantomData,
    }
}

/// The service made by [`typed`].
pub struct Typed<M, F> {
    handler: F,
    _message: PhantomData<fn() -> M>,
}

impl<M, F: Clone> Clone for Typed<M, F> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            _message: PhantomData,
        }
    }
}

impl<M, F> fmt::Debug for Typed<M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("message", &std::any::type_name::<M>())
            .finish()
    }
}

impl<M, F, Fut> Service<Delivery> for Typed<M, F>
where
    M: serde::de::DeserializeOwned,
    F: Fn(M, Delivery) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    type Response = ();
    type Error = BoxError;
    type Future = Either<Ready<Result<(), BoxError>>, Fut>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        match delivery.payload::<M>() {
            Ok(message) => Either::Right((self.handler)(message, delivery)),
            Err(error) => Either::Left(ready(Err(Box::new(error)))),
        }
    }
}
