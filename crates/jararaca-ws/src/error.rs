//! [`WsError`]: what can go wrong sending, joining and connecting.

/// Errors of the WebSocket capability.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// A room name the wire format cannot carry.
    #[error(
        "invalid room name {room:?}: {reason} (rooms travel comma-separated before a NUL byte, \
         as Python jararaca sends them)"
    )]
    InvalidRoom {
        /// The name given.
        room: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A message could not be encoded as JSON.
    #[error("cannot encode the WebSocket message `{id}` as JSON: {source}")]
    Encode {
        /// Its `MESSAGE_ID`.
        id: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// There is no WebSocket manager where one was looked for.
    #[error(
        "no WebSocket manager {where_}: give the service a WebSocketController or \
         WebSocketSettings (which provide it), or put a WebSocketManager in the container"
    )]
    NoManager {
        /// Where it was looked for.
        where_: &'static str,
    },
    /// Staging a send needs a unit of work and there is none.
    #[error(
        "no unit of work in this task: stage sends while a handler wrapped by the \
         UnitOfWorkLayer runs, or send at once with WebSocketManager::send"
    )]
    OutsideUnit,
    /// The unit of work refused the send (it is already decided).
    #[error(transparent)]
    Unit(#[from] jararaca_di::UnitError),
    /// The fan-out backend could not publish: the message reached no client.
    #[error("publishing to {channel} failed, so the message reached no client: {reason}")]
    Publish {
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },
    /// The backend could not be set up (an invalid URL, an unreachable Redis).
    #[error("the WebSocket fan-out backend cannot start: {0}")]
    Backend(String),
    /// The connection is closed.
    #[error("the WebSocket connection is closed")]
    Closed,
}
