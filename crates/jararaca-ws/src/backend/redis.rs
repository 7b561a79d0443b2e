//! Fan-out over Redis pub/sub, in Python jararaca's `RedisWebSocketConnectionBackend` format.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{FanOut, LocalDelivery};
use crate::WsError;
use crate::room::{decode_send_payload, encode_send_payload};
use crate::stats::Stats;

/// The channel of sends to rooms, as the reference's docs name it.
pub const DEFAULT_SEND_CHANNEL: &str = "jararaca:websocket:send";
/// The channel of broadcasts, as the reference's docs name it.
pub const DEFAULT_BROADCAST_CHANNEL: &str = "jararaca:websocket:broadcast";

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);

/// The two pub/sub channels: sends carry `room1,room2 NUL <frame>`, broadcasts the frame
/// itself. Every instance, Python or Rust, must use the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisChannels {
    /// Sends to rooms (default `jararaca:websocket:send`).
    pub send: String,
    /// Broadcasts (default `jararaca:websocket:broadcast`).
    pub broadcast: String,
}

impl Default for RedisChannels {
    fn default() -> Self {
        Self {
            send: DEFAULT_SEND_CHANNEL.into(),
            broadcast: DEFAULT_BROADCAST_CHANNEL.into(),
        }
    }
}

impl RedisChannels {
    /// Channels named `<prefix>:send` and `<prefix>:broadcast`.
    pub fn prefixed(prefix: &str) -> Self {
        Self {
            send: format!("{prefix}:send"),
            broadcast: format!("{prefix}:broadcast"),
        }
    }
}

/// Fan-out through Redis pub/sub: a send is published (and only published, as in the
/// reference); every instance's subscription, the sender's included, delivers it to its own
/// clients.
///
/// The subscription runs its own loop: when Redis goes away it reconnects with backoff
/// (100 ms doubling to 1 s) and subscribes again, reporting how long it was down (messages
/// published meanwhile are lost to this process: pub/sub keeps nothing). Publishes that fail
/// meanwhile are counted and returned as [`WsError::Publish`], never dropped silently.
#[derive(Debug)]
pub struct RedisFanOut {
    publisher: ConnectionManager,
    channels: RedisChannels,
    stats: Arc<Stats>,
    subscriber: tokio::task::AbortHandle,
}

impl Drop for RedisFanOut {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

fn backend_error(url: &str, e: impl std::fmt::Display) -> WsError {
    WsError::Backend(format!(
        "cannot reach Redis at {url}: {e} (is it running? pass redis://host:port/db)"
    ))
}

impl RedisFanOut {
    /// Connects to `url`, subscribes to `channels` (returning once subscribed, so nothing
    /// sent afterwards is missed) and delivers what arrives into `local`.
    pub async fn connect(
        url: &str,
        channels: RedisChannels,
        local: LocalDelivery,
    ) -> Result<Self, WsError> {
        let client = redis::Client::open(url).map_err(|e| {
            WsError::Backend(format!(
                "the Redis URL {url:?} cannot be used ({e}): pass redis://host:port/db"
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let publisher = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| backend_error(url, e))?;
        let stats = Arc::clone(&local.rooms.stats);
        let (first_tx, first_rx) = oneshot::channel();
        let subscriber = tokio::spawn(subscribe_loop(
            client,
            channels.clone(),
            local,
            Arc::clone(&stats),
            first_tx,
        ))
        .abort_handle();
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                subscriber.abort();
                return Err(backend_error(url, e));
            }
            Err(_) => return Err(backend_error(url, "the subscriber stopped")),
        }
        Ok(Self {
            publisher,
            channels,
            stats,
            subscriber,
        })
    }

    /// The channels it publishes to and subscribes to.
    pub fn channels(&self) -> &RedisChannels {
        &self.channels
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> Result<(), WsError> {
        let mut connection = self.publisher.clone();
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut connection)
            .await;
        match result {
            Ok(_) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let failures = self.stats.publish_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    channel,
                    error = %e,
                    failures,
                    "a WebSocket message could not be published to Redis and reached no client"
                );
                Err(WsError::Publish {
                    channel: channel.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

impl FanOut for RedisFanOut {
    fn send<'a>(
        &'a self,
        rooms: &'a [Arc<str>],
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), WsError>> {
        Box::pin(async move {
            let payload = encode_send_payload(rooms, &frame);
            self.publish(&self.channels.send, payload).await
        })
    }

    fn broadcast(&self, frame: Bytes) -> BoxFuture<'_, Result<(), WsError>> {
        Box::pin(async move { self.publish(&self.channels.broadcast, frame.to_vec()).await })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), WsError>> {
        Box::pin(async move {
            let mut connection = self.publisher.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map_err(|e| WsError::Backend(format!("Redis does not answer: {e}")))?;
            if self.stats.subscribed.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(WsError::Backend(
                    "the WebSocket subscription to Redis is down (reconnecting)".into(),
                ))
            }
        })
    }
}

async fn subscribe(
    client: &redis::Client,
    channels: &RedisChannels,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    pubsub.subscribe(&channels.send).await?;
    pubsub.subscribe(&channels.broadcast).await?;
    Ok(pubsub)
}

/// Subscribes, delivers, and on a lost connection subscribes again, until aborted.
async fn subscribe_loop(
    client: redis::Client,
    channels: RedisChannels,
    local: LocalDelivery,
    stats: Arc<Stats>,
    first: oneshot::Sender<Result<(), String>>,
) {
    let mut first = Some(first);
    let mut backoff = MIN_BACKOFF;
    let mut lost_at: Option<Instant> = None;
    loop {
        match subscribe(&client, &channels).await {
            Ok(pubsub) => {
                stats.subscribed.store(true, Ordering::Relaxed);
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                if let Some(at) = lost_at.take() {
                    let gap = at.elapsed();
                    stats.resubscriptions.fetch_add(1, Ordering::Relaxed);
                    stats.subscription_gap_ms.fetch_add(
                        u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    tracing::warn!(
                        send = %channels.send,
                        broadcast = %channels.broadcast,
                        gap_ms = gap.as_millis(),
                        "resubscribed to Redis; messages other instances published during the gap \
                         did not reach this process's clients"
                    );
                }
                backoff = MIN_BACKOFF;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    deliver(&channels, &local, &stats, &message);
                }
                stats.subscribed.store(false, Ordering::Relaxed);
                lost_at = Some(Instant::now());
                tracing::warn!(
                    send = %channels.send,
                    "lost the WebSocket subscription to Redis; reconnecting"
                );
            }
            Err(error) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(error.to_string()));
                    return;
                }
                tracing::debug!(%error, "subscribing to Redis failed; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn deliver(channels: &RedisChannels, local: &LocalDelivery, stats: &Stats, message: &redis::Msg) {
    let payload = message.get_payload_bytes();
    let channel = message.get_channel_name();
    if channel == channels.send {
        match decode_send_payload(payload) {
            Some((rooms, frame)) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                local.send(&rooms, &Bytes::copy_from_slice(frame));
            }
            None => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    channel,
                    "ignoring a WebSocket send without the `rooms NUL message` layout"
                );
            }
        }
    } else if channel == channels.broadcast {
        stats.received.fetch_add(1, Ordering::Relaxed);
        local.broadcast(&Bytes::copy_from_slice(payload));
    }
}
