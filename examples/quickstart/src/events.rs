//! What happens after a task is created: the `task.created` event and its handler.

use std::sync::Mutex;

use jararaca::bus::{Delivery, MessageController};
use jararaca::{BoxError, Message, inject};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

/// Published when a task is created, once its row is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
#[message(topic = "task.created", kind = "event")]
pub struct TaskCreated {
    /// The new task's id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
}

/// The tasks whose creation the worker has seen, in order.
#[derive(Debug, Default)]
pub struct CreatedTasks {
    seen: Mutex<Vec<Uuid>>,
    changed: Notify,
}

impl CreatedTasks {
    /// The ids seen so far.
    pub fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `id` has been seen.
    pub async fn wait_for(&self, id: Uuid) {
        loop {
            let changed = self.changed.notified();
            if self.seen().contains(&id) {
                return;
            }
            changed.await;
        }
    }

    fn record(&self, id: Uuid) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(id);
        }
        self.changed.notify_waiters();
    }
}

async fn on_task_created(task: TaskCreated, _delivery: Delivery) -> Result<(), BoxError> {
    inject::<CreatedTasks>().await?.record(task.id);
    tracing::info!(task = %task.id, title = %task.title, "task created");
    Ok(())
}

/// `TasksWorker`: the handlers of the tasks service.
pub(crate) fn worker() -> MessageController {
    MessageController::new("TasksWorker")
        .handler::<TaskCreated, _, _>("on_task_created", on_task_created)
}
