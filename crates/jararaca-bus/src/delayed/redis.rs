//! The Redis delayed-message store, in the reference's key layout.

use std::fmt;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use super::{DelayedMessage, DelayedStore, PayloadPolicy, TimePolicy, new_task_id};
use crate::BusError;

/// The sorted set of waiting message ids, scored by dispatch time (the reference's name).
pub const DELAYED_MESSAGES_KEY: &str = "delayed_messages";
/// The prefix of each message's JSON key: `delayed_messages_metadata:<id>`.
pub const METADATA_KEY_PREFIX: &str = "delayed_messages_metadata:";

/// Takes due ids, their metadata and removes both in one step, so concurrent pumps (Rust or
/// Python) never send a message twice.
const CLAIM_SCRIPT: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local meta = redis.call('GET', key)
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', key)
  if meta then
    table.insert(out, id)
    table.insert(out, meta)
  end
end
return out
";

/// Delayed messages in Redis, shared with Python services: `ZADD delayed_messages <time>
/// <id>` plus `SET delayed_messages_metadata:<id> <json>` in one MULTI/EXEC.
///
/// The connection is a [`ConnectionManager`], which reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    claim: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`, `redis+unix://`; the reference's
    /// BACKEND_URL).
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError::InvalidUrl {
            reason: format!("the Redis URL cannot be used ({e}): pass redis://host:port/db"),
        })?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(BusError::redis("connect"))?;
        Ok(Self::new(connection))
    }

    /// Uses an existing connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            prefix: String::new(),
            claim: redis::Script::new(CLAIM_SCRIPT),
        }
    }

    /// Puts `prefix` before both key names. Python services use the plain names, so set a
    /// prefix only to keep tests or unrelated deployments apart.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The sorted set's key.
    pub fn delayed_messages_key(&self) -> String {
        format!("{}{DELAYED_MESSAGES_KEY}", self.prefix)
    }

    /// The metadata key of message `id`.
    pub fn metadata_key(&self, id: &str) -> String {
        format!("{}{METADATA_KEY_PREFIX}{id}", self.prefix)
    }
}

impl DelayedStore for RedisStore {
    fn ready(&self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(drop)
                .map_err(BusError::redis("ping"))
        })
    }

    fn enqueue(&self, message: DelayedMessage) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let keyed = message.idempotency_key.is_some();
            let id = message.idempotency_key.clone().unwrap_or_else(new_task_id);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(self.delayed_messages_key());
            if keyed {
                match message.time_policy {
                    TimePolicy::Greater => {
                        zadd.arg("GT");
                    }
                    TimePolicy::Lesser => {
                        zadd.arg("LT");
                    }
                    TimePolicy::Replace => {}
                }
            }
            zadd.arg(message.dispatch_time).arg(&id);
            let mut set = redis::cmd("SET");
            set.arg(self.metadata_key(&id)).arg(message.to_json());
            if keyed && message.payload_policy == PayloadPolicy::Ignore {
                set.arg("NX");
            }
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(zadd)
                .ignore()
                .add_command(set)
                .ignore();
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(BusError::redis("storing a delayed message"))
        })
    }

    fn claim_due(
        &self,
        now: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DelayedMessage>, BusError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let pairs: Vec<String> = self
                .claim
                .key(self.delayed_messages_key())
                .arg(now)
                .arg(limit)
                .arg(self.metadata_key(""))
                .invoke_async(&mut connection)
                .await
                .map_err(BusError::redis("claiming due delayed messages"))?;
            let mut claimed = Vec::with_capacity(pairs.len() / 2);
            for pair in pairs.chunks_exact(2) {
                match DelayedMessage::from_json(&pair[0], pair[1].as_bytes()) {
                    Ok(message) => claimed.push(message),
                    // Claimed and unreadable: it would fail again; say so loudly and move on.
                    Err(error) => {
                        tracing::error!(%error, json = %pair[1], "dropping an unreadable delayed message")
                    }
                }
            }
            Ok(claimed)
        })
    }
}
