//! [`CronError`]: what can go wrong with scheduled actions and the beat.

use jararaca_bus::BusError;

/// An error of scheduled actions, the beat or their stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    /// A cron expression the reference would not read.
    #[error(
        "scheduled action `{action}`: invalid cron expression `{expression}`: {reason} \
         (expected 5 fields `min hour day month weekday`, optionally a 6th for seconds, \
         or an alias such as @hourly)"
    )]
    InvalidExpression {
        /// The action's name (or id).
        action: String,
        /// The expression as given.
        expression: String,
        /// Why it was refused.
        reason: String,
    },
    /// `JARARACA_DEFAULT_TIMEZONE` (or a zone given in code) is not an IANA zone name.
    #[error(
        "unknown time zone `{0}`: set JARARACA_DEFAULT_TIMEZONE to an IANA name such as UTC or \
         Europe/Berlin"
    )]
    InvalidTimezone(String),
    /// Two scheduled actions have the same id (their queue and Redis keys would collide).
    #[error(
        "two scheduled actions have the id `{0}`: give one of them another name or queue with \
         `.id(…)`"
    )]
    DuplicateAction(String),
    /// A setting is wrong or missing.
    #[error("{0}")]
    Config(String),
    /// A Redis command failed.
    #[cfg(feature = "redis")]
    #[error("Redis {operation} failed: {source} (is BACKEND_URL reachable?)")]
    Redis {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// Publishing a trigger or pumping delayed messages failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

#[cfg(feature = "redis")]
impl CronError {
    pub(crate) fn redis(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { operation, source }
    }
}
