//! Paginated, sorted, filtered listing (the reference's `QueryOperations`), with offset and
//! keyset (cursor) pagination.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crud::{Source, select_list};
use crate::filter::condition;
use crate::{
    ColumnType, Dialect, Direction, Entity, Fields, Paginated, PaginatedFilter, PaginationConfig,
    QueryError, Session, Sql, Value,
};

const TOTAL_COLUMN: &str = "__jararaca_total";

/// A `SELECT` being built: the conditions and orderings that injectors, sort models and filter
/// models add.
#[derive(Debug)]
pub struct Select {
    dialect: Dialect,
    table: &'static str,
    conditions: Vec<Sql>,
    order: Vec<(Cow<'static, str>, Direction)>,
}

impl Select {
    fn new(dialect: Dialect, table: &'static str) -> Self {
        Self {
            dialect,
            table,
            conditions: Vec::new(),
            order: Vec::new(),
        }
    }

    /// The dialect the query will run in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The table being queried.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// Adds a condition that every row must meet (joined with `AND`). Build it with
    /// [`Sql::ident`] and [`Sql::bind`]; it is parenthesized.
    pub fn and_where(&mut self, condition: Sql) -> &mut Self {
        self.conditions.push(condition);
        self
    }

    /// Orders by `column` after the orderings added so far.
    pub fn order_by(
        &mut self,
        column: impl Into<Cow<'static, str>>,
        direction: Direction,
    ) -> &mut Self {
        self.order.push((column.into(), direction));
        self
    }

    fn where_clause(&self, sql: &mut Sql) {
        for (i, condition) in self.conditions.iter().enumerate() {
            sql.push(if i == 0 { " WHERE (" } else { " AND (" });
            sql.append(condition.clone());
            sql.push(")");
        }
    }
}

/// Adds conditions (or orderings) to a query from the client's filter (the reference's
/// `QueryInjector`). Closures `Fn(&F, &mut Select) -> Result<(), QueryError>` are injectors.
///
/// ```
/// use jararaca_query::{PaginatedFilter, QueryError, Select, Sql};
///
/// #[derive(serde::Deserialize)]
/// struct TaskFilter {
///     #[serde(flatten)]
///     page: PaginatedFilter,
///     done: Option<bool>,
/// }
/// impl AsRef<PaginatedFilter> for TaskFilter {
///     fn as_ref(&self) -> &PaginatedFilter {
///         &self.page
///     }
/// }
///
/// let only_done = |filter: &TaskFilter, select: &mut Select| {
///     if let Some(done) = filter.done {
///         let mut cond = Sql::new();
///         cond.ident("done").push(" = ").bind(done);
///         select.and_where(cond);
///     }
///     Ok::<_, QueryError>(())
/// };
/// # let _ = only_done;
/// ```
pub trait QueryInjector<F>: Send + Sync {
    /// Adds to `select` what `filter` asks for.
    fn inject(&self, filter: &F, select: &mut Select) -> Result<(), QueryError>;
}

impl<F, T> QueryInjector<F> for T
where
    T: Fn(&F, &mut Select) -> Result<(), QueryError> + Send + Sync,
{
    fn inject(&self, filter: &F, select: &mut Select) -> Result<(), QueryError> {
        self(filter, select)
    }
}

/// `{"order_by": "asc"|"desc"}`: order by creation time (the reference's
/// `DateOrderedFilter`). Flatten it into your filter and add a [`DateOrderedInjector`].
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DateOrderedFilter {
    /// The direction, `"asc"` by default.
    #[serde(default)]
    pub order_by: Direction,
}

impl AsRef<DateOrderedFilter> for DateOrderedFilter {
    fn as_ref(&self) -> &DateOrderedFilter {
        self
    }
}

/// Orders by `created_at` in the filter's [`DateOrderedFilter::order_by`] direction (the
/// reference's `DateOrderedQueryInjector`).
#[derive(Debug, Clone, Copy)]
pub struct DateOrderedInjector {
    column: &'static str,
}

impl Default for DateOrderedInjector {
    fn default() -> Self {
        Self::new()
    }
}

impl DateOrderedInjector {
    /// Orders by `created_at`.
    pub fn new() -> Self {
        Self {
            column: crate::entity::CREATED_AT,
        }
    }

    /// Orders by another timestamp column.
    pub fn column(column: &'static str) -> Self {
        Self { column }
    }
}

impl<F: AsRef<DateOrderedFilter>> QueryInjector<F> for DateOrderedInjector {
    fn inject(&self, filter: &F, select: &mut Select) -> Result<(), QueryError> {
        select.order_by(self.column, filter.as_ref().order_by);
        Ok(())
    }
}

/// How a page learns the total number of matching rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountStrategy {
    /// A second `SELECT count(*)` with the same conditions (the default: at a million rows it
    /// is about six times faster than the window count, and skipped when the page itself
    /// shows the total — a short page).
    #[default]
    Separate,
    /// `count(*) OVER ()` in the page query (the reference's `"total_over"`).
    Window,
    /// No count: `unpaginated_total` is -1 and `total_pages` 0 (the reference's `"none"`).
    None,
}

/// A page of keyset pagination: `{"items", "next_cursor"}`. Pass `next_cursor` back to get
/// the following page; it is `null` on the last page.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetPage<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The opaque cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

impl<T> KeysetPage<T> {
    /// Transforms every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> KeysetPage<U> {
        KeysetPage {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// What a cursor carries: the ordering it belongs to and the last row's position in it.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// The sort field (none: ordered by id alone).
    f: Option<String>,
    d: Direction,
    /// The last row's sort value.
    v: serde_json::Value,
    /// The last row's id.
    i: Uuid,
}

impl Cursor {
    fn encode(&self) -> Result<String, QueryError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| QueryError::InvalidCursor(format!("cannot encode: {e}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(raw: &str) -> Result<Self, QueryError> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| {
            QueryError::InvalidCursor("it is not a cursor this service issued".into())
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|_| QueryError::InvalidCursor("it is not a cursor this service issued".into()))
    }
}

/// Paginated, sorted and filtered listing of an [`Entity`] (the reference's
/// `QueryOperations`).
///
/// A query applies, in order: the injectors given at construction, the per-call injectors,
/// the client's sort models, the client's filter models — then orders by the id last (in the
/// direction of the last ordering), so pages are stable. Sort and filter fields must be in the [`Fields`] whitelist.
pub struct QueryOperations<E, F = PaginatedFilter> {
    source: Source,
    fields: Arc<Fields>,
    injectors: Vec<Arc<dyn QueryInjector<F>>>,
    count: CountStrategy,
    config: PaginationConfig,
    entity: PhantomData<fn() -> E>,
}

impl<E, F> Clone for QueryOperations<E, F> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            fields: Arc::clone(&self.fields),
            injectors: self.injectors.clone(),
            count: self.count,
            config: self.config,
            entity: PhantomData,
        }
    }
}

impl<E: Entity, F> fmt::Debug for QueryOperations<E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryOperations")
            .field("table", &E::TABLE)
            .field("session", &self.source)
            .field("fields", &self.fields)
            .field("injectors", &self.injectors.len())
            .field("count", &self.count)
            .field("config", &self.config)
            .finish()
    }
}

impl<E, F> QueryOperations<E, F>
where
    E: Entity,
    F: AsRef<PaginatedFilter> + Send + Sync,
{
    /// Listing on the current unit of work's session, with `fields` as the whitelist.
    pub fn new(fields: Fields) -> Self {
        Self {
            source: Source::Ambient,
            fields: Arc::new(fields),
            injectors: Vec::new(),
            count: CountStrategy::default(),
            config: PaginationConfig::global(),
            entity: PhantomData,
        }
    }

    /// Runs on `session` instead of the unit of work's.
    pub fn on(mut self, session: Session) -> Self {
        self.source = Source::Fixed(session);
        self
    }

    /// Adds an injector applied to every query (the reference's `filters_functions`).
    pub fn injector(mut self, injector: impl QueryInjector<F> + 'static) -> Self {
        self.injectors.push(Arc::new(injector));
        self
    }

    /// Counts with `strategy` (default [`CountStrategy::Separate`]).
    pub fn count(mut self, strategy: CountStrategy) -> Self {
        self.count = strategy;
        self
    }

    /// Uses `config`'s page-size bounds instead of the environment's.
    pub fn pagination(mut self, config: PaginationConfig) -> Self {
        self.config = config;
        self
    }

    /// The whitelist.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    fn select(
        &self,
        dialect: Dialect,
        filter: &F,
        extra: &[&dyn QueryInjector<F>],
        apply_sort: bool,
    ) -> Result<Select, QueryError> {
        let mut select = Select::new(dialect, E::TABLE);
        for injector in &self.injectors {
            injector.inject(filter, &mut select)?;
        }
        for injector in extra {
            injector.inject(filter, &mut select)?;
        }
        let page = filter.as_ref();
        if apply_sort {
            for sort in &page.sort_models {
                let field = self.fields.sort_field(&sort.field)?;
                select.order_by(field.column, sort.direction);
            }
        }
        for model in &page.filter_models {
            if let Some(cond) = condition(&self.fields, model, dialect)? {
                select.and_where(cond);
            }
        }
        Ok(select)
    }

    /// One page of the entities matching `filter`.
    pub async fn query(&self, filter: &F) -> Result<Paginated<E>, QueryError> {
        self.query_with(filter, &[]).await
    }

    /// One page, with `interceptors` applied after the construction-time injectors (the
    /// reference's per-call `interceptors`).
    pub async fn query_with(
        &self,
        filter: &F,
        interceptors: &[&dyn QueryInjector<F>],
    ) -> Result<Paginated<E>, QueryError> {
        let page = filter.as_ref();
        page.validate(&self.config)?;
        let session = self.source.session()?;
        let dialect = session.dialect();
        let mut select = self.select(dialect, filter, interceptors, true)?;
        if !select.order.iter().any(|(c, _)| c == E::ID) {
            // Ties break by id in the last ordering's direction: the order keyset pages use.
            let direction = select.order.last().map_or(Direction::Asc, |(_, d)| *d);
            select.order_by(E::ID, direction);
        }

        let window = self.count == CountStrategy::Window;
        let mut sql = Sql::new();
        sql.push("SELECT ");
        select_list::<E>(&mut sql);
        if window {
            sql.push(", count(*) OVER () AS ").ident(TOTAL_COLUMN);
        }
        sql.push(" FROM ").ident(E::TABLE);
        select.where_clause(&mut sql);
        sql.push(" ORDER BY ");
        for (i, (column, direction)) in select.order.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(column.clone())
                .push(dialect.order(direction.is_desc()));
        }
        let offset = i64::try_from(page.offset())
            .map_err(|_| QueryError::InvalidPagination("page is too large".into()))?;
        sql.push(" LIMIT ")
            .bind(i64::from(page.page_size))
            .push(" OFFSET ")
            .bind(offset);

        let rows = session
            .fetch_map(&sql, |row| {
                let total = if window {
                    Some(row.get_i64(TOTAL_COLUMN)?)
                } else {
                    None
                };
                Ok((row.decode::<E>()?, total))
            })
            .await?;
        let window_total = rows.first().and_then(|(_, t)| *t);
        let items: Vec<E> = rows.into_iter().map(|(e, _)| e).collect();

        let short_page = !items.is_empty() && items.len() < page.page_size as usize;
        let unpaginated_total = match self.count {
            CountStrategy::None => -1,
            // A short page is the last one: it tells the total without counting.
            _ if short_page || (items.is_empty() && page.page == 0) => offset + items.len() as i64,
            CountStrategy::Window if window_total.is_some() => window_total.unwrap_or_default(),
            _ => {
                let mut count = Sql::new();
                count.push("SELECT count(*) FROM ").ident(E::TABLE);
                select.where_clause(&mut count);
                session.fetch_i64(&count).await?
            }
        };
        Ok(Paginated::new(items, unpaginated_total, page.page_size))
    }

    /// One page of keyset (cursor) pagination: the page after `cursor` (the first page
    /// without one), ordered by the filter's single sort model (or none) and then the id.
    ///
    /// Unlike `OFFSET`, the cost does not grow with the depth of the page. The filter's `page`
    /// is ignored and injectors' orderings are not applied; the sort field must be a
    /// `NOT NULL` column. A cursor only continues the ordering that issued it.
    pub async fn query_keyset(
        &self,
        filter: &F,
        cursor: Option<&str>,
    ) -> Result<KeysetPage<E>, QueryError> {
        let page = filter.as_ref();
        page.validate(&self.config)?;
        if page.sort_models.len() > 1 {
            return Err(QueryError::InvalidPagination(
                "keyset pagination orders by at most one sort model (and then the id)".into(),
            ));
        }
        let sort = match page.sort_models.first() {
            Some(s) => Some((s, self.fields.sort_field(&s.field)?)),
            None => None,
        };
        let direction = sort.map_or(Direction::Asc, |(s, _)| s.direction);
        let session = self.source.session()?;
        let dialect = session.dialect();
        let mut select = self.select(dialect, filter, &[], false)?;

        if let Some(raw) = cursor {
            let cursor = Cursor::decode(raw)?;
            if cursor.f.as_deref() != sort.map(|(s, _)| s.field.as_str()) || cursor.d != direction {
                return Err(QueryError::InvalidCursor(
                    "it belongs to another ordering".into(),
                ));
            }
            let cmp = if direction.is_desc() { " < " } else { " > " };
            let mut cond = Sql::new();
            match sort {
                Some((_, field)) => {
                    let value = Value::from_json(&cursor.v, field.ty)
                        .filter(|v| !matches!(v, Value::Null(_)))
                        .ok_or_else(|| {
                            QueryError::InvalidCursor(
                                "its position does not fit the sort field".into(),
                            )
                        })?;
                    cond.push("(")
                        .ident(field.column)
                        .push(", ")
                        .ident(E::ID)
                        .push(")");
                    cond.push(if direction.is_desc() { " < (" } else { " > (" });
                    cond.bind(value).push(", ").bind(cursor.i).push(")");
                }
                None => {
                    cond.ident(E::ID);
                    cond.push(cmp);
                    cond.bind(cursor.i);
                }
            }
            select.and_where(cond);
        }

        let mut sql = Sql::new();
        sql.push("SELECT ");
        select_list::<E>(&mut sql);
        sql.push(" FROM ").ident(E::TABLE);
        select.where_clause(&mut sql);
        sql.push(" ORDER BY ");
        if let Some((_, field)) = sort {
            sql.ident(field.column)
                .push(dialect.order(direction.is_desc()))
                .push(", ");
        }
        sql.ident(E::ID).push(dialect.order(direction.is_desc()));
        // One more row than the page tells whether another page follows.
        sql.push(" LIMIT ").bind(i64::from(page.page_size) + 1);

        let sort_column = sort.map(|(_, f)| (f.column, f.ty));
        let mut rows = session
            .fetch_map(&sql, |row| {
                let position = match sort_column {
                    Some((column, ty)) => row.get_value(column, ty)?,
                    None => Value::Null(ColumnType::Uuid),
                };
                Ok((row.decode::<E>()?, position))
            })
            .await?;
        let more = rows.len() > page.page_size as usize;
        rows.truncate(page.page_size as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some((last, position))) => {
                if sort.is_some() && matches!(position, Value::Null(_)) {
                    return Err(QueryError::InvalidPagination(format!(
                        "keyset pagination cannot order by `{}`: a row has NULL there; order by a NOT NULL field",
                        sort.map_or("", |(s, _)| s.field.as_str())
                    )));
                }
                Some(
                    Cursor {
                        f: sort.map(|(s, _)| s.field.clone()),
                        d: direction,
                        v: position.to_json(),
                        i: last.id(),
                    }
                    .encode()?,
                )
            }
            _ => None,
        };
        Ok(KeysetPage {
            items: rows.into_iter().map(|(e, _)| e).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            f: Some("title".into()),
            d: Direction::Desc,
            v: serde_json::json!("x"),
            i: Uuid::nil(),
        };
        let raw = cursor.encode().unwrap();
        assert!(
            raw.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let back = Cursor::decode(&raw).unwrap();
        assert_eq!(back.f.as_deref(), Some("title"));
        assert_eq!(back.d, Direction::Desc);
        for garbage in ["", "' OR 1=1 --", "eyJ4IjoxfQ"] {
            let err = Cursor::decode(garbage).unwrap_err();
            assert_eq!(
                err.status(),
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "{garbage}"
            );
        }
    }
}
