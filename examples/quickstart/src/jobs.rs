//! The tasks service's scheduled action: every hour, purge the tasks done more than a day
//! ago.
//!
//! It runs as a unit of work of its own, in the same interceptors as the routes and the
//! handler (so in its own database transaction): the beat dispatches it (`beat`, or `server`
//! on the embedded defaults) and a worker runs it.

use chrono::{Duration, Utc};
use jararaca::cron::{ScheduledController, Tick};
use jararaca::{BoxError, Envelope, scheduled};
use jararaca_query::{Session, Sql};

/// How long a done task is kept.
pub const KEEP_DONE_FOR_HOURS: i64 = 24;

/// Deletes the tasks done and last updated more than [`KEEP_DONE_FOR_HOURS`] ago.
#[scheduled("0 * * * *", name = "purge_done_tasks", timeout = 60)]
async fn purge_done_tasks(tick: Tick) -> Result<(), BoxError> {
    let session = Session::from_extensions(tick.extensions())?;
    let cutoff = Utc::now() - Duration::hours(KEEP_DONE_FOR_HOURS);
    let mut delete = Sql::new();
    delete
        .push("DELETE FROM tasks WHERE done = ")
        .bind(true)
        .push(" AND updated_at < ")
        .bind(cutoff);
    let purged = session.execute(&delete).await?;
    tracing::info!(
        purged,
        tick = tick.data().timestamp,
        "purged the tasks done more than a day ago"
    );
    Ok(())
}

/// `TasksJobs`: the scheduled actions of the tasks service.
pub(crate) fn jobs() -> ScheduledController {
    ScheduledController::new("TasksJobs").action("purge_done_tasks", purge_done_tasks())
}
