//! What happens after a task is created or completed: the `task.created` and
//! `task.completed` events, published once the change committed, and the `TasksWorker`
//! handlers that consume them (in the `worker` processes, or in `server` on the embedded
//! defaults).
//!
//! Each handler tells the notifier (when `NOTIFIER_URL` is set) and pushes a
//! [`TaskNotice`](crate::TaskNotice) to the owner's WebSocket room, in its unit of work: the
//! notice goes out only if the handling succeeded. Delivery is at least once.

use jararaca::BoxError;
use jararaca::Message;
use jararaca::bus::{Delivery, Message as _, MessageController};
use jararaca::inject;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::live::{self, TaskNotice};
use crate::{Task, TaskNotifier};

/// Published when a task is created, once its row is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
#[message(topic = "task.created", kind = "event")]
pub struct TaskCreated {
    /// The new task's id.
    pub id: Uuid,
    /// Its owner.
    pub owner: String,
    /// Its title.
    pub title: String,
}

impl TaskCreated {
    /// The event for `task`.
    pub fn of(task: &Task) -> Self {
        Self {
            id: task.id,
            owner: task.owner.clone(),
            title: task.title.clone(),
        }
    }
}

/// Published when a task is marked done, once the change is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
#[message(topic = "task.completed", kind = "event")]
pub struct TaskCompleted {
    /// The task's id.
    pub id: Uuid,
    /// Its owner.
    pub owner: String,
    /// Its title.
    pub title: String,
}

impl TaskCompleted {
    /// The event for `task`.
    pub fn of(task: &Task) -> Self {
        Self {
            id: task.id,
            owner: task.owner.clone(),
            title: task.title.clone(),
        }
    }
}

/// Who handled a message: this process, by its id (the split deployment runs several).
fn handled_by() -> String {
    format!("worker pid {}", std::process::id())
}

/// What both handlers do with a task event: tell the notifier (one that cannot be reached
/// fails the unit, so the message is delivered again), then push a notice to the owner's room.
async fn handle(
    id: Uuid,
    owner: &str,
    title: &str,
    topic: &str,
    verb: &str,
) -> Result<(), BoxError> {
    inject::<TaskNotifier>()
        .await?
        .notify(
            &format!("task-{id}-{verb}"),
            &format!("{owner} {verb} \"{title}\""),
        )
        .await?;
    live::push(
        owner,
        TaskNotice {
            task_id: id,
            title: title.to_owned(),
            event: topic.to_owned(),
            handled_by: handled_by(),
        },
    )
    .await;
    tracing::info!(task = %id, owner = %owner, "handled {topic}");
    Ok(())
}

async fn on_task_created(task: TaskCreated, _delivery: Delivery) -> Result<(), BoxError> {
    handle(
        task.id,
        &task.owner,
        &task.title,
        TaskCreated::TOPIC,
        "created",
    )
    .await
}

async fn on_task_completed(task: TaskCompleted, _delivery: Delivery) -> Result<(), BoxError> {
    handle(
        task.id,
        &task.owner,
        &task.title,
        TaskCompleted::TOPIC,
        "completed",
    )
    .await
}

/// `TasksWorker`: the message handlers of the tasks service.
pub(crate) fn worker() -> MessageController {
    MessageController::new("TasksWorker")
        .handler::<TaskCreated, _, _>("on_task_created", on_task_created)
        .handler::<TaskCompleted, _, _>("on_task_completed", on_task_completed)
}
