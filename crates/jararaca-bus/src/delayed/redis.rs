//! The Redis delayed-message store, in the reference's key layout.

use std::fmt;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use super::{Claimed, DelayedMessage, DelayedStore, PayloadPolicy, TimePolicy, new_task_id};
use crate::BusError;

/// The sorted set of waiting message ids, scored by dispatch time (the reference's name).
pub const DELAYED_MESSAGES_KEY: &str = "delayed_messages";
/// The prefix of each message's JSON key: `delayed_messages_metadata:<id>`.
pub const METADATA_KEY_PREFIX: &str = "delayed_messages_metadata:";

/// The sorted set of leased (claimed, not yet published) message ids, scored by the time
/// their lease ends. Python jararaca knows nothing of it: it only pumps `delayed_messages`.
pub const IN_FLIGHT_KEY: &str = "delayed_messages_in_flight";

/// Reclaims expired leases, then leases due ids (moving them from the waiting set to the
/// in-flight set, keeping their metadata), in one step: concurrent pumps never lease one
/// message twice, and a claim lost with its pump is due again once its lease ends.
const CLAIM_SCRIPT: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], ARGV[1], id)
  end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  local meta = redis.call('GET', ARGV[3] .. id)
  redis.call('ZREM', KEYS[1], id)
  if meta then
    redis.call('ZADD', KEYS[2], ARGV[4], id)
    table.insert(out, id)
    table.insert(out, meta)
  end
end
return out
";

/// Deletes a published message: its lease, and its metadata unless the id was stored again
/// meanwhile (an idempotency key reused while it was in flight).
const COMPLETE_SCRIPT: &str = r"
redis.call('ZREM', KEYS[2], ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('DEL', KEYS[3])
end
return 1
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
    complete: redis::Script,
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
            complete: redis::Script::new(COMPLETE_SCRIPT),
        }
    }

    /// Puts `prefix` before every key name. Python services use the plain names, so set a
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

    /// The in-flight set's key.
    pub fn in_flight_key(&self) -> String {
        format!("{}{IN_FLIGHT_KEY}", self.prefix)
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
        lease_until: i64,
    ) -> BoxFuture<'_, Result<Vec<Claimed>, BusError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let pairs: Vec<String> = self
                .claim
                .key(self.delayed_messages_key())
                .key(self.in_flight_key())
                .arg(now)
                .arg(limit)
                .arg(self.metadata_key(""))
                .arg(lease_until)
                .invoke_async(&mut connection)
                .await
                .map_err(BusError::redis("claiming due delayed messages"))?;
            let mut claimed = Vec::with_capacity(pairs.len() / 2);
            for pair in pairs.chunks_exact(2) {
                match DelayedMessage::from_json(&pair[0], pair[1].as_bytes()) {
                    Ok(message) => claimed.push(Claimed {
                        id: pair[0].clone(),
                        message,
                    }),
                    // Unreadable: it would fail again. Say so loudly and drop it.
                    Err(error) => {
                        tracing::error!(%error, json = %pair[1], "dropping an unreadable delayed message");
                        self.complete(&pair[0]).await?;
                    }
                }
            }
            Ok(claimed)
        })
    }

    fn complete(&self, id: &str) -> BoxFuture<'_, Result<(), BusError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let mut connection = self.connection.clone();
            self.complete
                .key(self.delayed_messages_key())
                .key(self.in_flight_key())
                .key(self.metadata_key(&id))
                .arg(&id)
                .invoke_async::<i64>(&mut connection)
                .await
                .map(drop)
                .map_err(BusError::redis("deleting a published delayed message"))
        })
    }

    fn retry_at(&self, claimed: Claimed, at: i64) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut message = claimed.message;
            message.dispatch_time = at;
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(self.metadata_key(&claimed.id))
                .arg(message.to_json())
                .ignore()
                .cmd("ZADD")
                .arg(self.delayed_messages_key())
                .arg(at)
                .arg(&claimed.id)
                .ignore()
                .cmd("ZREM")
                .arg(self.in_flight_key())
                .arg(&claimed.id)
                .ignore();
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(BusError::redis("putting a delayed message back"))
        })
    }
}
