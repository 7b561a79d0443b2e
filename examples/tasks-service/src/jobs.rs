//! The scheduled action: every 15 seconds, each user with tasks is pushed a summary of
//! them (`tasks.summary`) to their WebSocket room.
//!
//! It runs as a unit of work of its own, in the same interceptors as the routes and the
//! handlers (so in its own database transaction, and its pushes go out once it succeeded):
//! the beat dispatches it (`beat`, or `server` on the embedded defaults) and a worker runs
//! it.

use chrono::Utc;
use jararaca::cron::{ScheduledController, Tick};
use jararaca::{BoxError, Envelope, scheduled};
use jararaca_query::{Session, Sql};

use crate::live::{self, TasksSummary};

/// One user's counts.
#[derive(Debug, sqlx::FromRow)]
struct OwnerCounts {
    owner: String,
    open: i64,
    done: i64,
}

/// Pushes each user their open and done counts. Seconds come last, as in the reference's
/// cron syntax: `*/15` seconds of every minute.
#[scheduled("* * * * * */15", name = "tasks_summary", timeout = 30)]
async fn tasks_summary(tick: Tick) -> Result<(), BoxError> {
    let session = Session::from_extensions(tick.extensions())?;
    let mut counts = Sql::new();
    counts.push(
        "SELECT owner, \
         SUM(CASE WHEN done THEN 0 ELSE 1 END) AS open, \
         SUM(CASE WHEN done THEN 1 ELSE 0 END) AS done \
         FROM tasks GROUP BY owner ORDER BY owner",
    );
    let users: Vec<OwnerCounts> = session.fetch_all(&counts).await?;
    let at = Utc::now();
    for user in &users {
        live::push(
            &user.owner,
            TasksSummary {
                open: user.open,
                done: user.done,
                at,
            },
        )
        .await;
    }
    tracing::info!(
        users = users.len(),
        tick = tick.data().timestamp,
        "pushed the tasks summary"
    );
    Ok(())
}

/// `TasksJobs`: the scheduled actions of the tasks service.
pub(crate) fn jobs() -> ScheduledController {
    ScheduledController::new("TasksJobs").action("tasks_summary", tasks_summary())
}
