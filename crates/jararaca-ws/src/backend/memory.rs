use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{FanOut, LocalDelivery};
use crate::WsError;

/// The embedded default: sends go straight to this process's rooms (one process serves
/// every client).
#[derive(Debug, Clone)]
pub struct InProcess {
    local: LocalDelivery,
}

impl InProcess {
    /// Delivers into `local`.
    pub fn new(local: LocalDelivery) -> Self {
        Self { local }
    }
}

impl FanOut for InProcess {
    fn send<'a>(
        &'a self,
        rooms: &'a [Arc<str>],
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), WsError>> {
        self.local.send(rooms, &frame);
        self.local
            .rooms
            .stats
            .published
            .fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn broadcast(&self, frame: Bytes) -> BoxFuture<'_, Result<(), WsError>> {
        self.local.broadcast(&frame);
        self.local
            .rooms
            .stats
            .published
            .fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}
