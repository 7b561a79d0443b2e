//! The seed's quick start, whole, in Rust: a tasks service where each user logs in for a
//! JWT and keeps their own tasks.
//!
//! * Providers: the typed [`AppConfig`] (`DATABASE_URL`, `REDIS_URL`, `AMQP_URL`, …) read at
//!   startup, the [`AuthConfig`] value made from it, a Redis client, and the
//!   [`TokenBlackListService`] trait bound to its in-memory implementation — or to Redis
//!   when `REDIS_URL` is set, so a logout holds on every server.
//! * [`AuthController`] (`/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/me`) and
//!   [`AuthLayer`], the interceptor that protects [`TasksController`] and the WebSocket
//!   upgrade (401 without a token or with a revoked one).
//! * [`TasksController`]: create, read, replace, complete, delete and a paginated, sorted,
//!   filtered search, each user seeing only their own tasks.
//! * `TasksWorker`, a message controller: handlers for `task.created` and `task.completed`
//!   that tell the notifier (when `NOTIFIER_URL` is set) and push a `task.notice`; and
//!   `TasksJobs`, a scheduled action that pushes each user a `tasks.summary`.
//! * `/ws/tasks`, where each user's connections share a room that the HTTP handlers, the bus
//!   handlers and the scheduled action push to, each push going out once its unit of work
//!   committed.
//! * One interceptor stack, given once, around every route, message handler, scheduled tick
//!   and WebSocket upgrade: the database transaction. The configuration is a provider read
//!   at startup, and the publisher and the WebSocket sender are in every unit of work through
//!   their capabilities: the seed's four interceptors.
//! * Its TypeScript client, written by `cargo test` (`client/tasks.ts`), and a web front end
//!   (`web/`) built on it and served at `/`.
//!
//! With no variables set it runs whole in one process on the embedded defaults (SQLite in
//! memory, the in-process broker, in-memory stores): `tasks-service server`. With
//! PostgreSQL, RabbitMQ and Redis it splits into `server`, `worker` and `beat` processes.
//!
//! ```
//! use axum::body::Body;
//! use jararaca::prelude::*;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let app = tasks_service::service_on(tasks_service::Deployment::embedded())
//!     .build()
//!     .await
//!     .unwrap();
//! // Without a token the tasks are out of reach…
//! let refused = app
//!     .router()
//!     .oneshot(http::Request::get("/tasks").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(refused.status(), 401);
//! // …and a demo user logs in for one.
//! let login = http::Request::post("/auth/login")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"username":"alice","password":"alice-password"}"#))
//!     .unwrap();
//! assert_eq!(app.router().oneshot(login).await.unwrap().status(), 200);
//! # });
//! ```

mod auth;
mod config;
mod events;
mod jobs;
mod live;
mod notify;
mod tasks;
mod web;

use std::sync::Arc;

use jararaca::bus::{Bus, BusSettings};
use jararaca::di::{Key, Provider};
use jararaca::ws::{RedisChannels, WebSocketSettings};
use jararaca::{BoxError, Microservice};
use jararaca_query::outbox::SqlOutbox;
use jararaca_query::{Db, TransactionLayer};
use sqlx::migrate::Migrator;

pub use auth::{
    AuthConfig, AuthController, AuthError, AuthLayer, Authenticator, CurrentUser,
    InMemoryTokenBlackList, LoginRequest, LogoutRequest, Me, RedisTokenBlackList, RefreshRequest,
    TokenBlackListService, TokenPair, user_room,
};
pub use config::{AppConfig, Deployment, default_web_dist};
pub use events::{TaskCompleted, TaskCreated};
pub use live::{TaskChange, TaskChanged, TaskNotice, TasksSocket, TasksSummary};
pub use notify::{Notification, Notifier, NotifierClient, TaskNotifier};
pub use tasks::{CreateTask, Task, TasksController, UpdateTask};

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
    jararaca_query::outbox::migrate(&db).await?;
    Ok(db)
}

/// The Redis client of the service (`REDIS_URL`), when it has one.
#[derive(Clone)]
pub struct RedisClient(Option<redis::aio::ConnectionManager>);

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisClient")
            .field(&self.0.as_ref().map(|_| "connected"))
            .finish()
    }
}

impl RedisClient {
    /// The connection, reconnecting by itself; `None` when `REDIS_URL` is not set.
    pub fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.0.clone()
    }
}

async fn redis_client(config: Arc<AppConfig>) -> Result<RedisClient, BoxError> {
    let Some(url) = &config.redis_url else {
        return Ok(RedisClient(None));
    };
    let client = redis::Client::open(url.as_str())?;
    let connection = client
        .get_connection_manager()
        .await
        .map_err(|e| format!("cannot connect to REDIS_URL: {e}"))?;
    Ok(RedisClient(Some(connection)))
}

async fn auth_config(config: Arc<AppConfig>) -> Result<AuthConfig, BoxError> {
    AuthConfig::from_config(&config)
}

/// `TokenBlackListService` bound to Redis when the service has a Redis client, else to the
/// in-memory implementation.
fn black_list() -> Provider {
    Provider::from_fn_shared(
        [Key::of::<AppConfig>(), Key::of::<RedisClient>()],
        |r| async move {
            let config = r.get::<AppConfig>().await?;
            let redis = r.get::<RedisClient>().await?;
            let list: Arc<dyn TokenBlackListService> = match redis.connection() {
                Some(connection) => Arc::new(RedisTokenBlackList::new(
                    connection,
                    config.redis_key_prefix.clone(),
                )),
                None => Arc::new(InMemoryTokenBlackList::default()),
            };
            Ok::<_, BoxError>(list)
        },
    )
}

/// The tasks service on the broker, Redis and front end the environment names
/// ([`Deployment::from_env`]).
pub fn service() -> Microservice {
    service_on(Deployment::from_env())
}

/// The tasks service on `deployment`.
pub fn service_on(deployment: Deployment) -> Microservice {
    let websocket = match &deployment.redis_url {
        Some(url) => {
            let settings = WebSocketSettings::redis(url.clone());
            match &deployment.websocket_channel_prefix {
                Some(prefix) => settings.channels(RedisChannels::prefixed(prefix)),
                None => settings,
            }
        }
        None => WebSocketSettings::in_process(),
    };
    let mut service = Microservice::new("tasks")
        .version(env!("CARGO_PKG_VERSION"))
        .description("Tasks per user behind JWT auth: the seed's quick start")
        // The seed's AppConfigurationInterceptor: read and checked once, at startup.
        .config::<AppConfig>()
        .providers(|c| {
            c.factory(database)
                .factory(redis_client)
                .factory(auth_config)
                .provide(black_list())
                .injectable::<Authenticator>()
                .injectable::<AuthController>()
                .factory(notify::task_notifier)
        })
        .with(BusSettings {
            broker_url: deployment.amqp_url.clone(),
            backend_url: deployment.redis_url.clone(),
        })
        .with(websocket)
        .controller(AuthController::controller())
        .controller(TasksController::controller())
        .controller(TasksSocket::websocket_controller())
        .controller(events::worker())
        .controller(jobs::jobs())
        // `gen-tsi FILE_PATH`: the TypeScript client (the tests keep `client/tasks.ts`).
        .with(jararaca::tsgen::TypeScript::new())
        // One stack, given once, around every route, handler, tick and upgrade.
        .interceptor_with(|c| Ok(TransactionLayer::new((*c.get::<Db>()?).clone())))
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
        });
    if let Some(front_end) = deployment.web_dist.as_deref().and_then(web::front_end) {
        service = service.with(front_end);
    }
    service
}
