//! What happens after a task is created: the `task.created` event and its handler.
//!
//! The handler records each task it handled in the `handled_tasks` table, in its unit of
//! work's transaction: the row is committed only if the handling succeeded, and before the
//! message is acknowledged, and tells the notifier (when `NOTIFIER_URL` is set) in the same
//! unit. Delivery is at least once, so a task can have more than one row.

use std::sync::Mutex;

use chrono::Utc;
use jararaca::bus::{Delivery, MessageController};
use jararaca::{BoxError, Envelope, Message, inject};
use jararaca_query::{Session, Sql};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::TaskNotifier;

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

async fn on_task_created(task: TaskCreated, delivery: Delivery) -> Result<(), BoxError> {
    let session = Session::from_extensions(delivery.extensions())?;
    let mut insert = Sql::new();
    insert
        .push("INSERT INTO handled_tasks (task_id, handled_at) VALUES (")
        .bind(task.id)
        .push(", ")
        .bind(Utc::now())
        .push(")");
    session.execute(&insert).await?;
    // A notifier that cannot be reached fails the unit: the row above is rolled back and the
    // message delivered again.
    inject::<TaskNotifier>().await?.task_created(&task).await?;
    crate::live::push(crate::TaskUpdated {
        id: task.id,
        title: task.title.clone(),
        done: false,
        change: crate::TaskChange::Handled,
    })
    .await;
    inject::<CreatedTasks>().await?.record(task.id);
    tracing::info!(task = %task.id, title = %task.title, "task created");
    Ok(())
}

/// `TasksWorker`: the handlers of the tasks service.
pub(crate) fn worker() -> MessageController {
    MessageController::new("TasksWorker")
        .handler::<TaskCreated, _, _>("on_task_created", on_task_created)
}
