//! Sends staged in a unit of work, and the ambient and extractor ways to reach the manager.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jararaca_di::UnitOfWork;

use crate::{WebSocketManager, WebSocketMessage, WsError, encode_frame};

/// The manager of the current unit of work's service (the reference's `use_ws_manager()`),
/// found in the unit's container.
pub fn use_ws_manager() -> Result<WebSocketManager, WsError> {
    let container = jararaca_di::use_container().map_err(|_| WsError::NoManager {
        where_: "in this task (it runs in no unit of work with a DI scope)",
    })?;
    container
        .get::<WebSocketManager>()
        .map(|m| (*m).clone())
        .map_err(|_| WsError::NoManager {
            where_: "in the unit's container",
        })
}

enum Staged {
    Send(Vec<Arc<str>>, Bytes),
    Broadcast(Bytes),
}

#[derive(Default)]
struct UnitStage {
    staged: Mutex<Option<Vec<Staged>>>,
}

/// The WebSocket sends of one unit of work: staged, sent in order once the unit committed,
/// dropped if it fails (the reference's `StagingWebSocketMessageSender`, without its bug of
/// sending for failed units too).
///
/// Get it ambiently ([`UnitSends::current`]), from a unit's extensions, or as an axum
/// extractor in a route.
#[derive(Clone)]
pub struct UnitSends {
    manager: WebSocketManager,
    unit: UnitOfWork,
}

impl fmt::Debug for UnitSends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitSends")
            .field("manager", &self.manager)
            .field("unit", &self.unit)
            .finish()
    }
}

impl UnitSends {
    /// Stages into `unit` with `manager`.
    pub fn new(manager: WebSocketManager, unit: UnitOfWork) -> Self {
        Self { manager, unit }
    }

    /// The current unit of work's sends.
    pub fn current() -> Result<Self, WsError> {
        let unit = jararaca_di::use_unit_of_work().map_err(|_| WsError::OutsideUnit)?;
        Ok(Self {
            manager: use_ws_manager()?,
            unit,
        })
    }

    /// The sends of the unit whose extensions these are.
    pub fn from_extensions(extensions: &http::Extensions) -> Result<Self, WsError> {
        let unit = extensions
            .get::<UnitOfWork>()
            .cloned()
            .ok_or(WsError::OutsideUnit)?;
        let manager = match extensions.get::<WebSocketManager>() {
            Some(manager) => manager.clone(),
            None => extensions
                .get::<jararaca_di::Scope>()
                .and_then(|scope| scope.container().get::<WebSocketManager>().ok())
                .map(|m| (*m).clone())
                .ok_or(WsError::NoManager {
                    where_: "in the unit's extensions or container",
                })?,
        };
        Ok(Self { manager, unit })
    }

    /// The manager, to send at once (bypassing the unit of work).
    pub fn manager(&self) -> &WebSocketManager {
        &self.manager
    }

    /// Stages `message` for the clients in `rooms`.
    pub fn send<R: AsRef<str>, M: WebSocketMessage>(
        &self,
        rooms: &[R],
        message: &M,
    ) -> Result<(), WsError> {
        let rooms = crate::room::rooms(rooms)?;
        let frame = encode_frame(message)?;
        self.stage(Staged::Send(rooms, frame))
    }

    /// Stages an encoded frame for the clients in `rooms`.
    pub fn send_raw<R: AsRef<str>>(&self, rooms: &[R], frame: Bytes) -> Result<(), WsError> {
        let rooms = crate::room::rooms(rooms)?;
        self.stage(Staged::Send(rooms, frame))
    }

    /// Stages `message` for every client.
    pub fn broadcast<M: WebSocketMessage>(&self, message: &M) -> Result<(), WsError> {
        self.stage(Staged::Broadcast(encode_frame(message)?))
    }

    fn stage(&self, staged: Staged) -> Result<(), WsError> {
        if self.unit.is_decided() {
            return Err(WsError::Unit(jararaca_di::UnitError::Decided {
                kind: self.unit.kind().as_str(),
            }));
        }
        let stage = self.unit.local(UnitStage::default);
        let mut slot = stage.staged.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(list) => list.push(staged),
            None => {
                *slot = Some(vec![staged]);
                drop(slot);
                // One action sends everything the unit staged, in order.
                let manager = self.manager.clone();
                let stage = Arc::clone(&stage);
                self.unit
                    .after_commit("websocket sends", move || flush(manager, stage))?;
            }
        }
        Ok(())
    }
}

async fn flush(
    manager: WebSocketManager,
    stage: Arc<UnitStage>,
) -> Result<(), jararaca_di::BoxError> {
    let staged = stage
        .staged
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let total = staged.len();
    let mut failed = 0;
    let mut last_error = None;
    for item in staged {
        let result = match item {
            Staged::Send(rooms, frame) => manager.send_frame(&rooms, frame).await,
            Staged::Broadcast(frame) => manager.broadcast_raw(frame).await,
        };
        if let Err(error) = result {
            failed += 1;
            last_error = Some(error);
        }
    }
    match last_error {
        None => Ok(()),
        Some(error) => Err(format!(
            "{failed} of the unit's {total} WebSocket sends reached no client: {error}"
        )
        .into()),
    }
}

#[derive(Debug)]
/// The rejection of the [`WebSocketManager`] and [`UnitSends`] extractors: a wiring
/// mistake, answered with a 500 and logged with what is missing.
pub struct MissingWebSocket(WsError);

impl From<WsError> for MissingWebSocket {
    fn from(error: WsError) -> Self {
        Self(error)
    }
}

impl axum::response::IntoResponse for MissingWebSocket {
    fn into_response(self) -> axum::response::Response {
        tracing::error!(error = %self.0, "cannot extract the WebSocket manager");
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"detail":"Internal Server Error"}"#,
        )
            .into_response()
    }
}

pub(crate) fn manager_from_extensions(
    extensions: &http::Extensions,
) -> Result<WebSocketManager, WsError> {
    match extensions.get::<WebSocketManager>() {
        Some(manager) => Ok(manager.clone()),
        None => extensions
            .get::<jararaca_di::Scope>()
            .and_then(|scope| scope.container().get::<WebSocketManager>().ok())
            .map(|m| (*m).clone())
            .ok_or(WsError::NoManager {
                where_: "in the request's extensions or container",
            }),
    }
}

/// The manager as an axum extractor (from the request's extensions or its DI scope).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for WebSocketManager {
    type Rejection = MissingWebSocket;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        manager_from_extensions(&parts.extensions).map_err(MissingWebSocket)
    }
}

/// The unit's staged sends as an axum extractor.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for UnitSends {
    type Rejection = MissingWebSocket;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions).map_err(MissingWebSocket)
    }
}

impl jararaca_api::RouteInput for WebSocketManager {}
impl jararaca_api::RouteInput for UnitSends {}
