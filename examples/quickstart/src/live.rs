//! Live updates: clients connected to `/ws/tasks` get `task.updated` whenever a task
//! changes — from the HTTP handler that updates it and from the bus handler that handles its
//! creation. Each push is staged in its unit of work, so it goes out only once the change is
//! committed (and not at all when the unit fails).
//!
//! In one process the push stays in the process; with `WEBSOCKET_REDIS_URL` (or
//! `BACKEND_URL`) it fans out over Redis, so a worker's pushes reach the servers' clients.

use axum::response::{IntoResponse, Response};
use jararaca::http::ApiError;
use jararaca::ws::{WebSocketMessageExt, WsUpgrade};
use jararaca::{WebSocketMessage, websocket_controller};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::Task;

/// The room every `/ws/tasks` client is in.
pub const TASKS_ROOM: &str = "tasks";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum TaskChange {
    /// `PUT /tasks/{id}` replaced it.
    Updated,
    /// The worker handled its `task.created`.
    Handled,
}

/// Pushed to [`TASKS_ROOM`] when a task changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS, WebSocketMessage)]
#[websocket_message(id = "task.updated")]
pub struct TaskUpdated {
    /// The task's id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Whether it is done.
    pub done: bool,
    /// What changed.
    pub change: TaskChange,
}

impl TaskUpdated {
    /// The update for `task`.
    pub fn of(task: &Task, change: TaskChange) -> Self {
        Self {
            id: task.id,
            title: task.title.clone(),
            done: task.done,
            change,
        }
    }
}

/// Stages `update` for the tasks room in the current unit of work. A live update that
/// cannot be staged is not worth failing the change for: it is logged instead.
pub(crate) async fn push(update: TaskUpdated) {
    if let Err(error) = update.send(&[TASKS_ROOM]).await {
        tracing::error!(%error, task = %update.id, "cannot push task.updated");
    }
}

/// `TasksSocket`: the WebSocket endpoint of the tasks service.
#[derive(Debug)]
pub struct TasksSocket;

#[websocket_controller("/ws", messages(TaskUpdated))]
impl TasksSocket {
    /// `GET /ws/tasks`: joins the tasks room; the client only listens.
    #[websocket("/tasks")]
    async fn tasks(upgrade: WsUpgrade) -> Result<Response, ApiError> {
        let upgrade = upgrade
            .join(&[TASKS_ROOM])
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(upgrade.into_response())
    }
}
