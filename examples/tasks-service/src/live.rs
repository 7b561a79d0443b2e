//! Live updates: every connection to `/ws/tasks` joins its user's room (`user:<name>`), and
//! each of that user's changes is pushed there — from the HTTP handlers that change a task
//! (`task.changed`), from the bus handlers that handle its events (`task.notice`) and from
//! the scheduled summary (`tasks.summary`). Each push is staged in its unit of work and goes
//! out only once the unit committed.
//!
//! In one process the pushes stay in the process; with Redis they fan out over pub/sub, so
//! a worker's or the beat's pushes reach the clients of every server.

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use jararaca::http::ApiError;
use jararaca::ws::{WebSocketMessage, WebSocketMessageExt, WsUpgrade};
use jararaca::{WebSocketMessage, websocket_controller};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::Task;
use crate::auth::{AuthLayer, CurrentUser, user_room};

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum TaskChange {
    /// It was created.
    Created,
    /// It was replaced.
    Updated,
    /// It was marked done.
    Completed,
    /// It was deleted.
    Deleted,
}

/// Pushed to the owner's room by the HTTP handler that changed a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS, WebSocketMessage)]
#[websocket_message(id = "task.changed")]
pub struct TaskChanged {
    /// What happened.
    pub change: TaskChange,
    /// The task, as it is now (as it was, when deleted).
    pub task: Task,
}

impl TaskChanged {
    /// The push for `task`.
    pub fn of(task: &Task, change: TaskChange) -> Self {
        Self {
            change,
            task: task.clone(),
        }
    }
}

/// Pushed to the owner's room by the bus handler that handled a task's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS, WebSocketMessage)]
#[websocket_message(id = "task.notice")]
pub struct TaskNotice {
    /// The task.
    pub task_id: Uuid,
    /// Its title.
    pub title: String,
    /// The event handled: `task.created` or `task.completed`.
    pub event: String,
    /// Which process handled it.
    pub handled_by: String,
}

/// Pushed to each user's room by the scheduled summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS, WebSocketMessage)]
#[websocket_message(id = "tasks.summary")]
pub struct TasksSummary {
    /// The user's tasks not done.
    pub open: i64,
    /// The user's tasks done.
    pub done: i64,
    /// When the summary was made.
    pub at: DateTime<Utc>,
}

/// Stages `message` for `owner`'s room in the current unit of work. A live update that
/// cannot be staged is not worth failing the change for: it is logged instead.
pub(crate) async fn push<M: WebSocketMessage + Serialize + Send + Sync>(owner: &str, message: M) {
    if let Err(error) = message.send(&[user_room(owner)]).await {
        tracing::error!(%error, owner, message = M::MESSAGE_ID, "cannot push a live update");
    }
}

/// `TasksSocket`: the WebSocket endpoint of the tasks service.
#[derive(Debug)]
pub struct TasksSocket;

#[websocket_controller("/ws", messages(TaskChanged, TaskNotice, TasksSummary))]
impl TasksSocket {
    /// `GET /ws/tasks?access_token=…`: after [`AuthLayer`] accepted the token, joins the
    /// user's room; the client only listens.
    #[websocket("/tasks", layer = AuthLayer)]
    async fn tasks(user: CurrentUser, upgrade: WsUpgrade) -> Result<Response, ApiError> {
        let upgrade = upgrade
            .join(&[user.room()])
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(upgrade.into_response())
    }
}
