//! [`WebSocketManager`]: this process's rooms and the backend that fans sends out.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use jararaca_di::Interceptors;

use crate::backend::{FanOut, InProcess, LocalDelivery};
use crate::config::WsConfig;
use crate::local::{ConnShared, LocalRooms};
use crate::room::rooms;
use crate::stats::{Stats, WsStats};
use crate::{WebSocketMessage, WsError, encode_frame};

/// This process's WebSocket connections and rooms, and the backend every send goes through
/// (the reference's `WebSocketConnectionManager`). Cheap to clone; every clone is the same
/// manager.
///
/// Rooms are per process. A send goes to the backend, and every process — this one
/// included — delivers it to its own connections in those rooms: in process that is
/// immediate; over Redis it is what each instance's subscription receives.
///
/// ```
/// use jararaca_ws::{WebSocketManager, WebSocketMessage, WsConfig};
///
/// #[derive(serde::Serialize)]
/// struct Ping { n: u32 }
/// impl WebSocketMessage for Ping {
///     const MESSAGE_ID: &'static str = "ping";
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let manager = WebSocketManager::in_process(WsConfig::default());
/// let (connection, mut queue) = manager.connect();
/// connection.join(&["lobby"])?;
/// manager.send(&["lobby"], &Ping { n: 1 }).await?;
/// assert_eq!(&queue.try_next().unwrap()[..], br#"{"MESSAGE_ID":"ping","message":{"n":1}}"#);
/// # Ok::<_, jararaca_ws::WsError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct WebSocketManager {
    inner: Arc<Inner>,
}

struct Inner {
    local: Arc<LocalRooms>,
    backend: Arc<dyn FanOut>,
    config: WsConfig,
    interceptors: OnceLock<Interceptors>,
}

impl fmt::Debug for WebSocketManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketManager")
            .field("local", &self.inner.local)
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl WebSocketManager {
    /// A manager whose sends stay in this process (the embedded default).
    pub fn in_process(config: WsConfig) -> Self {
        Self::with_backend(config, |local| Arc::new(InProcess::new(local)))
    }

    /// A manager over the backend `make` builds on this process's rooms.
    pub fn with_backend(
        config: WsConfig,
        make: impl FnOnce(LocalDelivery) -> Arc<dyn FanOut>,
    ) -> Self {
        let local = Arc::new(LocalRooms::new(Arc::new(Stats::default())));
        local
            .stats
            .subscribed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let backend = make(LocalDelivery {
            rooms: Arc::clone(&local),
        });
        Self {
            inner: Arc::new(Inner {
                local,
                backend,
                config,
                interceptors: OnceLock::new(),
            }),
        }
    }

    /// A manager fanning out over Redis at `url` on `channels`, subscribed when this
    /// returns.
    #[cfg(feature = "redis")]
    pub async fn redis(
        url: &str,
        channels: crate::RedisChannels,
        config: WsConfig,
    ) -> Result<Self, WsError> {
        let local = Arc::new(LocalRooms::new(Arc::new(Stats::default())));
        let backend = crate::RedisFanOut::connect(
            url,
            channels,
            LocalDelivery {
                rooms: Arc::clone(&local),
            },
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                local,
                backend: Arc::new(backend),
                config,
                interceptors: OnceLock::new(),
            }),
        })
    }

    /// The limits its connections get.
    pub fn config(&self) -> &WsConfig {
        &self.inner.config
    }

    /// Sends `message` at once to the clients in `rooms`, in every process. Inside a unit
    /// of work, prefer staging it ([`WebSocketMessageExt::send`](crate::WebSocketMessageExt)
    /// or [`UnitSends`](crate::UnitSends)), so that it goes out only if the unit commits.
    pub async fn send<R: AsRef<str>, M: WebSocketMessage>(
        &self,
        rooms: &[R],
        message: &M,
    ) -> Result<(), WsError> {
        let rooms = crate::room::rooms(rooms)?;
        let frame = encode_frame(message)?;
        self.send_frame(&rooms, frame).await
    }

    /// Sends an encoded frame at once to the clients in `rooms`, in every process.
    pub async fn send_raw<R: AsRef<str>>(&self, rooms: &[R], frame: Bytes) -> Result<(), WsError> {
        let rooms = crate::room::rooms(rooms)?;
        self.send_frame(&rooms, frame).await
    }

    pub(crate) async fn send_frame(&self, rooms: &[Arc<str>], frame: Bytes) -> Result<(), WsError> {
        if rooms.is_empty() {
            return Ok(());
        }
        self.inner.backend.send(rooms, frame).await
    }

    /// Sends `message` at once to every client of every process.
    pub async fn broadcast<M: WebSocketMessage>(&self, message: &M) -> Result<(), WsError> {
        self.broadcast_raw(encode_frame(message)?).await
    }

    /// Sends `frame`, unchanged, to every client of every process (the reference's
    /// `broadcast(bytes)`).
    pub async fn broadcast_raw(&self, frame: Bytes) -> Result<(), WsError> {
        self.inner.backend.broadcast(frame).await
    }

    /// Adds a connection (the reference's `add_websocket`) and returns its handle and the
    /// queue its frames arrive in. Endpoints do this for each socket; call it yourself to
    /// carry frames over another transport.
    pub fn connect(&self) -> (Connection, FrameQueue) {
        let shared = self.inner.local.add(self.inner.config.queue_capacity);
        let connection = Connection {
            shared: Arc::clone(&shared),
            local: Arc::clone(&self.inner.local),
        };
        let queue = FrameQueue {
            connection: connection.clone(),
        };
        (connection, queue)
    }

    /// The number of connections of this process.
    pub fn connections(&self) -> usize {
        self.inner.local.connections()
    }

    /// The number of this process's connections in `room`.
    pub fn room_size(&self, room: &str) -> usize {
        self.inner.local.room_size(room)
    }

    /// Asks every connection of this process to close with `code`.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        self.inner.local.close_all(code, reason);
    }

    /// What it has sent, delivered and dropped so far.
    pub fn stats(&self) -> WsStats {
        self.inner.local.stats.snapshot()
    }

    /// Whether the backend can publish and is subscribed.
    pub async fn ready(&self) -> Result<(), WsError> {
        self.inner.backend.ready().await
    }

    /// Sets the interceptors inbound frames run in (the capability does this when the
    /// service is built); later calls are ignored.
    pub fn set_interceptors(&self, interceptors: Interceptors) {
        let _ = self.inner.interceptors.set(interceptors);
    }

    pub(crate) fn interceptors(&self) -> Option<&Interceptors> {
        self.inner.interceptors.get()
    }

    pub(crate) fn stats_ref(&self) -> &Stats {
        &self.inner.local.stats
    }
}

/// One connection of a [`WebSocketManager`]: its rooms and its close. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Arc<ConnShared>,
    local: Arc<LocalRooms>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("rooms", &self.shared.rooms())
            .finish()
    }
}

impl Connection {
    /// Its id, unique in this process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Joins `rooms` (names the wire format cannot carry are refused and nothing is joined).
    pub fn join<R: AsRef<str>>(&self, rooms: &[R]) -> Result<(), WsError> {
        let rooms = rooms_checked(rooms)?;
        self.local.join(&self.shared, &rooms);
        Ok(())
    }

    /// Leaves `rooms`.
    pub fn leave<R: AsRef<str>>(&self, rooms: &[R]) -> Result<(), WsError> {
        let rooms = rooms_checked(rooms)?;
        self.local.leave(&self.shared, &rooms);
        Ok(())
    }

    /// The rooms it is in.
    pub fn rooms(&self) -> Vec<String> {
        self.shared.rooms().iter().map(|r| r.to_string()).collect()
    }

    /// Asks its socket to close with `code` (the frames still queued are dropped).
    pub fn close(&self, code: u16, reason: &'static str) {
        self.shared.request_close(code, reason);
    }

    /// Removes it from every room and from the manager (the reference's
    /// `remove_websocket`); endpoints do this when the socket ends.
    pub fn remove(&self) {
        self.local.remove(&self.shared);
    }
}

fn rooms_checked<R: AsRef<str>>(names: &[R]) -> Result<Vec<Arc<str>>, WsError> {
    rooms(names)
}

/// The frames queued for one connection, in order; the socket's writer drains it.
#[derive(Debug)]
pub struct FrameQueue {
    connection: Connection,
}

impl FrameQueue {
    /// The next queued frame, if any (`None` also once a close was requested).
    pub fn try_next(&mut self) -> Option<Bytes> {
        match self.connection.shared.next() {
            crate::local::Next::Frame(frame) => Some(frame),
            _ => None,
        }
    }

    /// The close requested for the connection, if any: its code and reason.
    pub fn close_requested(&self) -> Option<(u16, &'static str)> {
        self.connection
            .shared
            .close_requested()
            .map(|c| (c.code, c.reason))
    }
}

impl Drop for FrameQueue {
    fn drop(&mut self) {
        self.connection.remove();
    }
}
