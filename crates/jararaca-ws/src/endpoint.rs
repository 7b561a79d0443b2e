//! WebSocket endpoints: the upgrade (a unit of work like any request), the connection's
//! task, and each inbound frame as a unit of its own.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Extensions, HeaderMap};
use jararaca_di::{
    BoxError, CatchPanicLayer, Container, Envelope, Scope, ScopeLayer, UnitKind, UnitOfWorkLayer,
};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::config::{CLOSE_POLICY, FrameKind, WsConfig};
use crate::local::Next;
use crate::stage::manager_from_extensions;
use crate::{Connection, WebSocketManager, WsError};

type FrameFn = Arc<dyn Fn(WsFrame) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;
type FrameService = BoxCloneSyncService<WsFrame, (), BoxError>;

/// An inbound frame a handler processes: a unit of work of its own, with the connection it
/// came on and the upgrade request's headers (so interceptors that read headers, such as
/// an auth layer, see the same ones on every frame).
pub struct WsFrame {
    message: Message,
    connection: Connection,
    headers: Arc<HeaderMap>,
    extensions: Extensions,
}

impl fmt::Debug for WsFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsFrame")
            .field("connection", &self.connection.id())
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl WsFrame {
    /// The connection it came on (to join or leave rooms, or close it).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Its payload.
    pub fn bytes(&self) -> &[u8] {
        match &self.message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => &[],
        }
    }

    /// Its payload as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes()).ok()
    }

    /// Whether it came in a text frame.
    pub fn is_text(&self) -> bool {
        matches!(self.message, Message::Text(_))
    }

    /// Its payload decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.bytes())
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl Envelope for WsFrame {
    fn kind(&self) -> UnitKind {
        UnitKind::WebSocket
    }

    fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }
}

/// The upgrade of a request to a WebSocket connection, as an axum extractor.
///
/// The upgrade request runs through the route's unit stack like any request (the shared
/// interceptors can refuse it, with a 401 say, before any upgrade). The handler decides the
/// rooms the connection joins and what runs for each inbound frame, and returns the
/// upgrade as its response:
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use jararaca_http::{ApiError, Path};
/// use jararaca_ws::{WsFrame, WsUpgrade};
///
/// async fn chat(upgrade: WsUpgrade, Path(room): Path<String>) -> Result<Response, ApiError> {
///     Ok(upgrade
///         .join(&[room])
///         .map_err(|e| ApiError::bad_request(e.to_string()))?
///         .on_frame(|frame: WsFrame| async move {
///             // A unit of work of its own: what it stages goes out if it succeeds.
///             let _said = frame.text().unwrap_or_default();
///             Ok(())
///         })
///         .into_response())
/// }
/// ```
pub struct WsUpgrade {
    upgrade: WebSocketUpgrade,
    manager: WebSocketManager,
    container: Option<Container>,
    headers: Arc<HeaderMap>,
    config: WsConfig,
    rooms: Vec<Arc<str>>,
    on_frame: Option<FrameFn>,
}

impl fmt::Debug for WsUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsUpgrade")
            .field("rooms", &self.rooms)
            .field("on_frame", &self.on_frame.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request could not become a WebSocket connection.
#[derive(Debug)]
pub enum WsUpgradeRejection {
    /// It is not a valid WebSocket upgrade request (axum's rejection, a 4xx).
    Upgrade(axum::extract::ws::rejection::WebSocketUpgradeRejection),
    /// There is no WebSocket manager: a wiring mistake, a 500.
    NoManager(WsError),
}

impl IntoResponse for WsUpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Upgrade(rejection) => rejection.into_response(),
            Self::NoManager(error) => crate::stage::MissingWebSocket::from(error).into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = WsUpgradeRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let manager =
            manager_from_extensions(&parts.extensions).map_err(WsUpgradeRejection::NoManager)?;
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(WsUpgradeRejection::Upgrade)?;
        let container = parts
            .extensions
            .get::<Scope>()
            .map(|scope| scope.container().clone());
        Ok(Self {
            upgrade,
            config: manager.config().clone(),
            manager,
            container,
            headers: Arc::new(parts.headers.clone()),
            rooms: Vec::new(),
            on_frame: None,
        })
    }
}

impl jararaca_api::RouteInput for WsUpgrade {}

impl WsUpgrade {
    /// Joins the connection to `rooms` once it is open.
    pub fn join<R: AsRef<str>>(mut self, rooms: &[R]) -> Result<Self, WsError> {
        for room in crate::room::rooms(rooms)? {
            if !self.rooms.contains(&room) {
                self.rooms.push(room);
            }
        }
        Ok(self)
    }

    /// Runs `handler` for each inbound text or binary frame, one at a time, each in a unit
    /// of work of its own through the service's interceptors. Without a handler, inbound
    /// frames are read (for keepalive and limits) and ignored.
    pub fn on_frame<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(WsFrame) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.on_frame = Some(Arc::new(move |frame| handler(frame).boxed()));
        self
    }

    /// Replaces this connection's limits (the manager's by default).
    pub fn config(mut self, config: WsConfig) -> Self {
        self.config = config;
        self
    }

    /// Sends text frames to this client instead of binary ones.
    pub fn text_frames(mut self) -> Self {
        self.config.frames = FrameKind::Text;
        self
    }

    /// The manager the connection joins.
    pub fn manager(&self) -> &WebSocketManager {
        &self.manager
    }
}

impl IntoResponse for WsUpgrade {
    fn into_response(self) -> Response {
        let Self {
            upgrade,
            manager,
            container,
            headers,
            config,
            rooms,
            on_frame,
        } = self;
        let upgrade = upgrade
            .read_buffer_size(config.read_buffer_size)
            .write_buffer_size(config.write_buffer_size)
            .max_message_size(config.max_message_size)
            .max_frame_size(config.max_frame_size);
        upgrade
            .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
            .on_upgrade(move |socket| async move {
                let frames = on_frame.map(|handler| FrameUnits {
                    handler,
                    manager: manager.clone(),
                    container,
                    headers,
                    service: None,
                });
                run_connection(socket, manager, config, rooms, frames).await;
            })
    }
}

/// What runs each inbound frame: the handler in the unit stack, built on the first frame
/// (most connections only receive).
struct FrameUnits {
    handler: FrameFn,
    manager: WebSocketManager,
    container: Option<Container>,
    headers: Arc<HeaderMap>,
    service: Option<FrameService>,
}

impl FrameUnits {
    fn service(&mut self) -> FrameService {
        if let Some(service) = &self.service {
            return service.clone();
        }
        let handler = Arc::clone(&self.handler);
        let inner = tower::service_fn(move |frame: WsFrame| handler(frame));
        let interceptors = self.manager.interceptors().cloned().unwrap_or_default();
        let stack = ServiceBuilder::new()
            .layer(UnitOfWorkLayer::new())
            .option_layer(self.container.clone().map(ScopeLayer::new))
            .layer(interceptors.layer_for::<WsFrame>())
            .layer(CatchPanicLayer::new())
            .service(inner);
        let service = BoxCloneSyncService::new(stack);
        self.service = Some(service.clone());
        service
    }

    fn run(&mut self, message: Message, connection: &Connection) -> BoxFuture<'static, ()> {
        let mut extensions = Extensions::new();
        extensions.insert(self.manager.clone());
        let frame = WsFrame {
            message,
            connection: connection.clone(),
            headers: Arc::clone(&self.headers),
            extensions,
        };
        let service = self.service();
        async move {
            if let Err(error) = service.oneshot(frame).await {
                tracing::warn!(%error, "a WebSocket frame's handler failed; its sends were dropped");
            }
        }
        .boxed()
    }
}

/// Decides pings and dead connections from what was last heard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    Ping,
    Dead,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            last_heard: now,
        }
    }

    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// At each tick of the ping interval: a ping, or `Dead` when nothing was heard for the
    /// interval and the timeout after it.
    pub(crate) fn tick(&self, now: Instant) -> Beat {
        if now.saturating_duration_since(self.last_heard) > self.interval + self.timeout {
            Beat::Dead
        } else {
            Beat::Ping
        }
    }
}

/// A token bucket over inbound messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Whether one more message is allowed now.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn outbound(kind: FrameKind, frame: Bytes) -> Message {
    match kind {
        FrameKind::Binary => Message::Binary(frame),
        // A raw broadcast that is not UTF-8 can only go as binary.
        FrameKind::Text if std::str::from_utf8(&frame).is_err() => Message::Binary(frame),
        FrameKind::Text => match Utf8Bytes::try_from(frame.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(frame),
        },
    }
}

enum End {
    /// The client went away or the socket failed.
    Gone,
    /// Close with this frame.
    Close(u16, &'static str),
}

/// The connection's one task: writes queued frames, reads inbound ones (running the handler
/// for each, one at a time), pings, and enforces the limits; on the way out it leaves every
/// room.
async fn run_connection(
    mut socket: WebSocket,
    manager: WebSocketManager,
    config: WsConfig,
    rooms: Vec<Arc<str>>,
    mut frames: Option<FrameUnits>,
) {
    let (connection, queue) = manager.connect();
    if !rooms.is_empty() && connection.join(&rooms).is_err() {
        return;
    }
    let shared = Arc::clone(&connection.shared);
    let start = Instant::now();
    let mut keepalive = Keepalive::new(config.ping_interval, config.pong_timeout, start);
    let mut rate = RateLimit::new(config.max_messages_per_second, config.message_burst, start);
    let mut ticker = tokio::time::interval_at(start + config.ping_interval, config.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight: Option<BoxFuture<'static, ()>> = None;

    let end = 'run: loop {
        match shared.next() {
            Next::Close(close) => break End::Close(close.code, close.reason),
            Next::Frame(frame) => {
                let send = socket.send(outbound(config.frames, frame));
                tokio::pin!(send);
                loop {
                    // The send first: when it completes at once, as it mostly does, the wake
                    // is never polled and so never registered.
                    tokio::select! {
                        biased;
                        sent = &mut send => {
                            if sent.is_err() {
                                break 'run End::Gone;
                            }
                            break;
                        }
                        () = shared.wake.notified() => {
                            if let Some(close) = shared.close_requested() {
                                break 'run End::Close(close.code, close.reason);
                            }
                        }
                    }
                }
                continue;
            }
            Next::Idle => {}
        }
        let event = tokio::select! {
            () = shared.wake.notified() => Event::Woken,
            received = socket.recv(), if inflight.is_none() => Event::Received(received),
            () = finish(&mut inflight), if inflight.is_some() => Event::FrameDone,
            _ = ticker.tick() => Event::Tick,
        };
        match event {
            Event::Woken => {}
            Event::FrameDone => inflight = None,
            Event::Received(received) => {
                let Some(Ok(message)) = received else {
                    break End::Gone;
                };
                let now = Instant::now();
                keepalive.heard(now);
                match message {
                    Message::Close(_) => break End::Gone,
                    Message::Ping(_) | Message::Pong(_) => {}
                    data => {
                        if !rate.allow(now) {
                            manager
                                .stats_ref()
                                .rate_limited
                                .fetch_add(1, Ordering::Relaxed);
                            break End::Close(CLOSE_POLICY, "too many messages");
                        }
                        if let Some(frames) = frames.as_mut() {
                            inflight = Some(frames.run(data, &connection));
                        }
                    }
                }
            }
            Event::Tick => match keepalive.tick(Instant::now()) {
                Beat::Ping => {
                    if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                        break End::Gone;
                    }
                }
                Beat::Dead => {
                    manager
                        .stats_ref()
                        .dead_connections
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        connection = connection.id(),
                        "dropping a WebSocket connection that stopped answering pings"
                    );
                    break End::Gone;
                }
            },
        }
    };
    drop(queue);
    if let End::Close(code, reason) = end {
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(config.close_timeout, socket.send(close)).await;
    }
    // A frame's unit still running finishes on its own; its sends go to the other clients.
    if let Some(inflight) = inflight {
        tokio::spawn(inflight);
    }
}

enum Event {
    Woken,
    Received(Option<Result<Message, axum::Error>>),
    FrameDone,
    Tick,
}

async fn finish(inflight: &mut Option<BoxFuture<'static, ()>>) {
    match inflight {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_heard_from_stays_and_a_silent_one_is_dead() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(Duration::from_secs(30), Duration::from_secs(10), start);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(keepalive.tick(Instant::now()), Beat::Ping);
        keepalive.heard(Instant::now());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(keepalive.tick(Instant::now()), Beat::Ping);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(keepalive.tick(Instant::now()), Beat::Dead);
    }

    #[tokio::test(start_paused = true)]
    async fn the_message_rate_allows_bursts_then_refills() {
        let mut rate = RateLimit::new(2, 3, Instant::now());
        assert!((0..3).all(|_| rate.allow(Instant::now())));
        assert!(!rate.allow(Instant::now()));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(rate.allow(Instant::now()));
        assert!(!rate.allow(Instant::now()));
    }
}
