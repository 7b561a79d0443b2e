//! Counters of what a manager sent, delivered and dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) published: AtomicU64,
    pub(crate) publish_failures: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) slow_clients: AtomicU64,
    pub(crate) dead_connections: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) resubscriptions: AtomicU64,
    pub(crate) subscription_gap_ms: AtomicU64,
    pub(crate) subscribed: AtomicBool,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> WsStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WsStats {
            published: get(&self.published),
            publish_failures: get(&self.publish_failures),
            received: get(&self.received),
            undecodable: get(&self.undecodable),
            slow_clients: get(&self.slow_clients),
            dead_connections: get(&self.dead_connections),
            rate_limited: get(&self.rate_limited),
            resubscriptions: get(&self.resubscriptions),
            subscription_gap_ms: get(&self.subscription_gap_ms),
            subscribed: self.subscribed.load(Ordering::Relaxed),
        }
    }
}

/// What a [`WebSocketManager`](crate::WebSocketManager) has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsStats {
    /// Sends and broadcasts handed to the backend successfully.
    pub published: u64,
    /// Sends and broadcasts the backend could not publish (Redis unreachable): each reached
    /// no client, and each was reported when it failed.
    pub publish_failures: u64,
    /// Messages received from the backend for this process's clients.
    pub received: u64,
    /// Messages from the backend that were not in the reference's format (ignored).
    pub undecodable: u64,
    /// Clients disconnected because their send queue was full.
    pub slow_clients: u64,
    /// Connections dropped because they stopped answering pings.
    pub dead_connections: u64,
    /// Clients disconnected for sending faster than the configured rate.
    pub rate_limited: u64,
    /// Times the backend's subscription was lost and made again.
    pub resubscriptions: u64,
    /// Total time, in milliseconds, the subscription was down: messages other instances
    /// published meanwhile did not reach this process's clients.
    pub subscription_gap_ms: u64,
    /// Whether the backend is subscribed now (always true in process).
    pub subscribed: bool,
}
