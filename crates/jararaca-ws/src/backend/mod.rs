//! Fan-out backends: how a send reaches the rooms of every process.
//!
//! Rooms are per process. A send goes to the backend, and every process — the sender's
//! included — delivers it to its own connections in those rooms: [`InProcess`] hands it
//! straight to this process's rooms; [`RedisFanOut`] publishes it in Python jararaca's
//! format and delivers what its subscription receives.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use memory::InProcess;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_BROADCAST_CHANNEL, DEFAULT_SEND_CHANNEL, RedisChannels, RedisFanOut};

use crate::WsError;
use crate::local::LocalRooms;

/// Carries sends and broadcasts to every process's rooms.
pub trait FanOut: Send + Sync + fmt::Debug + 'static {
    /// Sends `frame` to the clients in `rooms` (validated names) of every process.
    fn send<'a>(
        &'a self,
        rooms: &'a [Arc<str>],
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), WsError>>;

    /// Sends `frame` to every client of every process.
    fn broadcast(&self, frame: Bytes) -> BoxFuture<'_, Result<(), WsError>>;

    /// Whether the backend can publish and is subscribed (for readiness checks).
    fn ready(&self) -> BoxFuture<'_, Result<(), WsError>> {
        Box::pin(async { Ok(()) })
    }
}

/// This process's rooms, as a backend delivers into them.
#[derive(Clone)]
pub struct LocalDelivery {
    pub(crate) rooms: Arc<LocalRooms>,
}

impl fmt::Debug for LocalDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalDelivery").field(&self.rooms).finish()
    }
}

impl LocalDelivery {
    /// Queues `frame` for this process's clients in `rooms`; how many it was queued for.
    pub fn send<R: AsRef<str>>(&self, rooms: &[R], frame: &Bytes) -> usize {
        self.rooms.deliver(rooms, frame)
    }

    /// Queues `frame` for every client of this process; how many it was queued for.
    pub fn broadcast(&self, frame: &Bytes) -> usize {
        self.rooms.deliver_all(frame)
    }
}
