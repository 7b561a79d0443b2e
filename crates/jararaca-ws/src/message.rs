//! [`WebSocketMessage`]: a typed message pushed to clients, and its frame.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;

use crate::{UnitSends, WsError};

/// A message a server pushes to WebSocket clients: an id clients dispatch on and a serde
/// body. On the wire (in Redis and in the frame) it is the reference's wrapper,
/// `{"MESSAGE_ID":"<id>","message":<body>}`.
///
/// Derive it (`#[derive(WebSocketMessage)]` with `#[websocket_message(id = "…")]`) or
/// implement it by hand:
///
/// ```
/// use jararaca_ws::{WebSocketMessage, encode_frame};
///
/// #[derive(serde::Serialize)]
/// struct TaskUpdated {
///     task_id: u32,
///     done: bool,
/// }
///
/// impl WebSocketMessage for TaskUpdated {
///     const MESSAGE_ID: &'static str = "task.updated";
/// }
///
/// let frame = encode_frame(&TaskUpdated { task_id: 7, done: true }).unwrap();
/// assert_eq!(&frame[..], br#"{"MESSAGE_ID":"task.updated","message":{"task_id":7,"done":true}}"#);
/// ```
pub trait WebSocketMessage: Serialize + Send + Sync + 'static {
    /// The id clients dispatch on (`MESSAGE_ID` on the wire).
    const MESSAGE_ID: &'static str;
}

#[derive(Serialize)]
struct Wrapper<'a, M> {
    #[serde(rename = "MESSAGE_ID")]
    id: &'static str,
    message: &'a M,
}

/// The frame clients receive for `message`: compact JSON
/// `{"MESSAGE_ID":"<id>","message":<body>}`, as Python jararaca's `WebSocketMessageWrapper`
/// serializes it.
pub fn encode_frame<M: WebSocketMessage>(message: &M) -> Result<Bytes, WsError> {
    serde_json::to_vec(&Wrapper {
        id: M::MESSAGE_ID,
        message,
    })
    .map(Bytes::from)
    .map_err(|source| WsError::Encode {
        id: M::MESSAGE_ID,
        source,
    })
}

/// Sending a message from the current unit of work, in the seed's style
/// (`TaskUpdated { … }.send(&["tasks"]).await?`).
///
/// The send is staged: it goes out once the unit committed and is dropped if the unit
/// fails. Outside a unit of work it fails with [`WsError::OutsideUnit`]; use
/// [`WebSocketManager::send`](crate::WebSocketManager::send) there.
pub trait WebSocketMessageExt: WebSocketMessage + Sized {
    /// Stages this message for the clients in `rooms`.
    fn send<R: AsRef<str>>(&self, rooms: &[R]) -> impl Future<Output = Result<(), WsError>> + Send {
        let staged = UnitSends::current().and_then(|sends| sends.send(rooms, self));
        std::future::ready(staged)
    }

    /// Stages this message for every connected client.
    fn broadcast(&self) -> impl Future<Output = Result<(), WsError>> + Send {
        let staged = UnitSends::current().and_then(|sends| sends.broadcast(self));
        std::future::ready(staged)
    }
}

impl<M: WebSocketMessage> WebSocketMessageExt for M {}
