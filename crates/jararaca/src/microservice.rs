//! `Microservice`: providers, controllers, interceptors and configuration in one value, and
//! the `App` built from it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use jararaca_di::{BuildError, Container, ContainerBuilder, Provider, ScopeLayer, UnitOfWorkLayer};
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::BoxError;
use crate::cli::Command;
use crate::http::{
    ApiInfo, CatchPanicLayer, Controller, HealthChecks, RouteLayer, RouteMeta, TraceLayer, openapi,
};

type RouterFn = Box<dyn FnOnce(Router) -> Router + Send>;
type InterceptorFn = Box<dyn FnOnce(Router, &Container) -> Result<Router, BoxError> + Send>;

/// A service: its providers, controllers, interceptors and configuration. The same value runs
/// as an HTTP server (and, with the other crates, as a worker or a beat) through
/// [`cli::run`](crate::cli::run).
///
/// ```
/// use jararaca::Microservice;
/// use jararaca::http::{Controller, Json};
///
/// async fn hello() -> Json<String> {
///     Json("hello".to_string())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let app = Microservice::new("greeter")
///     .controller(Controller::new("HelloController", "/hello").get("/", hello))
///     .build()
///     .await
///     .unwrap();
/// assert_eq!(app.routes()[0].path, "/hello");
/// assert_eq!(app.openapi()["openapi"], "3.1.0");
/// # });
/// ```
pub struct Microservice {
    name: String,
    container: ContainerBuilder,
    controllers: Vec<Controller>,
    interceptors: Vec<InterceptorFn>,
    router_factory: Option<RouterFn>,
    health: HealthChecks,
    info: ApiInfo,
    trace: TraceLayer,
    commands: Vec<Command>,
    #[cfg(feature = "bus")]
    message_controllers: Vec<crate::bus::MessageController>,
    #[cfg(feature = "bus")]
    handler_interceptors: Vec<crate::bus::HandlerInterceptor>,
    #[cfg(feature = "bus")]
    bus_settings: Option<crate::bus::BusSettings>,
}

impl fmt::Debug for Microservice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Microservice")
            .field("name", &self.name)
            .field("container", &self.container)
            .field("controllers", &self.controllers)
            .field("interceptors", &self.interceptors.len())
            .field("health", &self.health)
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}

impl Microservice {
    /// A service named `name` (used in logs, the OpenAPI title and queue names).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            info: ApiInfo {
                title: name.clone(),
                version: "0.1.0".into(),
                description: None,
            },
            name,
            container: Container::builder(),
            controllers: Vec::new(),
            interceptors: Vec::new(),
            router_factory: None,
            health: HealthChecks::default(),
            trace: TraceLayer::new(),
            commands: Vec::new(),
            #[cfg(feature = "bus")]
            message_controllers: Vec::new(),
            #[cfg(feature = "bus")]
            handler_interceptors: Vec::new(),
            #[cfg(feature = "bus")]
            bus_settings: None,
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the API version shown in the OpenAPI document.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = version.into();
        self
    }

    /// Sets the API description shown in the OpenAPI document.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.info.description = Some(description.into());
        self
    }

    /// Registers providers on the container builder.
    pub fn providers(
        mut self,
        register: impl FnOnce(ContainerBuilder) -> ContainerBuilder,
    ) -> Self {
        self.container = register(self.container);
        self
    }

    /// Registers one provider.
    pub fn provide(mut self, provider: Provider) -> Self {
        self.container = self.container.provide(provider);
        self
    }

    /// Reads `T` from the environment at startup and provides it (every missing or invalid
    /// variable is reported at once).
    pub fn config<T: DeserializeOwned + Send + Sync + 'static>(mut self) -> Self {
        self.container = self.container.config::<T>();
        self
    }

    /// Adds a controller.
    pub fn controller(mut self, controller: Controller) -> Self {
        self.controllers.push(controller);
        self
    }

    /// Wraps every route in `layer`, inside the framework's DI scope and unit of work (so the
    /// layer can inject values and register after-commit actions). Unlike the reference's
    /// app-level middlewares, it applies to every controller's routes.
    pub fn interceptor<L: RouteLayer>(mut self, layer: L) -> Self {
        self.interceptors
            .push(Box::new(move |router, _| Ok(layer.wrap_router(router))));
        self
    }

    /// Like [`interceptor`](Self::interceptor), for a layer made from the built container:
    /// `.interceptor_with(|c| Ok(TransactionLayer::new((*c.get::<Db>()?).clone())))`.
    pub fn interceptor_with<L, F>(mut self, make: F) -> Self
    where
        F: FnOnce(&Container) -> Result<L, BoxError> + Send + 'static,
        L: RouteLayer,
    {
        self.interceptors.push(Box::new(move |router, container| {
            Ok(make(container)?.wrap_router(router))
        }));
        self
    }

    /// Adds a message controller: its handlers run in the worker (feature `bus`).
    #[cfg(feature = "bus")]
    pub fn message_controller(mut self, controller: crate::bus::MessageController) -> Self {
        self.message_controllers.push(controller);
        self
    }

    /// Wraps every message handler in `layer`, inside the unit of work and DI scope, as
    /// [`interceptor`](Self::interceptor) does for routes (feature `bus`).
    #[cfg(feature = "bus")]
    pub fn handler_interceptor<L: crate::bus::HandlerLayer>(mut self, layer: L) -> Self {
        self.handler_interceptors
            .push(std::sync::Arc::new(move |inner| layer.wrap_handler(inner)));
        self
    }

    /// Wraps every unit of work — HTTP routes and message handlers — in one layer written
    /// once for any [`Envelope`](jararaca_di::Envelope) (feature `bus`).
    #[cfg(feature = "bus")]
    pub fn unit_interceptor<L: RouteLayer + crate::bus::HandlerLayer>(self, layer: L) -> Self {
        self.interceptor(layer.clone()).handler_interceptor(layer)
    }

    /// Where messages go, instead of `BROKER_URL` and `BACKEND_URL` (feature `bus`).
    #[cfg(feature = "bus")]
    pub fn bus_settings(mut self, settings: crate::bus::BusSettings) -> Self {
        self.bus_settings = Some(settings);
        self
    }

    /// The queues the service's handlers consume from, as `declare` creates them.
    #[cfg(feature = "bus")]
    pub fn bus_topology(&self) -> crate::bus::Topology {
        crate::bus::topology(&self.name, &self.message_controllers)
    }

    /// Customises the finished HTTP router: nest it under `/api`, add CORS or other
    /// tower-http layers around everything.
    pub fn router_factory(
        mut self,
        factory: impl FnOnce(Router) -> Router + Send + 'static,
    ) -> Self {
        self.router_factory = Some(Box::new(factory));
        self
    }

    /// The request span's configuration (its level, for instance).
    pub fn trace(mut self, trace: TraceLayer) -> Self {
        self.trace = trace;
        self
    }

    /// Adds a readiness check reported by `/health/ready`.
    pub fn readiness_check<F, Fut>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.health.add(name, check);
        self
    }

    /// Adds a startup hook (hooks start in order).
    pub fn on_startup<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.container = self.container.on_startup(name, hook);
        self
    }

    /// Adds a shutdown hook (hooks stop in reverse order).
    pub fn on_shutdown<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.container = self.container.on_shutdown(name, hook);
        self
    }

    /// Adds a command to the service's CLI (the bus adds `worker` and `declare` this way).
    pub fn command(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }

    /// The descriptions of every route, without building anything.
    pub fn routes(&self) -> impl Iterator<Item = &RouteMeta> {
        self.controllers.iter().flat_map(Controller::routes)
    }

    /// The OpenAPI document, without building the container (no configuration needed).
    pub fn openapi(&self) -> serde_json::Value {
        let routes: Vec<RouteMeta> = self.routes().cloned().collect();
        openapi::document(&self.info, &routes)
    }

    pub(crate) fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// Builds the container (checking the whole graph and every configuration) and the
    /// HTTP router.
    pub async fn build(self) -> Result<App, AppBuildError> {
        let openapi = self.openapi();
        let container = self.container.build().await?;
        let mut api = Router::new();
        let mut routes = Vec::new();
        for controller in self.controllers {
            let (router, metas) = controller.into_router();
            api = api.merge(router);
            routes.extend(metas);
        }
        for interceptor in self.interceptors {
            api = interceptor(api, &container).map_err(AppBuildError::Interceptor)?;
        }
        #[cfg(feature = "bus")]
        let bus = crate::bus::AppBus::connect(
            self.bus_settings
                .unwrap_or_else(crate::bus::BusSettings::from_env),
            self.name.clone(),
            self.message_controllers,
            self.handler_interceptors,
        )
        .await
        .map_err(AppBuildError::Bus)?;
        // One `layer` call for the whole framework stack: every extra call re-boxes the routes.
        let framework = ServiceBuilder::new()
            .layer(self.trace)
            .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(UnitOfWorkLayer::new())
            .layer(ScopeLayer::new(container.clone()));
        #[cfg(feature = "bus")]
        let framework = framework.layer(crate::bus::BusLayer::new(bus.bus.clone()));
        // Inside the unit of work, so a panic is a failed unit that rolls back.
        api = api.layer(framework.layer(CatchPanicLayer));
        let spec = Bytes::from(
            serde_json::to_vec(&openapi).map_err(|e| BuildError::Factory {
                key: jararaca_di::Key::of::<serde_json::Value>(),
                source: e.into(),
            })?,
        );
        let router = api
            .route(
                "/openapi.json",
                get(move || {
                    let spec = spec.clone();
                    async move { ([(http::header::CONTENT_TYPE, "application/json")], spec) }
                }),
            )
            .merge(crate::http::docs_router(&self.info.title))
            .merge(crate::http::health_router(self.health, container.clone()));
        let router = match self.router_factory {
            Some(factory) => factory(router),
            None => router,
        };
        Ok(App {
            inner: Arc::new(AppInner {
                name: self.name,
                container,
                router,
                routes,
                openapi,
                #[cfg(feature = "bus")]
                bus,
            }),
        })
    }
}

/// Why a [`Microservice`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppBuildError {
    /// The container's graph or configuration is invalid, or a singleton failed to build.
    #[error(transparent)]
    Container(#[from] BuildError),
    /// An interceptor made from the container failed.
    #[error("an interceptor could not be made: {0}")]
    Interceptor(#[source] BoxError),
    /// The OpenAPI document could not be serialized.
    #[error("the OpenAPI document could not be serialized: {0}")]
    OpenApi(#[source] serde_json::Error),
    /// The message bus could not be set up (a bad `BROKER_URL`, Redis unreachable).
    #[cfg(feature = "bus")]
    #[error("the message bus cannot be set up: {0}")]
    Bus(#[source] crate::bus::BusError),
}

/// A request id of 32 random hex digits, unless the client sent `x-request-id`.
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        http::HeaderValue::from_bytes(&crate::http::hex::<16, 32>(
            fastrand::u128(..).to_be_bytes(),
        ))
        .ok()
        .map(RequestId::new)
    }
}

/// A built service: its container (singletons ready) and its HTTP router.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    name: String,
    container: Container,
    router: Router,
    routes: Vec<RouteMeta>,
    openapi: serde_json::Value,
    #[cfg(feature = "bus")]
    bus: crate::bus::AppBus,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.inner.name)
            .field("container", &self.inner.container)
            .field("routes", &self.inner.routes.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The container, singletons built.
    pub fn container(&self) -> &Container {
        &self.inner.container
    }

    /// The HTTP router, ready for `axum::serve` or any hyper server (or `oneshot` in tests).
    pub fn router(&self) -> Router {
        self.inner.router.clone()
    }

    /// Every route's description.
    pub fn routes(&self) -> &[RouteMeta] {
        &self.inner.routes
    }

    /// The OpenAPI 3.1 document.
    pub fn openapi(&self) -> &serde_json::Value {
        &self.inner.openapi
    }

    /// The bus, to publish outside a unit of work (feature `bus`).
    #[cfg(feature = "bus")]
    pub fn bus(&self) -> &crate::bus::Bus {
        &self.inner.bus.bus
    }

    /// Whether messages stay in this process (no `BROKER_URL`): then `server` runs the
    /// handlers too.
    #[cfg(feature = "bus")]
    pub fn bus_in_memory(&self) -> bool {
        self.inner.bus.is_in_memory()
    }

    /// A worker running every message handler (feature `bus`); see
    /// [`Worker::run`](crate::bus::Worker::run).
    #[cfg(feature = "bus")]
    pub fn worker(&self) -> crate::bus::Worker {
        self.inner.bus.worker(&self.inner.container)
    }
}
