//! The error type of the bus.

/// What went wrong on the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The broker URL cannot be used.
    #[error("invalid broker URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it and how to fix it.
        reason: String,
    },

    /// A message could not be encoded as JSON.
    #[error("cannot encode a message for topic `{topic}` as JSON: {source}")]
    Encode {
        /// The message's topic.
        topic: String,
        /// The serializer's error.
        source: serde_json::Error,
    },

    /// A stored delayed message could not be read.
    #[error("cannot read delayed message `{id}`: {reason}")]
    CorruptDelayedMessage {
        /// Its id.
        id: String,
        /// What was wrong.
        reason: String,
    },

    /// No queue was bound for a message that must be delivered (tasks are `mandatory`).
    #[error(
        "no queue is bound to exchange `{exchange}` for routing key `{routing_key}`: run \
         `declare` for the services that handle it"
    )]
    Unroutable {
        /// The exchange it was published to (`""` for the default exchange).
        exchange: String,
        /// Its routing key.
        routing_key: String,
    },

    /// The broker refused a published message (a negative publisher confirm).
    #[error("the broker refused a message for `{routing_key}` (negative confirm); retry later")]
    Refused {
        /// Its routing key.
        routing_key: String,
    },

    /// `delay()`/`schedule()` or a handler retry needs a delayed-message store.
    #[error(
        "no delayed-message store is configured: give the bus one with `Bus::with_store` \
         (a `RedisStore` for BACKEND_URL, or `InMemoryStore` in one process)"
    )]
    NoDelayedStore,

    /// An ambient bus function was called outside a unit of work.
    #[error(
        "no {what} in this task: publish from a handler wrapped by UnitOfWorkLayer and BusLayer, \
         or use `Bus::publish` directly outside a unit of work"
    )]
    OutsideUnit {
        /// What is missing.
        what: &'static str,
    },

    /// The unit of work is already decided.
    #[error(transparent)]
    Unit(#[from] jararaca_di::UnitError),

    /// Recreating a conflicting queue would drop the messages it holds, and dropping them
    /// was not allowed.
    #[error(
        "`{name}` must be recreated (its arguments differ) but holds {messages} message(s) that \
         would be lost: consume or move them first, or declare with `--discard-messages`"
    )]
    WouldLoseMessages {
        /// The queue.
        name: String,
        /// How many messages it holds.
        messages: u32,
    },

    /// A topology object exists with other settings than the ones to declare.
    #[error(
        "`{name}` already exists with different arguments ({detail}): delete it, or declare \
         with `force` to recreate it (its messages are lost)"
    )]
    TopologyConflict {
        /// The exchange or queue.
        name: String,
        /// The broker's reply.
        detail: String,
    },

    /// An exchange or queue the worker needs does not exist.
    #[error("`{name}` does not exist on the broker: run `declare` first ({detail})")]
    MissingTopology {
        /// The exchange or queue.
        name: String,
        /// The broker's reply.
        detail: String,
    },

    /// The worker was set up wrongly.
    #[error("invalid worker configuration: {0}")]
    Config(String),

    /// An in-memory broker queue or exchange does not exist.
    #[error("queue `{0}` does not exist in the in-memory broker: register a handler for it")]
    NoSuchQueue(String),

    /// Settling a delivery did nothing: RabbitMQ's client answered that its channel is closed
    /// or that it was settled already.
    #[error(
        "{operation} a message from `{queue}` had no effect: its channel is closed or it was \
         settled already; unless it was, the broker delivers it again"
    )]
    NotSettled {
        /// What was being done: `acknowledging`, `rejecting`, `requeueing`.
        operation: &'static str,
        /// The queue it came from.
        queue: String,
    },

    /// RabbitMQ refused the login (`ACCESS_REFUSED`: a wrong user name or password, or a
    /// user without access). Connecting again would fail the same way, so the publisher and
    /// the worker try again only after [`ACCESS_REFUSED_RETRY`](crate::ACCESS_REFUSED_RETRY).
    #[cfg(feature = "amqp")]
    #[error(
        "RabbitMQ refused the login ({detail}): fix the user name and password in BROKER_URL \
         and the user's permissions on the vhost; connecting is not tried again for 30 s"
    )]
    AccessRefused {
        /// The broker's reply.
        detail: String,
    },

    /// A publish waited for a connection to RabbitMQ longer than the publisher's
    /// `publish_timeout` while it reconnects in the background.
    #[cfg(feature = "amqp")]
    #[error(
        "no connection to RabbitMQ after waiting {waited:?} to publish ({last_error}); the \
         publisher keeps reconnecting in the background: retry later, and check BROKER_URL \
         and that the broker is up"
    )]
    NotConnected {
        /// How long the publish waited.
        waited: std::time::Duration,
        /// Why the last connection attempt failed, or that it is still under way.
        last_error: String,
    },

    /// Talking to RabbitMQ failed.
    #[cfg(feature = "amqp")]
    #[error("RabbitMQ {operation} failed: {source}; check BROKER_URL and that the broker is up")]
    Amqp {
        /// What was being done.
        operation: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },

    /// Talking to Redis failed.
    #[cfg(feature = "redis")]
    #[error("Redis {operation} failed: {source}; check BACKEND_URL and that Redis is up")]
    Redis {
        /// What was being done.
        operation: &'static str,
        /// redis' error.
        #[source]
        source: redis::RedisError,
    },

    /// A row of the transactional outbox could not be read.
    #[error("cannot read an outbox message: {reason}")]
    CorruptOutboxMessage {
        /// What was wrong.
        reason: String,
    },

    /// A message was not confirmed by the broker, for the reason another message of its batch
    /// gave.
    #[error("the message was not confirmed: {reason}")]
    NotConfirmed {
        /// What went wrong with the batch.
        reason: String,
    },

    /// A unit's messages could not be published after its commit, even after retrying.
    #[error("{count} messages staged by a committed unit were not published: {reason}")]
    NotPublished {
        /// How many.
        count: usize,
        /// The last error.
        reason: String,
    },
}

impl BusError {
    #[cfg(feature = "amqp")]
    pub(crate) fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Amqp { operation, source }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn redis(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { operation, source }
    }
}
