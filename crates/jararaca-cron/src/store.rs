//! Where beats and workers agree: the beat lock, last dispatch times and overlap leases, in
//! the reference's Redis keys ([`RedisBeatStore`]) or in process ([`InMemoryBeatStore`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::CronError;

/// The key of the lock a beat holds while it checks and dispatches one action.
pub const BEAT_LOCK_KEY: &str = "beat_lock";
/// The prefix of an action's last dispatch time: `last_dispatch_time:<id>`.
pub const LAST_DISPATCH_PREFIX: &str = "last_dispatch_time:";
/// The prefix of an action's running tick: `in_execution:<id>:<timestamp>`.
pub const IN_EXECUTION_PREFIX: &str = "in_execution:";

/// What beats and workers share. Every operation is atomic on its own; tokens make sure a
/// holder whose lease expired never releases or renews someone else's.
pub trait BeatStore: fmt::Debug + Send + Sync + 'static {
    /// Takes the beat lock with `token` for `ttl` if nobody holds it (`SET NX PX`).
    fn try_lock<'a>(
        &'a self,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>>;

    /// Releases the beat lock if `token` still holds it (compare-and-delete).
    fn unlock<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), CronError>>;

    /// When action `id` was last dispatched (unix seconds).
    fn last_dispatch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<i64>, CronError>>;

    /// Records a dispatch of action `id` at `at` (unix seconds).
    fn set_last_dispatch<'a>(
        &'a self,
        id: &'a str,
        at: i64,
    ) -> BoxFuture<'a, Result<(), CronError>>;

    /// Whether a tick of action `id` is running (an `in_execution:<id>:*` key exists).
    fn is_executing<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, CronError>>;

    /// Marks tick `timestamp` of action `id` as running, held by `token` for `ttl`, unless a
    /// tick of that action is running already; in one atomic step.
    fn acquire_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>>;

    /// Extends the lease of a running tick to `ttl` from now; `false` if `token` lost it.
    fn renew_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>>;

    /// Ends the lease of a running tick if `token` still holds it.
    fn release_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), CronError>>;

    /// Whether the store can be reached now.
    fn ready(&self) -> BoxFuture<'_, Result<(), CronError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The store of a single process (the embedded default): the lock and leases hold between
/// the beat and the workers of this process only.
#[derive(Debug, Default)]
pub struct InMemoryBeatStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    lock: Option<(String, Instant)>,
    last: HashMap<String, i64>,
    executions: HashMap<String, (i64, String, Instant)>,
}

impl InMemoryBeatStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live_execution(state: &mut State, id: &str) -> Option<(i64, String)> {
        let now = Instant::now();
        match state.executions.get(id) {
            Some((_, _, expiry)) if *expiry <= now => {
                state.executions.remove(id);
                None
            }
            Some((ts, token, _)) => Some((*ts, token.clone())),
            None => None,
        }
    }
}

impl BeatStore for InMemoryBeatStore {
    fn try_lock<'a>(
        &'a self,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>> {
        let now = Instant::now();
        let mut state = self.state();
        let free = state.lock.as_ref().is_none_or(|(_, expiry)| *expiry <= now);
        if free {
            state.lock = Some((token.to_string(), now + ttl));
        }
        Box::pin(async move { Ok(free) })
    }

    fn unlock<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), CronError>> {
        let mut state = self.state();
        if state.lock.as_ref().is_some_and(|(held, _)| held == token) {
            state.lock = None;
        }
        Box::pin(async { Ok(()) })
    }

    fn last_dispatch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<i64>, CronError>> {
        let last = self.state().last.get(id).copied();
        Box::pin(async move { Ok(last) })
    }

    fn set_last_dispatch<'a>(
        &'a self,
        id: &'a str,
        at: i64,
    ) -> BoxFuture<'a, Result<(), CronError>> {
        self.state().last.insert(id.to_string(), at);
        Box::pin(async { Ok(()) })
    }

    fn is_executing<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, CronError>> {
        let running = Self::live_execution(&mut self.state(), id).is_some();
        Box::pin(async move { Ok(running) })
    }

    fn acquire_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>> {
        let mut state = self.state();
        let free = Self::live_execution(&mut state, id).is_none();
        if free {
            state.executions.insert(
                id.to_string(),
                (timestamp, token.to_string(), Instant::now() + ttl),
            );
        }
        Box::pin(async move { Ok(free) })
    }

    fn renew_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CronError>> {
        let mut state = self.state();
        let held = Self::live_execution(&mut state, id)
            .is_some_and(|(ts, held)| ts == timestamp && held == token);
        if held {
            state.executions.insert(
                id.to_string(),
                (timestamp, token.to_string(), Instant::now() + ttl),
            );
        }
        Box::pin(async move { Ok(held) })
    }

    fn release_execution<'a>(
        &'a self,
        id: &'a str,
        timestamp: i64,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), CronError>> {
        let mut state = self.state();
        if Self::live_execution(&mut state, id)
            .is_some_and(|(ts, held)| ts == timestamp && held == token)
        {
            state.executions.remove(id);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(feature = "redis")]
pub use self::redis_store::RedisBeatStore;

#[cfg(feature = "redis")]
mod redis_store {
    use std::fmt;
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use redis::aio::ConnectionManager;

    use super::{BEAT_LOCK_KEY, BeatStore, IN_EXECUTION_PREFIX, LAST_DISPATCH_PREFIX};
    use crate::CronError;

    /// Deletes `KEYS[1]` if it holds `ARGV[1]` (the reference's release of `beat_lock`).
    const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

    /// Sets `KEYS[1]` unless a key matches `ARGV[1]` (another tick of the action runs).
    const ACQUIRE_EXECUTION: &str = r"
if #redis.call('KEYS', ARGV[1]) > 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

    /// Extends `KEYS[1]` if it holds `ARGV[1]`.
    const COMPARE_AND_EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

    /// The beat lock, dispatch times and overlap leases in Redis, under the reference's key
    /// names, so that Rust and Python beats and workers share them.
    ///
    /// The connection is a [`ConnectionManager`]: it reconnects by itself.
    #[derive(Clone)]
    pub struct RedisBeatStore {
        connection: ConnectionManager,
        prefix: String,
        compare_and_delete: redis::Script,
        acquire: redis::Script,
        extend: redis::Script,
    }

    impl fmt::Debug for RedisBeatStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisBeatStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    /// A Redis `KEYS` pattern matching `text` literally.
    fn glob_escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    fn millis(ttl: Duration) -> u64 {
        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    impl RedisBeatStore {
        /// Connects to `url` (BACKEND_URL: `redis://host:port/db`).
        pub async fn connect(url: &str) -> Result<Self, CronError> {
            let client = redis::Client::open(url).map_err(|e| {
                CronError::Config(format!(
                    "the Redis URL cannot be used ({e}): pass redis://host:port/db"
                ))
            })?;
            let connection = ConnectionManager::new(client)
                .await
                .map_err(CronError::redis("connect"))?;
            Ok(Self::new(connection))
        }

        /// Uses an existing connection.
        pub fn new(connection: ConnectionManager) -> Self {
            Self {
                connection,
                prefix: String::new(),
                compare_and_delete: redis::Script::new(COMPARE_AND_DELETE),
                acquire: redis::Script::new(ACQUIRE_EXECUTION),
                extend: redis::Script::new(COMPARE_AND_EXTEND),
            }
        }

        /// Puts `prefix` before every key. Python beats use the plain names: set a prefix
        /// only to keep tests or unrelated deployments on one database apart.
        #[must_use]
        pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.prefix = prefix.into();
            self
        }

        /// The beat lock's key.
        pub fn lock_key(&self) -> String {
            format!("{}{BEAT_LOCK_KEY}", self.prefix)
        }

        /// The key of action `id`'s last dispatch time.
        pub fn last_dispatch_key(&self, id: &str) -> String {
            format!("{}{LAST_DISPATCH_PREFIX}{id}", self.prefix)
        }

        /// The key of tick `timestamp` of action `id` while it runs.
        pub fn execution_key(&self, id: &str, timestamp: i64) -> String {
            format!("{}{IN_EXECUTION_PREFIX}{id}:{timestamp}", self.prefix)
        }

        fn execution_pattern(&self, id: &str) -> String {
            format!(
                "{}{IN_EXECUTION_PREFIX}{}:*",
                glob_escape(&self.prefix),
                glob_escape(id)
            )
        }
    }

    impl BeatStore for RedisBeatStore {
        fn try_lock<'a>(
            &'a self,
            token: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(self.lock_key())
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut connection)
                    .await
                    .map_err(CronError::redis("taking the beat lock"))?;
                Ok(set.is_some())
            })
        }

        fn unlock<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let _: i64 = self
                    .compare_and_delete
                    .key(self.lock_key())
                    .arg(token)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(CronError::redis("releasing the beat lock"))?;
                Ok(())
            })
        }

        fn last_dispatch<'a>(
            &'a self,
            id: &'a str,
        ) -> BoxFuture<'a, Result<Option<i64>, CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let value: Option<String> = redis::cmd("GET")
                    .arg(self.last_dispatch_key(id))
                    .query_async(&mut connection)
                    .await
                    .map_err(CronError::redis("reading a last dispatch time"))?;
                // The reference writes integer seconds; accept a float as well.
                Ok(value.and_then(|v| {
                    let v = v.trim();
                    v.parse::<i64>()
                        .ok()
                        .or_else(|| v.parse::<f64>().ok().map(|f| f.floor() as i64))
                }))
            })
        }

        fn set_last_dispatch<'a>(
            &'a self,
            id: &'a str,
            at: i64,
        ) -> BoxFuture<'a, Result<(), CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let _: () = redis::cmd("SET")
                    .arg(self.last_dispatch_key(id))
                    .arg(at)
                    .query_async(&mut connection)
                    .await
                    .map_err(CronError::redis("writing a last dispatch time"))?;
                Ok(())
            })
        }

        fn is_executing<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(self.execution_pattern(id))
                    .query_async(&mut connection)
                    .await
                    .map_err(CronError::redis("looking for running ticks"))?;
                Ok(!keys.is_empty())
            })
        }

        fn acquire_execution<'a>(
            &'a self,
            id: &'a str,
            timestamp: i64,
            token: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let acquired: i64 = self
                    .acquire
                    .key(self.execution_key(id, timestamp))
                    .arg(self.execution_pattern(id))
                    .arg(token)
                    .arg(millis(ttl))
                    .invoke_async(&mut connection)
                    .await
                    .map_err(CronError::redis("taking an overlap lease"))?;
                Ok(acquired == 1)
            })
        }

        fn renew_execution<'a>(
            &'a self,
            id: &'a str,
            timestamp: i64,
            token: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let renewed: i64 = self
                    .extend
                    .key(self.execution_key(id, timestamp))
                    .arg(token)
                    .arg(millis(ttl))
                    .invoke_async(&mut connection)
                    .await
                    .map_err(CronError::redis("renewing an overlap lease"))?;
                Ok(renewed == 1)
            })
        }

        fn release_execution<'a>(
            &'a self,
            id: &'a str,
            timestamp: i64,
            token: &'a str,
        ) -> BoxFuture<'a, Result<(), CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let _: i64 = self
                    .compare_and_delete
                    .key(self.execution_key(id, timestamp))
                    .arg(token)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(CronError::redis("releasing an overlap lease"))?;
                Ok(())
            })
        }

        fn ready(&self) -> BoxFuture<'_, Result<(), CronError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let _: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .map_err(CronError::redis("ping"))?;
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_lock_and_leases_expire_and_only_their_holder_releases_them() {
        let store = InMemoryBeatStore::new();
        assert!(store.try_lock("a", Duration::from_secs(30)).await.unwrap());
        assert!(!store.try_lock("b", Duration::from_secs(30)).await.unwrap());
        store.unlock("b").await.unwrap();
        assert!(!store.try_lock("b", Duration::from_secs(30)).await.unwrap());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(store.try_lock("b", Duration::from_secs(30)).await.unwrap());

        let ttl = Duration::from_secs(10);
        assert!(store.acquire_execution("job", 1, "w1", ttl).await.unwrap());
        assert!(!store.acquire_execution("job", 2, "w2", ttl).await.unwrap());
        assert!(store.is_executing("job").await.unwrap());
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(store.renew_execution("job", 1, "w1", ttl).await.unwrap());
        assert!(!store.renew_execution("job", 1, "w2", ttl).await.unwrap());
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(store.is_executing("job").await.unwrap(), "renewed");
        store.release_execution("job", 1, "w2").await.unwrap();
        assert!(store.is_executing("job").await.unwrap(), "not w2's lease");
        store.release_execution("job", 1, "w1").await.unwrap();
        assert!(!store.is_executing("job").await.unwrap());
        assert!(store.acquire_execution("job", 2, "w2", ttl).await.unwrap());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!store.is_executing("job").await.unwrap(), "expired");
    }
}
