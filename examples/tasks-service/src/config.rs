//! Configuration: the typed `AppConfig` read from the environment at startup (the seed's
//! `AppConfig` with `DATABASE_URL`, `REDIS_URL` and `AMQP_URL`), and the [`Backends`] the
//! service's capabilities are assembled on.

use std::path::PathBuf;

use serde::Deserialize;

/// The service's configuration, read from the environment when the service starts; every
/// missing or invalid variable is reported at once. Every variable has an embedded default,
/// so the service runs with none set.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct AppConfig {
    /// Where tasks are kept (`DATABASE_URL`): an in-memory SQLite database by default,
    /// `sqlite://tasks.db?mode=rwc` for a file, `postgres://…` for PostgreSQL.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Redis (`REDIS_URL`): the revoked-token list, delayed messages and retries, the beat's
    /// lock and WebSocket fan-out between processes. None by default: all in process.
    pub redis_url: Option<String>,
    /// RabbitMQ (`AMQP_URL`, `amqp://user:pass@host:5672/vhost?exchange=X`). None by
    /// default: messages stay in the process, handled beside the routes.
    pub amqp_url: Option<String>,
    /// The HMAC key tokens are signed with (`JWT_SECRET`). The default is for local runs
    /// only: every deployment must set its own.
    #[serde(default = "default_jwt_secret")]
    pub jwt_secret: String,
    /// How long an access token is valid, in seconds (`ACCESS_TOKEN_TTL_SECONDS`, 900).
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_seconds: u64,
    /// How long a refresh token is valid, in seconds (`REFRESH_TOKEN_TTL_SECONDS`, 7 days).
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_seconds: u64,
    /// The users who may log in, `name:password` pairs separated by commas (`DEMO_USERS`,
    /// `alice:alice-password,bob:bob-password` by default).
    #[serde(default = "default_demo_users")]
    pub demo_users: Vec<String>,
    /// What the service's own Redis keys start with (`REDIS_KEY_PREFIX`, `tasks:`).
    #[serde(default = "default_key_prefix")]
    pub redis_key_prefix: String,
    /// The notifier told about each new and completed task (`NOTIFIER_URL`); none by
    /// default.
    pub notifier_url: Option<String>,
    /// How long one call to the notifier may take, in milliseconds (`NOTIFIER_TIMEOUT_MS`,
    /// 2000).
    #[serde(default = "default_notifier_timeout_ms")]
    pub notifier_timeout_ms: u64,
}

fn default_database_url() -> String {
    "sqlite::memory:".to_owned()
}

fn default_jwt_secret() -> String {
    "tasks-service-local-secret-change-me".to_owned()
}

fn default_access_ttl() -> u64 {
    15 * 60
}

fn default_refresh_ttl() -> u64 {
    7 * 24 * 60 * 60
}

fn default_demo_users() -> Vec<String> {
    vec![
        "alice:alice-password".to_owned(),
        "bob:bob-password".to_owned(),
    ]
}

fn default_key_prefix() -> String {
    "tasks:".to_owned()
}

fn default_notifier_timeout_ms() -> u64 {
    2000
}

/// What the service's capabilities run on, chosen when the service is assembled (before its
/// configuration is read, since they decide how the capabilities are built): the message
/// broker and Redis — the same `AMQP_URL` and `REDIS_URL` that [`AppConfig`] reads — and the
/// web front end's files.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// RabbitMQ; `None` keeps messages in the process.
    pub amqp_url: Option<String>,
    /// Redis; `None` keeps delayed messages, the beat's lock and WebSocket sends in the
    /// process.
    pub redis_url: Option<String>,
    /// The prefix of the Redis pub/sub channels WebSocket sends fan out on
    /// (`WEBSOCKET_CHANNEL_PREFIX`; the reference's `jararaca:websocket` by default). Pub/sub
    /// channels are shared by every Redis database, so deployments sharing one Redis keep
    /// apart by this prefix.
    pub websocket_channel_prefix: Option<String>,
    /// The built web front end served at `/` (`WEB_DIST`, default `web/dist` of this
    /// crate), when the directory exists.
    pub web_dist: Option<PathBuf>,
}

impl Deployment {
    /// Everything in the process, and no front end: the embedded defaults.
    pub fn embedded() -> Self {
        Self::default()
    }

    /// From `AMQP_URL`, `REDIS_URL`, `WEBSOCKET_CHANNEL_PREFIX` and `WEB_DIST`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            amqp_url: var("AMQP_URL"),
            redis_url: var("REDIS_URL"),
            websocket_channel_prefix: var("WEBSOCKET_CHANNEL_PREFIX"),
            web_dist: Some(var("WEB_DIST").map_or_else(default_web_dist, PathBuf::from)),
        }
    }
}

/// `web/dist` beside this crate's manifest, where `scripts/build-web.sh` puts the front end.
pub fn default_web_dist() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist"))
}
