//! Test databases (PostgreSQL in its own schema, SQLite in memory or in a temporary file) and
//! the entity the tests use.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::FutureExt;
use jararaca_query::{Column, ColumnType, Db, Entity};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub notes: Option<String>,
    pub priority: i64,
    pub score: f64,
    pub done: bool,
    pub due: Option<NaiveDate>,
    #[sqlx(json)]
    pub meta: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Entity for Task {
    const TABLE: &'static str = "tasks";
    const COLUMNS: &'static [Column] = &[
        Column::new("id", ColumnType::Uuid),
        Column::new("title", ColumnType::Text),
        Column::new("notes", ColumnType::Text),
        Column::new("priority", ColumnType::Int),
        Column::new("score", ColumnType::Float),
        Column::new("done", ColumnType::Bool),
        Column::new("due", ColumnType::Date),
        Column::new("meta", ColumnType::Json),
        Column::new("created_at", ColumnType::DateTime),
        Column::new("updated_at", ColumnType::DateTime),
    ];
    const TIMESTAMPS: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
}

impl Task {
    pub fn new(title: &str, priority: i64) -> Self {
        Self {
            id: Uuid::new_v4(),
            title: title.to_string(),
            notes: None,
            priority,
            score: priority as f64 / 2.0,
            done: false,
            due: None,
            meta: serde_json::json!({"tags": [title]}),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }
}

const PG_SCHEMA: &str = "
CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    title text NOT NULL,
    notes text,
    priority bigint NOT NULL,
    score double precision NOT NULL,
    done boolean NOT NULL,
    due date,
    meta jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE victims (id integer);
INSERT INTO victims VALUES (1);
CREATE TABLE parents (id uuid PRIMARY KEY);
CREATE TABLE children (
    id uuid PRIMARY KEY,
    parent_id uuid NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
);
";

const SQLITE_SCHEMA: &str = "
CREATE TABLE tasks (
    id BLOB PRIMARY KEY,
    title TEXT NOT NULL,
    notes TEXT,
    priority INTEGER NOT NULL,
    score REAL NOT NULL,
    done BOOLEAN NOT NULL,
    due DATE,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE victims (id INTEGER);
INSERT INTO victims VALUES (1);
CREATE TABLE parents (id BLOB PRIMARY KEY);
CREATE TABLE children (
    id BLOB PRIMARY KEY,
    parent_id BLOB NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
);
";

/// Runs `test` on a fresh in-memory SQLite database.
pub async fn with_sqlite_memory<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = Db::sqlite_memory().await.expect("open in-memory SQLite");
    db.execute_script(SQLITE_SCHEMA)
        .await
        .expect("create the schema");
    test(db.clone()).await;
    db.close().await;
}

/// Runs `test` on a fresh SQLite file (several connections, so transactions are isolated),
/// removed afterwards.
pub async fn with_sqlite_file<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let path = std::env::temp_dir().join(format!("{}.db", jararaca_testing::unique_name("jq")));
    let url = format!("sqlite://{}", path.display());
    let db = Db::connect(&url).await.expect("open the SQLite file");
    db.execute_script(SQLITE_SCHEMA)
        .await
        .expect("create the schema");
    let outcome = AssertUnwindSafe(test(db.clone())).catch_unwind().await;
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `test` on PostgreSQL in a schema of its own, dropped afterwards (also when the test
/// fails). Skips (or fails, with `JARARACA_REQUIRE_SERVICES=1`) without a server.
pub async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = jararaca_testing::postgres() else {
        return;
    };
    let schema = jararaca_testing::unique_name("jq");
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&admin)
        .await
        .expect("create the test schema");
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .expect("parse the PostgreSQL URL")
        .options([("search_path", schema.as_str())]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("connect to the test schema");
    let db = Db::from_postgres(pool);
    let outcome = AssertUnwindSafe(async {
        db.execute_script(PG_SCHEMA)
            .await
            .expect("create the tables");
        test(db.clone()).await;
    })
    .catch_unwind()
    .await;
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .expect("drop the test schema");
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Defines one test per backend for an async suite `fn(Db)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($suite:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $suite() {
                    $crate::common::with_sqlite_memory(super::$suite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $suite() {
                    $crate::common::with_postgres(super::$suite).await;
                }
            )*
        }
    };
}
