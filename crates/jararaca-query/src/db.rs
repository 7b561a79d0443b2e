//! Connection pools for PostgreSQL and SQLite behind one type, and rows from either.

use std::time::Duration;

use jararaca_di::config::redact_url;

use crate::{ColumnType, Dialect, QueryError, Session, Value};

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!(
    "jararaca-query needs at least one backend: enable the `postgres` or `sqlite` feature"
);

/// A pool of connections to PostgreSQL or SQLite, chosen at run time from the URL.
///
/// Cheap to clone (every clone is the same pool). Build it once at startup with
/// [`Db::connect`] and hand it to the [`TransactionLayer`](crate::TransactionLayer).
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    #[cfg(feature = "bus")]
    outbox: std::sync::Arc<crate::outbox::Signal>,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// How long connecting waits for the database's first connection (a refused connection is
/// retried until then, so a database that is still starting is waited for).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The error of a pool that could not open its first connection, naming the database (its
/// password hidden) and the reason. A pool that timed out hides why its attempts failed, so
/// one more direct attempt asks.
async fn unreachable<C: sqlx::Connection>(
    url: &str,
    error: sqlx::Error,
    options: &<C as sqlx::Connection>::Options,
) -> QueryError {
    let reason = match error {
        sqlx::Error::PoolTimedOut => {
            match tokio::time::timeout(Duration::from_secs(2), C::connect_with(options)).await {
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(_)) => format!(
                    "no connection was opened within {CONNECT_TIMEOUT:?} (one opened afterwards: the database may be overloaded)"
                ),
                Err(_) => format!("no connection was opened within {CONNECT_TIMEOUT:?}"),
            }
        }
        error => error.to_string(),
    };
    QueryError::Unreachable {
        url: redact_url(url),
        reason,
    }
}

impl Db {
    /// Connects to `url`: `postgres://…`/`postgresql://…` for PostgreSQL, `sqlite:path`,
    /// `sqlite://path` or `sqlite::memory:` for SQLite (a file is created if missing).
    ///
    /// An in-memory SQLite database lives in one connection, so its pool holds exactly one
    /// connection that is never closed: the data lives as long as the pool.
    pub async fn connect(url: &str) -> Result<Self, QueryError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                use std::str::FromStr;
                let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| {
                    QueryError::Config(format!(
                        "{:?} is not a PostgreSQL URL: {e}",
                        redact_url(url)
                    ))
                })?;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options.clone())
                    .await;
                return match pool {
                    Ok(pool) => Ok(Self::from_postgres(pool)),
                    Err(error) => {
                        Err(unreachable::<sqlx::PgConnection>(url, error, &options).await)
                    }
                };
            }
            #[cfg(not(feature = "postgres"))]
            return Err(QueryError::BackendDisabled("postgres"));
        }
        if url.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                use std::str::FromStr;
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .map_err(|e| QueryError::Config(format!("{url:?} is not a SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let memory = url.contains(":memory:") || url.contains("mode=memory");
                let pool_options = sqlx::sqlite::SqlitePoolOptions::new();
                let pool = if memory {
                    pool_options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    pool_options
                };
                let options = options.journal_mode(if memory {
                    sqlx::sqlite::SqliteJournalMode::Memory
                } else {
                    sqlx::sqlite::SqliteJournalMode::Wal
                });
                return match pool
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options.clone())
                    .await
                {
                    Ok(pool) => Ok(Self::from_sqlite(pool)),
                    Err(error) => {
                        Err(unreachable::<sqlx::SqliteConnection>(url, error, &options).await)
                    }
                };
            }
            #[cfg(not(feature = "sqlite"))]
            return Err(QueryError::BackendDisabled("sqlite"));
        }
        Err(QueryError::Config(format!(
            "unsupported database URL scheme in {:?}: use postgres://… or sqlite:…",
            url.split_once("://").map_or(url, |(scheme, _)| scheme)
        )))
    }

    /// A fresh in-memory SQLite database (the embedded default; data is lost when the pool
    /// is dropped).
    #[cfg(feature = "sqlite")]
    pub async fn sqlite_memory() -> Result<Self, QueryError> {
        Self::connect("sqlite::memory:").await
    }

    /// Wraps an existing PostgreSQL pool.
    #[cfg(feature = "postgres")]
    pub fn from_postgres(pool: sqlx::PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
            #[cfg(feature = "bus")]
            outbox: std::sync::Arc::default(),
        }
    }

    /// Wraps an existing SQLite pool.
    #[cfg(feature = "sqlite")]
    pub fn from_sqlite(pool: sqlx::SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
            #[cfg(feature = "bus")]
            outbox: std::sync::Arc::default(),
        }
    }

    /// The PostgreSQL pool, if this is PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite pool, if this is SQLite.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    #[cfg(feature = "bus")]
    pub(crate) fn outbox_signal(&self) -> &std::sync::Arc<crate::outbox::Signal> {
        &self.outbox
    }

    /// The SQL dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A session that runs each statement on its own pooled connection, committed at once
    /// (no transaction). For work outside a unit of work: migrations, scripts, tests.
    pub fn session(&self) -> Session {
        Session::pool(self.clone())
    }

    /// Runs `SELECT 1`: the readiness check for health endpoints.
    pub async fn ping(&self) -> Result<(), QueryError> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
        }
        Ok(())
    }

    /// Runs a script of SQL statements separated by `;` without parameters (schema set-up).
    pub async fn execute_script(&self, sql: &str) -> Result<(), QueryError> {
        use sqlx::{AssertSqlSafe, Executor};
        let sql = AssertSqlSafe(sql.to_string());
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => p.execute(sql).await.map(drop)?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.execute(sql).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes every connection; waits for the ones in use to come back.
    pub async fn close(&self) {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => p.close().await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// Rows decodable from every enabled backend: what `#[derive(sqlx::FromRow)]` gives a struct
/// whose fields are types both databases know (see [`ColumnType`]).
#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub trait FromDbRow:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + Send
    + Unpin
{
}
#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl<T> FromDbRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
{
}

/// Rows decodable from every enabled backend: what `#[derive(sqlx::FromRow)]` gives.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
pub trait FromDbRow: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {}
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
impl<T> FromDbRow for T where T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {}

/// Rows decodable from every enabled backend: what `#[derive(sqlx::FromRow)]` gives.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
pub trait FromDbRow: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin {}
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
impl<T> FromDbRow for T where T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin {}

/// A row from either database.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Row<'r> {
    /// A PostgreSQL row.
    #[cfg(feature = "postgres")]
    Postgres(&'r sqlx::postgres::PgRow),
    /// A SQLite row.
    #[cfg(feature = "sqlite")]
    Sqlite(&'r sqlx::sqlite::SqliteRow),
}

impl Row<'_> {
    /// Decodes the row as `T`.
    pub fn decode<T: FromDbRow>(&self) -> Result<T, QueryError> {
        Ok(match *self {
            #[cfg(feature = "postgres")]
            Self::Postgres(r) => T::from_row(r)?,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(r) => T::from_row(r)?,
        })
    }

    /// The integer in `column`.
    pub fn get_i64(&self, column: &str) -> Result<i64, QueryError> {
        use sqlx::Row as _;
        Ok(match *self {
            #[cfg(feature = "postgres")]
            Self::Postgres(r) => r.try_get(column)?,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(r) => r.try_get(column)?,
        })
    }

    /// The value in `column`, read as `ty`.
    pub fn get_value(&self, column: &str, ty: ColumnType) -> Result<Value, QueryError> {
        match *self {
            #[cfg(feature = "postgres")]
            Self::Postgres(r) => get_value(r, column, ty),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(r) => get_value(r, column, ty),
        }
    }
}

fn get_value<'r, R>(row: &'r R, column: &str, ty: ColumnType) -> Result<Value, QueryError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<uuid::Uuid>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<chrono::NaiveDate>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<chrono::DateTime<chrono::Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<sqlx::types::Json<serde_json::Value>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn or_null<T>(v: Option<T>, ty: ColumnType, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Null(ty), f)
    }
    Ok(match ty {
        ColumnType::Text => or_null(row.try_get::<Option<String>, _>(column)?, ty, Value::Text),
        ColumnType::Uuid => or_null(row.try_get(column)?, ty, Value::Uuid),
        ColumnType::Bool => or_null(row.try_get(column)?, ty, Value::Bool),
        ColumnType::Int => or_null(row.try_get(column)?, ty, Value::Int),
        ColumnType::Float => or_null(row.try_get(column)?, ty, Value::Float),
        ColumnType::Date => or_null(row.try_get(column)?, ty, Value::Date),
        ColumnType::DateTime => or_null(row.try_get(column)?, ty, Value::DateTime),
        ColumnType::Json => or_null(
            row.try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(column)?,
            ty,
            |j| Value::Json(j.0),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn an_unreachable_database_is_named_without_its_password() {
        // Nothing listens on port 1: every attempt is refused until the connect timeout.
        let error = Db::connect("postgres://app:s3cret@127.0.0.1:1/orders")
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "cannot connect to the database at postgres://app:***@127.0.0.1:1/orders: "
            ),
            "{message}"
        );
        assert!(
            message.contains("refused"),
            "the reason is given: {message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_sqlite_file_that_cannot_be_created_is_named() {
        let error = Db::connect("sqlite:/nonexistent-dir/app.db")
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message
                .starts_with("cannot connect to the database at sqlite:/nonexistent-dir/app.db: "),
            "{message}"
        );
    }
}
