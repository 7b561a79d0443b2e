//! Persistence for Jararaca: entities with UUID ids, CRUD, paginated listing with MUI
//! DataGrid-style sorting and filtering, keyset pagination, and a database transaction per
//! unit of work — on PostgreSQL in production and SQLite as the embedded default, with the
//! same code for both.
//!
//! ```
//! use jararaca_query::{
//!     Column, ColumnType, CrudOperations, Db, Direction, Entity, FilterValue, Fields,
//!     PaginatedFilter, QueryOperations,
//! };
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
//! struct Task {
//!     id: uuid::Uuid,
//!     title: String,
//!     priority: i64,
//! }
//!
//! impl Entity for Task {
//!     const TABLE: &'static str = "tasks";
//!     const COLUMNS: &'static [Column] = &[
//!         Column::new("id", ColumnType::Uuid),
//!         Column::new("title", ColumnType::Text),
//!         Column::new("priority", ColumnType::Int),
//!     ];
//!     fn id(&self) -> uuid::Uuid {
//!         self.id
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // `Db::connect(&std::env::var("DATABASE_URL")?)` picks PostgreSQL or SQLite from the URL.
//! let db = Db::sqlite_memory().await?;
//! db.execute_script("CREATE TABLE tasks (id BLOB PRIMARY KEY, title TEXT NOT NULL, priority INTEGER NOT NULL)")
//!     .await?;
//!
//! // Outside a unit of work, run on an autocommit session; inside one, `CrudOperations::new()`
//! // uses the unit's transaction.
//! let tasks = CrudOperations::<Task>::on(db.session());
//! for (title, priority) in [("write docs", 2), ("fix bug", 1), ("write tests", 3)] {
//!     tasks.create(&Task { id: uuid::Uuid::new_v4(), title: title.into(), priority }).await?;
//! }
//!
//! // What a client sends: {"page":0,"page_size":10,"sort_models":[…],"filter_models":[…]}
//! let filter = PaginatedFilter::page(0, 10)
//!     .sort("priority", Direction::Desc)
//!     .filter("title", "contains", FilterValue::One("WRITE".into()));
//! let listing = QueryOperations::<Task>::new(Fields::of::<Task>()).on(db.session());
//! let page = listing.query(&filter).await?;
//! assert_eq!(page.unpaginated_total, 2);
//! assert_eq!(page.items[0].title, "write tests");
//!
//! // A field outside the whitelist is the client's error, answered with a 422.
//! let hostile = PaginatedFilter::default().sort("title; DROP TABLE tasks", Direction::Asc);
//! let err = listing.query(&hostile).await.unwrap_err();
//! assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
//! # Ok::<_, jararaca_query::QueryError>(())
//! # }).unwrap();
//! ```
//!
//! # The transaction per unit of work
//!
//! [`TransactionLayer`] is a tower layer for any [`Envelope`](jararaca_di::Envelope) — HTTP
//! routes, bus handlers, scheduled actions. Inside a
//! [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer) it gives each unit one transaction,
//! begun on the first statement and enlisted in the unit of work, which commits it when the
//! unit succeeds and *then* runs the after-commit actions (publishes), or rolls it back when
//! the unit fails or is cancelled. Handlers reach it as the [`Session`] extractor, from the
//! extensions ([`Session::from_extensions`]) or with [`use_session`];
//! [`NoTransactionLayer`] opts a route or handler out.
//!
//! # Why not `sqlx::Any`
//!
//! sqlx's `Any` driver picks the database at run time too, but it only carries integers,
//! floats, text and blobs: no UUID, dates or JSON, and derived `FromRow` structs with such
//! fields do not decode from it. So [`Db`] holds a typed PostgreSQL or SQLite pool, rows are
//! decoded by the struct's own `FromRow` for whichever pool is in use ([`FromDbRow`]), and the
//! SQL this crate writes is rendered per [`Dialect`]: `$1` or `?` placeholders, `ILIKE` or
//! `LIKE`, explicit null ordering on SQLite, exact prefix/suffix matching where SQLite's
//! `LIKE` would ignore case.
//!
//! # No SQL injection
//!
//! Every value a client sends is a bound parameter; every identifier comes from code (the
//! [`Entity`] columns, the [`Fields`] whitelist) and is quoted. A sort or filter field
//! outside the whitelist, an operator its type does not have, a value that does not parse or
//! a forged cursor is a [`QueryError`] with a 422 [`status`](QueryError::status).
//!
//! # Counting
//!
//! [`CountStrategy::Separate`] (the default) runs `SELECT count(*)` with the page's
//! conditions — at a million rows about six times faster than `count(*) OVER ()`
//! ([`CountStrategy::Window`], the reference's default) — and skips it when a short page
//! already tells the total. For deep pages use [`QueryOperations::query_keyset`]: its
//! opaque cursor is the base64url JSON of the ordering and the last row's sort value and id,
//! continued with a row-value comparison `(col, id) > (…)` whose cost does not grow with the
//! depth.

mod crud;
mod db;
mod entity;
mod error;
mod filter;
mod listing;
#[cfg(feature = "bus")]
pub mod outbox;
mod pagination;
mod query;
mod session;
mod sql;
mod transaction;
mod value;

pub use crud::CrudOperations;
pub use db::{Db, FromDbRow, Row};
pub use entity::{CREATED_AT, Column, Entity, Identifiable, UPDATED_AT};
pub use error::QueryError;
pub use filter::{Field, Fields, FilterOperator};
pub use listing::{FieldSet, FilterFor};
pub use pagination::{
    DEFAULT_MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE, Direction, FilterModel, FilterValue, Paginated,
    PaginatedFilter, PaginationConfig, SortModel,
};
pub use query::{
    CountStrategy, DateOrderedFilter, DateOrderedInjector, KeysetPage, QueryInjector,
    QueryOperations, Select,
};
pub use session::{Connection, Isolation, Session, SessionConnection};
pub use sql::{Dialect, Sql};
pub use transaction::{
    NoTransaction, NoTransactionLayer, NoTransactionService, Transaction, TransactionLayer,
    use_session, use_transaction,
};
pub use value::{ColumnType, Value};

/// Re-exported so entities can `#[derive(sqlx::FromRow)]` with the same sqlx.
pub use sqlx;
