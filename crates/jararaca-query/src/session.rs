//! Where statements run: the unit of work's transaction, or the pool.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_di::{BoxError, Resource, UnitOfWork};
use sqlx::AssertSqlSafe;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::db::Pool;
use crate::{Db, Dialect, FromDbRow, QueryError, Row, Sql};

/// A handle to run statements: either the current unit of work's transaction (from
/// [`use_session`](crate::use_session), the `Session` extractor or the request's extensions)
/// or a pool in autocommit mode (from [`Db::session`]).
///
/// Cheap to clone. Within a unit every clone is the same transaction: it is begun on the first
/// statement, committed by the unit of work when the unit succeeds (before the after-commit
/// actions run) and rolled back when it fails or is cancelled. A unit that never touches the
/// database never begins one.
#[derive(Clone)]
pub struct Session {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Pool(Db),
    Unit {
        state: Arc<UnitTx>,
        unit: UnitOfWork,
    },
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Pool(db) => f.debug_tuple("Session::Pool").field(&db.dialect()).finish(),
            Kind::Unit { state, unit } => f
                .debug_struct("Session::Unit")
                .field("dialect", &state.db.dialect())
                .field("autocommit", &state.is_autocommit(unit))
                .field("unit", &unit.kind())
                .finish(),
        }
    }
}

/// The per-unit transaction state, kept as a unit-local of the [`UnitOfWork`].
pub(crate) struct UnitTx {
    db: Db,
    isolation: Option<Isolation>,
    autocommit: AtomicBool,
    enlisted: AtomicBool,
    slot: Arc<Mutex<Slot>>,
    /// Outbox rows to write just before the commit.
    #[cfg(feature = "bus")]
    outbox: std::sync::Mutex<Vec<crate::outbox::PendingRow>>,
}

/// A marker unit-local: the unit opted out of the transaction.
pub(crate) struct OptedOut;

#[derive(Default)]
struct Slot {
    tx: Option<AnyTx>,
    finished: bool,
}

enum AnyTx {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl UnitTx {
    pub(crate) fn new(db: Db, autocommit: bool, isolation: Option<Isolation>) -> Self {
        Self {
            db,
            isolation,
            autocommit: AtomicBool::new(autocommit),
            enlisted: AtomicBool::new(false),
            slot: Arc::default(),
            #[cfg(feature = "bus")]
            outbox: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn set_autocommit(&self) {
        self.autocommit.store(true, Ordering::Relaxed);
    }

    fn is_autocommit(&self, unit: &UnitOfWork) -> bool {
        self.is_opted_out() || unit.get_local::<OptedOut>().is_some()
    }

    /// Whether the unit runs without a transaction, as far as this state knows (the
    /// opt-out layer tells it when it runs inside the transaction layer).
    pub(crate) fn is_opted_out(&self) -> bool {
        self.autocommit.load(Ordering::Relaxed)
    }

    #[cfg(feature = "bus")]
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Enlists the transaction in `unit` (once): it commits or rolls back with the unit.
    fn enlist(self: &Arc<Self>, unit: &UnitOfWork) -> Result<(), QueryError> {
        if self.enlisted.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let enlisted = unit.enlist(TxResource {
            state: Arc::clone(self),
            name: match self.db.dialect() {
                Dialect::Postgres => "postgres transaction",
                Dialect::Sqlite => "sqlite transaction",
            },
        });
        if enlisted.is_err() {
            self.enlisted.store(false, Ordering::Release);
        }
        Ok(enlisted?)
    }

    /// Keeps `message` to be written in the transaction just before it commits.
    #[cfg(feature = "bus")]
    pub(crate) fn stage_outbox(
        self: &Arc<Self>,
        unit: &UnitOfWork,
        message: jararaca_bus::outbox::OutboxMessage,
    ) -> Result<(), QueryError> {
        self.enlist(unit)?;
        let row = (message.message_id().map(str::to_owned), message.encode());
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(row);
        Ok(())
    }
}

/// The unit's transaction as a [`Resource`]: the unit of work commits or rolls it back.
struct TxResource {
    state: Arc<UnitTx>,
    name: &'static str,
}

impl TxResource {
    async fn finish(self, commit: bool) -> Result<(), BoxError> {
        self.finish_inner(commit).await.map_err(|error| {
            // A serialization failure or deadlock at commit: the unit may be run again.
            let retryable = error
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::error::is_conflict);
            if retryable {
                jararaca_di::UnitConflict::new(error).into()
            } else {
                error
            }
        })
    }

    async fn finish_inner(self, commit: bool) -> Result<(), BoxError> {
        let mut slot = self.state.slot.lock().await;
        slot.finished = true;
        #[cfg(feature = "bus")]
        let outbox =
            std::mem::take(&mut *self.state.outbox.lock().unwrap_or_else(|e| e.into_inner()));
        #[cfg(feature = "bus")]
        if commit && !outbox.is_empty() && slot.tx.is_none() {
            // The unit ran no statement but has messages: they still commit atomically.
            slot.tx = Some(begin(&self.state.db, self.state.isolation).await?);
        }
        let Some(tx) = slot.tx.take() else {
            // Enlisted but never begun (BEGIN failed): nothing to do.
            return Ok(());
        };
        match (tx, commit) {
            #[cfg(feature = "postgres")]
            #[cfg_attr(not(feature = "bus"), allow(unused_mut))]
            (AnyTx::Postgres(mut tx), true) => {
                #[cfg(feature = "bus")]
                crate::outbox::insert_postgres(&mut tx, self.state.db.outbox_signal(), &outbox)
                    .await
                    .map_err(crate::outbox::insert_error)?;
                tx.commit().await?;
            }
            #[cfg(feature = "postgres")]
            (AnyTx::Postgres(tx), false) => tx.rollback().await?,
            #[cfg(feature = "sqlite")]
            #[cfg_attr(not(feature = "bus"), allow(unused_mut))]
            (AnyTx::Sqlite(mut tx), true) => {
                #[cfg(feature = "bus")]
                crate::outbox::insert_sqlite(&mut tx, self.state.db.outbox_signal(), &outbox)
                    .await
                    .map_err(crate::outbox::insert_error)?;
                tx.commit().await?;
            }
            #[cfg(feature = "sqlite")]
            (AnyTx::Sqlite(tx), false) => tx.rollback().await?,
        }
        #[cfg(feature = "bus")]
        if commit && !outbox.is_empty() {
            self.state.db.outbox_signal().committed();
        }
        Ok(())
    }
}

/// How isolated a unit's transaction is from concurrent ones (PostgreSQL; SQLite
/// transactions are serializable already).
///
/// The default, PostgreSQL's own, is read committed: two units may both count the rows of a
/// table and both insert, beating a limit the count was meant to hold. Under
/// [`Isolation::Serializable`] one of them fails with a serialization failure (SQLSTATE
/// `40001`), which [`QueryError::is_retryable`](crate::QueryError::is_retryable) recognises:
/// a bus handler's failed unit is retried by the worker; an HTTP client is answered `409`
/// and may send the request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ COMMITTED`: each statement sees what was committed before it began.
    ReadCommitted,
    /// `REPEATABLE READ`: every statement sees what was committed before the first one.
    RepeatableRead,
    /// `SERIALIZABLE`: the units behave as if they ran one after the other.
    Serializable,
}

impl Isolation {
    #[cfg(feature = "postgres")]
    fn begin_statement(self) -> &'static str {
        match self {
            Self::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Self::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Self::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

async fn begin(db: &Db, isolation: Option<Isolation>) -> Result<AnyTx, sqlx::Error> {
    Ok(match db.pool() {
        #[cfg(feature = "postgres")]
        Pool::Postgres(p) => AnyTx::Postgres(match isolation {
            Some(level) => p.begin_with(level.begin_statement()).await?,
            None => p.begin().await?,
        }),
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(p) => {
            let _ = isolation;
            AnyTx::Sqlite(p.begin().await?)
        }
    })
}

impl Resource for TxResource {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        self.finish(true).boxed()
    }

    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        self.finish(false).boxed()
    }
}

/// A connection of either database, borrowed from a [`SessionConnection`] to run sqlx
/// queries by hand.
#[derive(Debug)]
#[non_exhaustive]
pub enum Connection<'c> {
    /// A PostgreSQL connection (inside the unit's transaction, if there is one).
    #[cfg(feature = "postgres")]
    Postgres(&'c mut sqlx::PgConnection),
    /// A SQLite connection (inside the unit's transaction, if there is one).
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut sqlx::SqliteConnection),
}

/// Exclusive use of the session's connection, from [`Session::acquire`]. Other users of the
/// same unit's session wait until it is dropped.
pub struct SessionConnection {
    inner: Held,
}

enum Held {
    #[cfg(feature = "postgres")]
    PgPool(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    SqlitePool(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Tx(OwnedMutexGuard<Slot>),
}

impl fmt::Debug for SessionConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            #[cfg(feature = "postgres")]
            Held::PgPool(_) => "postgres pool connection",
            #[cfg(feature = "sqlite")]
            Held::SqlitePool(_) => "sqlite pool connection",
            Held::Tx(_) => "unit of work transaction",
        };
        f.debug_tuple("SessionConnection").field(&kind).finish()
    }
}

impl SessionConnection {
    /// The connection, to pass to sqlx as an executor (`&mut *conn`).
    pub fn connection(&mut self) -> Result<Connection<'_>, QueryError> {
        Ok(match &mut self.inner {
            #[cfg(feature = "postgres")]
            Held::PgPool(c) => Connection::Postgres(&mut *c),
            #[cfg(feature = "sqlite")]
            Held::SqlitePool(c) => Connection::Sqlite(&mut *c),
            Held::Tx(slot) => match slot.tx.as_mut() {
                #[cfg(feature = "postgres")]
                Some(AnyTx::Postgres(tx)) => Connection::Postgres(&mut *tx),
                #[cfg(feature = "sqlite")]
                Some(AnyTx::Sqlite(tx)) => Connection::Sqlite(&mut *tx),
                None => return Err(QueryError::TransactionFinished),
            },
        })
    }
}

async fn pool_connection(db: &Db) -> Result<SessionConnection, QueryError> {
    let inner = match db.pool() {
        #[cfg(feature = "postgres")]
        Pool::Postgres(p) => Held::PgPool(p.acquire().await?),
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(p) => Held::SqlitePool(p.acquire().await?),
    };
    Ok(SessionConnection { inner })
}

impl Session {
    pub(crate) fn pool(db: Db) -> Self {
        Self {
            kind: Kind::Pool(db),
        }
    }

    pub(crate) fn unit(state: Arc<UnitTx>, unit: UnitOfWork) -> Self {
        Self {
            kind: Kind::Unit { state, unit },
        }
    }

    /// The database this session runs on.
    pub fn db(&self) -> &Db {
        match &self.kind {
            Kind::Pool(db) => db,
            Kind::Unit { state, .. } => &state.db,
        }
    }

    /// The SQL dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.db().dialect()
    }

    /// Whether statements run in the unit of work's transaction (rather than each committing
    /// on its own).
    pub fn is_transactional(&self) -> bool {
        match &self.kind {
            Kind::Pool(_) => false,
            Kind::Unit { state, unit } => !state.is_autocommit(unit),
        }
    }

    /// The connection to run statements on: the unit's transaction (begun and enlisted in the
    /// unit of work on first use) or a pooled connection.
    pub async fn acquire(&self) -> Result<SessionConnection, QueryError> {
        let (state, unit) = match &self.kind {
            Kind::Pool(db) => return pool_connection(db).await,
            Kind::Unit { state, unit } => (state, unit),
        };
        if state.is_autocommit(unit) {
            return pool_connection(&state.db).await;
        }
        let mut slot = Arc::clone(&state.slot).lock_owned().await;
        if slot.finished {
            return Err(QueryError::TransactionFinished);
        }
        if slot.tx.is_none() {
            // Enlist before BEGIN: a unit decided meanwhile refuses it and no transaction
            // is left dangling; a failed BEGIN leaves an empty resource that commits nothing.
            state.enlist(unit)?;
            slot.tx = Some(begin(&state.db, state.isolation).await?);
            tracing::trace!("unit of work transaction begun");
        }
        Ok(SessionConnection {
            inner: Held::Tx(slot),
        })
    }

    /// Runs `sql` and maps every row with `map`.
    pub async fn fetch_map<T, F>(&self, sql: &Sql, map: F) -> Result<Vec<T>, QueryError>
    where
        F: Fn(Row<'_>) -> Result<T, QueryError> + Send,
        T: Send,
    {
        let mut held = self.acquire().await?;
        match held.connection()? {
            #[cfg(feature = "postgres")]
            Connection::Postgres(c) => {
                let (text, args) = sql.postgres()?;
                let rows = sqlx::query_with(AssertSqlSafe(text), args)
                    .fetch_all(c)
                    .await?;
                rows.iter().map(|r| map(Row::Postgres(r))).collect()
            }
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(c) => {
                let (text, args) = sql.sqlite()?;
                let rows = sqlx::query_with(AssertSqlSafe(text), args)
                    .fetch_all(c)
                    .await?;
                rows.iter().map(|r| map(Row::Sqlite(r))).collect()
            }
        }
    }

    /// Runs `sql` and decodes every row as `T`.
    pub async fn fetch_all<T: FromDbRow>(&self, sql: &Sql) -> Result<Vec<T>, QueryError> {
        self.fetch_map(sql, |row| row.decode::<T>()).await
    }

    /// Runs `sql` and decodes the first row as `T`, if any.
    pub async fn fetch_optional<T: FromDbRow>(&self, sql: &Sql) -> Result<Option<T>, QueryError> {
        Ok(self.fetch_all(sql).await?.into_iter().next())
    }

    /// Runs `sql` and reads the integer in the first column of the first row (a count).
    pub async fn fetch_i64(&self, sql: &Sql) -> Result<i64, QueryError> {
        let mut held = self.acquire().await?;
        Ok(match held.connection()? {
            #[cfg(feature = "postgres")]
            Connection::Postgres(c) => {
                let (text, args) = sql.postgres()?;
                sqlx::query_scalar_with(AssertSqlSafe(text), args)
                    .fetch_one(c)
                    .await?
            }
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(c) => {
                let (text, args) = sql.sqlite()?;
                sqlx::query_scalar_with(AssertSqlSafe(text), args)
                    .fetch_one(c)
                    .await?
            }
        })
    }

    /// Runs `sql` and returns the number of rows it changed.
    pub async fn execute(&self, sql: &Sql) -> Result<u64, QueryError> {
        let mut held = self.acquire().await?;
        Ok(match held.connection()? {
            #[cfg(feature = "postgres")]
            Connection::Postgres(c) => {
                let (text, args) = sql.postgres()?;
                sqlx::query_with(AssertSqlSafe(text), args)
                    .execute(c)
                    .await?
                    .rows_affected()
            }
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(c) => {
                let (text, args) = sql.sqlite()?;
                sqlx::query_with(AssertSqlSafe(text), args)
                    .execute(c)
                    .await?
                    .rows_affected()
            }
        })
    }
}
