//! The transactional outbox table: where a unit of work with a transaction writes the
//! messages it publishes, and what the bus's relay reads them from (feature `bus`).
//!
//! With this feature, every unit that passes through the [`TransactionLayer`] and publishes
//! with `jararaca-bus` (`message.publish()`, `UnitBus`, `delay`, `schedule`) has its
//! messages written to the `jararaca_outbox` table **inside its own transaction**, just before
//! it commits. If the unit fails, they are rolled back with its changes; once it commits, the
//! bus's relay publishes them with publisher confirms and deletes each row only after its
//! confirm. A unit that opted out of the transaction ([`NoTransaction`]) publishes after its
//! commit instead. See `jararaca_bus::outbox` for the guarantees.
//!
//! The table is `jararaca_outbox`. The first unit that writes to it creates it if it does not
//! exist (in that unit's transaction); run [`migrate`] at startup to create it ahead, or put
//! [`POSTGRES_MIGRATION`] / [`SQLITE_MIGRATION`] into your own migrations when the service's
//! database role may not create tables. Relaying:
//!
//! * **PostgreSQL**: a relay claims rows with `SELECT … FOR UPDATE SKIP LOCKED` in a
//!   transaction it holds while it publishes, so concurrent relays (other processes, other
//!   instances) never take the same row; a relay that dies releases its rows with its
//!   connection.
//! * **SQLite**: a relay leases rows for [`LEASE`]; a relay that dies leaves them to be
//!   claimed again when the lease ends.
//!
//! A commit in this process wakes its relay at once; rows left by other processes are found
//! by polling (every second by default).
//!
//! [`TransactionLayer`]: crate::TransactionLayer
//! [`NoTransaction`]: crate::NoTransaction

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_bus::BusError;
use jararaca_bus::outbox::{OutboxClaim, OutboxMessage, OutboxRow, OutboxSource, OutboxWriter};
use jararaca_di::{BoxError, UnitOfWork};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;

use crate::db::Pool;
use crate::session::UnitTx;
use crate::{Db, QueryError};

/// The outbox table's name.
pub const TABLE: &str = "jararaca_outbox";

/// How long a SQLite relay holds the rows it claimed before another may claim them.
pub const LEASE: Duration = Duration::from_secs(60);

/// The PostgreSQL table (idempotent).
pub const POSTGRES_MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS jararaca_outbox (
    seq bigserial PRIMARY KEY,
    message_id text,
    message bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

/// The advisory lock under which the PostgreSQL table is created.
#[cfg(feature = "postgres")]
const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(7147870811420165737)";

/// The SQLite table (idempotent).
pub const SQLITE_MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS jararaca_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    message BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS jararaca_outbox_lease ON jararaca_outbox (lease_until);
";

/// Creates the outbox table on `db` if it does not exist.
///
/// Safe to run from several processes at once: on PostgreSQL it holds an advisory lock (the
/// one the first writing unit takes) while it creates the table, since concurrent
/// `CREATE TABLE IF NOT EXISTS` statements can fail there.
pub async fn migrate(db: &Db) -> Result<(), QueryError> {
    match db.pool() {
        #[cfg(feature = "postgres")]
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query(CREATE_LOCK).execute(&mut *tx).await?;
            sqlx::raw_sql(POSTGRES_MIGRATION).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(_) => db.execute_script(SQLITE_MIGRATION).await?,
    }
    db.outbox_signal()
        .table_ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// What the commits of one [`Db`] tell its relay, and whether its table is known to exist.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    committed: Notify,
    table_ready: std::sync::atomic::AtomicBool,
}

/// The outbox table of a [`Db`], as the bus's relay reads it: pass it to
/// `Bus::attach_outbox` at startup to publish at once what an earlier process left behind.
#[derive(Clone)]
pub struct SqlOutbox {
    db: Db,
}

impl fmt::Debug for SqlOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlOutbox")
            .field("dialect", &self.db.dialect())
            .finish()
    }
}

impl SqlOutbox {
    /// The outbox table of `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// As the source a relay reads.
    pub fn source(db: &Db) -> Arc<dyn OutboxSource> {
        Arc::new(Self::new(db.clone()))
    }
}

fn store_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> BusError {
    move |error| BusError::Config(format!("outbox: {operation} failed: {error}"))
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn row(seq: i64, message: &[u8]) -> OutboxRow {
    OutboxRow {
        seq,
        message: OutboxMessage::decode(message).map_err(|e| e.to_string()),
    }
}

impl OutboxSource for SqlOutbox {
    fn key(&self) -> String {
        // One relay per pool: every clone of a Db shares its signal.
        format!("sql:{:p}", Arc::as_ptr(self.db.outbox_signal()))
    }

    fn claim(&self, limit: usize) -> BoxFuture<'_, Result<Box<dyn OutboxClaim>, BusError>> {
        async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let claim: Box<dyn OutboxClaim> = match self.db.pool() {
                #[cfg(feature = "postgres")]
                Pool::Postgres(pool) => {
                    let mut tx = pool.begin().await.map_err(store_error("BEGIN"))?;
                    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                        "SELECT seq, message FROM jararaca_outbox ORDER BY seq LIMIT $1 \
                         FOR UPDATE SKIP LOCKED",
                    )
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(store_error("claiming rows"))?;
                    Box::new(PgClaim {
                        tx,
                        rows: rows.iter().map(|(seq, m)| row(*seq, m)).collect(),
                    })
                }
                #[cfg(feature = "sqlite")]
                Pool::Sqlite(pool) => {
                    let now = unix_millis(SystemTime::now());
                    let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
                    let mut rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                        "UPDATE jararaca_outbox SET lease_until = ?1 WHERE seq IN (\
                         SELECT seq FROM jararaca_outbox \
                         WHERE lease_until IS NULL OR lease_until < ?2 ORDER BY seq LIMIT ?3) \
                         RETURNING seq, message",
                    )
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(store_error("leasing rows"))?;
                    rows.sort_by_key(|(seq, _)| *seq);
                    Box::new(SqliteClaim {
                        pool: pool.clone(),
                        rows: rows.iter().map(|(seq, m)| row(*seq, m)).collect(),
                    })
                }
            };
            Ok(claim)
        }
        .boxed()
    }

    fn committed(&self) -> BoxFuture<'_, ()> {
        self.db.outbox_signal().committed.notified().boxed()
    }
}

#[cfg(feature = "postgres")]
struct PgClaim {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    rows: Vec<OutboxRow>,
}

#[cfg(feature = "postgres")]
impl OutboxClaim for PgClaim {
    fn rows(&self) -> &[OutboxRow] {
        &self.rows
    }

    fn complete(self: Box<Self>, done: Vec<i64>) -> BoxFuture<'static, Result<(), BusError>> {
        async move {
            let mut tx = self.tx;
            if !done.is_empty() {
                sqlx::query("DELETE FROM jararaca_outbox WHERE seq = ANY($1)")
                    .bind(&done)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error("deleting published rows"))?;
            }
            // The rows not in `done` are released with the locks.
            tx.commit().await.map_err(store_error("COMMIT"))
        }
        .boxed()
    }
}

#[cfg(feature = "sqlite")]
struct SqliteClaim {
    pool: sqlx::SqlitePool,
    rows: Vec<OutboxRow>,
}

#[cfg(feature = "sqlite")]
impl OutboxClaim for SqliteClaim {
    fn rows(&self) -> &[OutboxRow] {
        &self.rows
    }

    fn complete(self: Box<Self>, done: Vec<i64>) -> BoxFuture<'static, Result<(), BusError>> {
        async move {
            let undone: Vec<i64> = self
                .rows
                .iter()
                .map(|r| r.seq)
                .filter(|seq| !done.contains(seq))
                .collect();
            for (seqs, sql) in [
                (&done, "DELETE FROM jararaca_outbox WHERE seq IN "),
                (
                    &undone,
                    "UPDATE jararaca_outbox SET lease_until = NULL WHERE seq IN ",
                ),
            ] {
                if seqs.is_empty() {
                    continue;
                }
                let list = seqs
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                sqlx::query(AssertSqlSafe(format!("{sql}({list})")))
                    .execute(&self.pool)
                    .await
                    .map_err(store_error("settling leased rows"))?;
            }
            Ok(())
        }
        .boxed()
    }
}

/// The outbox of one unit of work: rows kept with its transaction state.
pub(crate) struct UnitWriter {
    pub(crate) state: Arc<UnitTx>,
}

impl OutboxWriter for UnitWriter {
    fn is_active(&self) -> bool {
        !self.state.is_opted_out()
    }

    fn stage(&self, unit: &UnitOfWork, message: OutboxMessage) -> Result<(), BusError> {
        self.state
            .stage_outbox(unit, message)
            .map_err(|e| BusError::Config(format!("outbox: {e}")))
    }

    fn source(&self) -> Arc<dyn OutboxSource> {
        SqlOutbox::source(self.state.db())
    }
}

/// A row waiting for its unit's commit: its message id and stored form.
pub(crate) type PendingRow = (Option<String>, Vec<u8>);

/// Rows per INSERT, under both databases' parameter limits.
const INSERT_CHUNK: usize = 500;

/// Writes `rows` in the PostgreSQL transaction `connection` is in, creating the table first
/// if this is the first time and it does not exist (under an advisory lock, so concurrent
/// first units do not race; in the unit's transaction, so it needs no other connection).
#[cfg(feature = "postgres")]
pub(crate) async fn insert_postgres(
    connection: &mut sqlx::PgConnection,
    signal: &Signal,
    rows: &[PendingRow],
) -> Result<(), sqlx::Error> {
    use std::sync::atomic::Ordering;
    if !signal.table_ready.load(Ordering::Relaxed) {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('jararaca_outbox') IS NOT NULL")
            .fetch_one(&mut *connection)
            .await?;
        if !exists {
            sqlx::query(CREATE_LOCK).execute(&mut *connection).await?;
            sqlx::raw_sql(POSTGRES_MIGRATION)
                .execute(&mut *connection)
                .await?;
        }
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO jararaca_outbox (message_id, message) ",
        );
        insert.push_values(chunk, |mut row, (id, message)| {
            row.push_bind(id.as_deref()).push_bind(message.as_slice());
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Writes `rows` in the SQLite transaction `connection` is in, creating the table first if
/// this is the first time and it does not exist.
#[cfg(feature = "sqlite")]
pub(crate) async fn insert_sqlite(
    connection: &mut sqlx::SqliteConnection,
    signal: &Signal,
    rows: &[PendingRow],
) -> Result<(), sqlx::Error> {
    use std::sync::atomic::Ordering;
    if !signal.table_ready.load(Ordering::Relaxed) {
        sqlx::raw_sql(SQLITE_MIGRATION)
            .execute(&mut *connection)
            .await?;
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO jararaca_outbox (message_id, message) ",
        );
        insert.push_values(chunk, |mut row, (id, message)| {
            row.push_bind(id.as_deref()).push_bind(message.as_slice());
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Why writing the outbox rows failed, with what to do when the table is missing.
pub(crate) fn insert_error(error: sqlx::Error) -> BoxError {
    let text = error.to_string();
    if text.contains("jararaca_outbox") || text.contains("no such table") {
        format!(
            "writing the unit's messages to the outbox failed ({text}): create the table at \
             startup with jararaca_query::outbox::migrate(&db)"
        )
        .into()
    } else {
        format!("writing the unit's messages to the outbox failed: {text}").into()
    }
}

impl Signal {
    /// After a commit that wrote rows: the table exists for good, and the relay has work.
    pub(crate) fn committed(&self) {
        self.table_ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.committed.notify_one();
    }
}
