//! A tasks service in the spirit of the reference's quick start: a `TasksController` with
//! create / list (paginated, sorted, filtered) / get / update / delete written with the
//! `#[controller]` sugar, typed configuration from the environment, providers, a transaction
//! per request, and an interceptor layer.
//!
//! Creating a task publishes `task.created` once the task is committed, and the
//! `TasksWorker` handler consumes it: in the same process on the in-memory broker when no
//! `BROKER_URL` is set (`server` runs the handlers too), or through RabbitMQ with
//! `BROKER_URL` and `BACKEND_URL` (`server` publishes, `worker` consumes). The interceptors —
//! `AuditLayer` and the database transaction — are stacked once and wrap both the routes and
//! the handler.
//!
//! With `NOTIFIER_URL` set, the handler also tells a second service, the `notifier` example,
//! about each new task, through a REST client declared with `#[rest_client]` (timeout and
//! retry stacked as layers).
//!
//! It keeps its tasks in SQLite by default (in memory; `DATABASE_URL=sqlite://tasks.db?mode=rwc`
//! keeps them in a file) and in PostgreSQL when `DATABASE_URL` points there. The schema is
//! created by the sqlx migrations in `migrations/` at startup.
//!
//! Clients of `/ws/tasks` get `task.updated` when a task is replaced (from the HTTP handler)
//! and when the worker has handled its creation (from the bus handler), each once its unit
//! of work committed.

mod audit;
mod events;
mod jobs;
mod live;
mod notify;
mod tasks;

use std::sync::Arc;

use jararaca::bus::Bus;
use jararaca::{BoxError, Microservice};
use jararaca_query::outbox::SqlOutbox;
use jararaca_query::{Db, TransactionLayer};
use serde::Deserialize;
use sqlx::migrate::Migrator;
use tower::ServiceBuilder;

pub use audit::{AuditLayer, UnitsSeen};
pub use events::{CreatedTasks, TaskCreated};
pub use jobs::KEEP_DONE_FOR_HOURS;
pub use live::{TASKS_ROOM, TaskChange, TaskUpdated, TasksSocket};
pub use notify::{Notification, Notifier, NotifierClient, TaskNotifier};
pub use tasks::{CreateTask, Task, TasksController, UpdateTask};

/// The service's configuration, read from the environment at startup.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct AppConfig {
    /// The most tasks the service keeps (`MAX_TASKS`, default 1000).
    #[serde(default = "default_max_tasks")]
    pub max_tasks: usize,
    /// Where tasks are kept (`DATABASE_URL`, default an in-memory SQLite database).
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// The notifier told about each new task (`NOTIFIER_URL`, e.g. `http://127.0.0.1:8001`;
    /// none by default).
    pub notifier_url: Option<String>,
    /// How long one call to the notifier may take, in milliseconds (`NOTIFIER_TIMEOUT_MS`,
    /// default 2000).
    #[serde(default = "default_notifier_timeout_ms")]
    pub notifier_timeout_ms: u64,
}

fn default_notifier_timeout_ms() -> u64 {
    2000
}

fn default_max_tasks() -> usize {
    1000
}

fn default_database_url() -> String {
    "sqlite::memory:".to_owned()
}

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Connects to the configured database and brings its schema up to date.
async fn database(config: Arc<AppConfig>) -> Result<Db, BoxError> {
    let db = Db::connect(&config.database_url).await?;
    if let Some(pool) = db.as_postgres() {
        POSTGRES_MIGRATIONS.run(pool).await?;
    } else if let Some(pool) = db.as_sqlite() {
        SQLITE_MIGRATIONS.run(pool).await?;
    }
    // The outbox table is in the migrations above, with the rest of the schema; this finds it
    // there (creating it, were it missing) and tells the transaction layer that it exists.
    jararaca_query::outbox::migrate(&db).await?;
    Ok(db)
}

/// The tasks service.
pub fn service() -> Microservice {
    Microservice::new("tasks")
        .version(env!("CARGO_PKG_VERSION"))
        .description("A tasks service: the Jararaca quick start")
        .config::<AppConfig>()
        .providers(|c| {
            c.factory(database)
                .factory(notify::task_notifier)
                .value(UnitsSeen::default())
                .value(CreatedTasks::default())
                .injectable::<TasksController>()
        })
        .controller(TasksController::controller())
        .controller(events::worker())
        // `gen-tsi FILE_PATH`: the TypeScript client (the tests keep `client/tasks.ts`).
        .with(jararaca::tsgen::TypeScript::new())
        // Every hour, purge the tasks done more than a day ago.
        .controller(jobs::jobs())
        // `/ws/tasks`, where `task.updated` is pushed when a task changes.
        .controller(TasksSocket::websocket_controller())
        // One stack, given once, around every route and every message handler.
        .interceptor_with(|c| {
            Ok(ServiceBuilder::new()
                .layer(AuditLayer)
                .layer(TransactionLayer::new((*c.get::<Db>()?).clone())))
        })
        .readiness_check(
            "database",
            |c| async move { Ok(c.get::<Db>()?.ping().await?) },
        )
        // Publishes at once what a previous run committed but had not published yet.
        .on_startup("outbox", |c| async move {
            let db = c.get::<Db>()?;
            c.get::<Bus>()?.attach_outbox(SqlOutbox::source(&db));
            Ok(())
        })
        .on_shutdown("database", |c| async move {
            c.get::<Db>()?.close().await;
            Ok(())
        })
}
