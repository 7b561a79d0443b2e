//! WebSocket as a capability of a service: its endpoints and messages, the manager every
//! unit of work sends with, and the fan-out backend chosen from the settings.

use std::fmt;
use std::time::Duration;

use axum::handler::Handler;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_api::{
    ApiDescription, HandlerMeta, TypeInfo, WebSocketMessageMeta, schemars::JsonSchema, ts_rs::TS,
};
use jararaca_di::{
    App, BoxError, BuildContext, Capabilities, Capability, Contribution, EnvVar, Part, Role,
    SetupContext, Stop,
};
use jararaca_http::{Controller, Route};

use crate::config::{CLOSE_GOING_AWAY, WsConfig};
use crate::{WebSocketManager, WebSocketMessage, WsError};

/// Where sends fan out: read from the environment unless given to the service.
#[derive(Debug, Clone, Default)]
pub struct WebSocketSettings {
    /// Redis for fan-out between instances; `None` keeps sends in this process.
    pub redis_url: Option<String>,
    /// The pub/sub channels (the reference's `jararaca:websocket:send` and
    /// `jararaca:websocket:broadcast` by default).
    #[cfg(feature = "redis")]
    pub channels: crate::RedisChannels,
    /// The limits of every connection.
    pub config: WsConfig,
}

/// The variable naming the Redis that WebSocket sends fan out through.
pub const WEBSOCKET_REDIS_URL: &str = "WEBSOCKET_REDIS_URL";

impl WebSocketSettings {
    /// Sends stay in this process, with the default limits.
    pub fn in_process() -> Self {
        Self::default()
    }

    /// Fan-out through the Redis at `url`, on the default channels.
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            redis_url: Some(url.into()),
            ..Self::default()
        }
    }

    /// `WEBSOCKET_REDIS_URL`, else `BACKEND_URL` (the Redis the bus already uses), else in
    /// process.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            redis_url: var(WEBSOCKET_REDIS_URL).or_else(|| var("BACKEND_URL")),
            ..Self::default()
        }
    }

    /// Uses these pub/sub channels.
    #[cfg(feature = "redis")]
    pub fn channels(mut self, channels: crate::RedisChannels) -> Self {
        self.channels = channels;
        self
    }

    /// Uses these connection limits.
    pub fn config(mut self, config: WsConfig) -> Self {
        self.config = config;
        self
    }

    /// The manager these settings describe (connected and subscribed, over Redis).
    pub async fn connect(&self) -> Result<WebSocketManager, WsError> {
        match &self.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => {
                WebSocketManager::redis(url, self.channels.clone(), self.config.clone()).await
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(WsError::Backend(
                "a Redis URL is set but jararaca-ws is built without its `redis` feature".into(),
            )),
            None => Ok(WebSocketManager::in_process(self.config.clone())),
        }
    }
}

/// Given to a service, these settings replace the environment's.
impl Contribution for WebSocketSettings {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities
            .get_or_insert_with(WebSockets::default)
            .settings = Some(self);
    }
}

/// WebSocket endpoints and the messages they push, grouped like a REST controller (the
/// reference's `@WebSocketEndpoint` methods and `@RegisterWebSocketMessage` on a
/// `RestController`).
///
/// Its endpoints are served by the HTTP capability, each upgrade request in the unit stack
/// like any route (but left out of OpenAPI and the TypeScript client); its messages go into
/// the API description for the TypeScript generator's `WebSocketMessageMap`.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use jararaca_ws::{WebSocketController, WebSocketMessage, WsUpgrade};
///
/// #[derive(serde::Serialize, schemars::JsonSchema, ts_rs::TS)]
/// struct TaskUpdated { task_id: u32 }
/// impl WebSocketMessage for TaskUpdated {
///     const MESSAGE_ID: &'static str = "task.updated";
/// }
///
/// async fn tasks(upgrade: WsUpgrade) -> Response {
///     match upgrade.join(&["tasks"]) {
///         Ok(upgrade) => upgrade.into_response(),
///         Err(e) => (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
///     }
/// }
///
/// let controller = WebSocketController::new("TasksSocket", "/ws")
///     .endpoint("/tasks", tasks)
///     .message::<TaskUpdated>();
/// assert_eq!(controller.messages()[0].id, "task.updated");
/// ```
pub struct WebSocketController {
    name: String,
    prefix: String,
    routes: Vec<Route>,
    messages: Vec<WebSocketMessageMeta>,
}

impl fmt::Debug for WebSocketController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketController")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("routes", &self.routes)
            .field("messages", &self.messages)
            .finish()
    }
}

impl WebSocketController {
    /// A controller named `name` whose endpoints live under `prefix`.
    pub fn new(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            prefix: prefix.into(),
            routes: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// An endpoint at `path` (under the prefix; `{name}` segments are path parameters):
    /// `handler` takes a [`WsUpgrade`](crate::WsUpgrade) and returns it as its response.
    pub fn endpoint<H, T, A>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, ()> + HandlerMeta<A>,
        T: 'static,
    {
        self.route(Route::get(path, handler))
    }

    /// An endpoint from a route built by hand (with layers of its own, a name).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route.undocumented());
        self
    }

    /// Registers `M` for the TypeScript generator.
    pub fn message<M: WebSocketMessage + JsonSchema + TS + 'static>(mut self) -> Self {
        self.messages.push(WebSocketMessageMeta {
            id: M::MESSAGE_ID.to_owned(),
            ty: TypeInfo::of::<M>(),
            controller: self.name.clone(),
        });
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The messages it registered.
    pub fn messages(&self) -> &[WebSocketMessageMeta] {
        &self.messages
    }
}

impl Contribution for WebSocketController {
    fn contribute(self, capabilities: &mut Capabilities) {
        if !self.routes.is_empty() {
            let controller = self
                .routes
                .into_iter()
                .fold(Controller::new(self.name, self.prefix), Controller::route);
            controller.contribute(capabilities);
        }
        capabilities
            .get_or_insert_with(WebSockets::default)
            .messages
            .extend(self.messages);
    }
}

/// The WebSocket capability of a service: the [`WebSocketManager`] in its container (over
/// Redis when `WEBSOCKET_REDIS_URL` or `BACKEND_URL` is set, else in process), the messages
/// of its controllers in the API description, and in the `server` role the closing of every
/// connection on shutdown. A [`WebSocketController`] or [`WebSocketSettings`] adds it.
#[derive(Debug, Default)]
pub struct WebSockets {
    messages: Vec<WebSocketMessageMeta>,
    settings: Option<WebSocketSettings>,
}

impl Capability for WebSockets {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn describe(&self, api: &mut ApiDescription) {
        api.websocket_messages.extend(self.messages.iter().cloned());
    }

    fn environment(&self, _role: &str) -> Vec<EnvVar> {
        if self.settings.is_some() {
            return Vec::new();
        }
        vec![EnvVar::new(
            WEBSOCKET_REDIS_URL,
            "Redis whose pub/sub carries WebSocket sends to every instance (else BACKEND_URL; unset: this process only)",
        )]
    }

    fn setup(&mut self, cx: &mut SetupContext<'_>) -> Result<(), BoxError> {
        let settings = self
            .settings
            .clone()
            .unwrap_or_else(WebSocketSettings::from_env);
        if settings.redis_url.is_none() && cx.role().is_some_and(|r| r.is(Role::WORKER)) {
            tracing::warn!(
                "WebSocket sends from this worker stay in its process, where no client is \
                 connected: set WEBSOCKET_REDIS_URL (or BACKEND_URL) to reach the servers' clients"
            );
        }
        if settings.redis_url.is_some() {
            cx.readiness_check("websocket redis", |c| async move {
                Ok(c.get::<WebSocketManager>()?.ready().await?)
            });
        }
        cx.providers(move |c| {
            c.factory(move || {
                let settings = settings.clone();
                async move { settings.connect().await }
            })
        });
        Ok(())
    }

    fn build(
        self: Box<Self>,
        cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>> {
        async move {
            let manager = (*cx.container.get::<WebSocketManager>()?).clone();
            manager.set_interceptors(cx.interceptors.clone());
            Ok(Box::new(WebSocketPart { manager }) as Box<dyn Part>)
        }
        .boxed()
    }
}

/// The built WebSocket capability.
#[derive(Debug)]
pub struct WebSocketPart {
    manager: WebSocketManager,
}

impl WebSocketPart {
    /// The service's manager.
    pub fn manager(&self) -> &WebSocketManager {
        &self.manager
    }
}

impl Part for WebSocketPart {
    fn run(&self, role: &Role, stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        if !role.is(Role::SERVER) {
            return None;
        }
        let manager = self.manager.clone();
        Some(
            async move {
                stop.requested().await;
                manager.close_all(CLOSE_GOING_AWAY, "server shutting down");
                let deadline =
                    tokio::time::Instant::now() + stop.grace().min(Duration::from_secs(5));
                while manager.connections() > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
            .boxed(),
        )
    }
}

/// The WebSocket side of a built [`App`].
pub trait WebSocketApp {
    /// The service's manager; `None` when it has no WebSocket capability.
    fn ws_manager(&self) -> Option<WebSocketManager>;
}

impl WebSocketApp for App {
    fn ws_manager(&self) -> Option<WebSocketManager> {
        self.part::<WebSocketPart>().map(|p| p.manager.clone())
    }
}
