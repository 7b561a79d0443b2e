//! Create, read, update and delete by id.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::entity::{CREATED_AT, UPDATED_AT};
use crate::{ColumnType, Entity, QueryError, Session, Sql, Value, use_session};

/// The current time as both databases store it (microseconds), so a value written and read
/// back compares equal.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `"a", "b", …` for the entity's columns.
pub(crate) fn select_list<E: Entity>(sql: &mut Sql) {
    for (i, column) in E::COLUMNS.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(column.name);
    }
}

/// `("id" IN ($1, $2, …))`.
fn id_in<E: Entity>(sql: &mut Sql, ids: &[Uuid]) {
    sql.ident(E::ID).push(" IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(*id);
    }
    sql.push(")");
}

fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Where an operations value runs its statements.
#[derive(Clone)]
pub(crate) enum Source {
    Ambient,
    Fixed(Session),
}

impl Source {
    pub(crate) fn session(&self) -> Result<Session, QueryError> {
        match self {
            Self::Ambient => use_session(),
            Self::Fixed(s) => Ok(s.clone()),
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ambient => f.write_str("Ambient"),
            Self::Fixed(s) => fmt::Debug::fmt(s, f),
        }
    }
}

/// Create, read, update and delete for an [`Entity`] (the reference's `CRUDOperations`).
///
/// [`CrudOperations::new`] runs on the current unit of work's session ([`use_session`]), so
/// one value can live in the DI container and serve every unit; [`CrudOperations::on`] runs on
/// the session you give it.
pub struct CrudOperations<E> {
    source: Source,
    entity: PhantomData<fn() -> E>,
}

impl<E> Clone for CrudOperations<E> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            entity: PhantomData,
        }
    }
}

impl<E: Entity> fmt::Debug for CrudOperations<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrudOperations")
            .field("table", &E::TABLE)
            .field("session", &self.source)
            .finish()
    }
}

impl<E: Entity> Default for CrudOperations<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Entity> CrudOperations<E> {
    /// Operations on the current unit of work's session.
    pub fn new() -> Self {
        Self {
            source: Source::Ambient,
            entity: PhantomData,
        }
    }

    /// Operations on `session`.
    pub fn on(session: Session) -> Self {
        Self {
            source: Source::Fixed(session),
            entity: PhantomData,
        }
    }

    fn session(&self) -> Result<Session, QueryError> {
        self.source.session()
    }

    fn not_found(id: Uuid) -> QueryError {
        QueryError::NotFound {
            entity: E::TABLE,
            id,
        }
    }

    /// Inserts `entity` and returns the row as stored.
    pub async fn create(&self, entity: &E) -> Result<E, QueryError> {
        let mut values = entity.values()?;
        if E::TIMESTAMPS {
            let now = now();
            for name in [CREATED_AT, UPDATED_AT] {
                match values.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => *v = Value::DateTime(now),
                    None => values.push((name, Value::DateTime(now))),
                }
            }
        }
        let mut sql = Sql::new();
        sql.push("INSERT INTO ").ident(E::TABLE).push(" (");
        for (i, (name, _)) in values.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(*name);
        }
        sql.push(") VALUES (");
        for (i, (_, value)) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(value);
        }
        sql.push(") RETURNING ");
        select_list::<E>(&mut sql);
        let session = self.session()?;
        session
            .fetch_optional(&sql)
            .await?
            .ok_or_else(|| Self::not_found(entity.id()))
    }

    /// The entity with `id`, or [`QueryError::NotFound`].
    pub async fn get(&self, id: Uuid) -> Result<E, QueryError> {
        self.find(id).await?.ok_or_else(|| Self::not_found(id))
    }

    /// The entity with `id`, if any.
    pub async fn find(&self, id: Uuid) -> Result<Option<E>, QueryError> {
        let mut sql = Sql::new();
        sql.push("SELECT ");
        select_list::<E>(&mut sql);
        sql.push(" FROM ")
            .ident(E::TABLE)
            .push(" WHERE ")
            .ident(E::ID)
            .push(" = ")
            .bind(id);
        self.session()?.fetch_optional(&sql).await
    }

    /// The entities whose ids are in `ids` (missing ids are skipped; order is unspecified).
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<E>, QueryError> {
        let ids = distinct(ids);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new();
        sql.push("SELECT ");
        select_list::<E>(&mut sql);
        sql.push(" FROM ").ident(E::TABLE).push(" WHERE ");
        id_in::<E>(&mut sql, &ids);
        self.session()?.fetch_all(&sql).await
    }

    /// Writes every column of `entity` to the row with its id; returns the row as stored.
    pub async fn update(&self, entity: &E) -> Result<E, QueryError> {
        self.update_by_id(entity.id(), entity).await
    }

    /// Writes every column of `entity` (except the id and `created_at`) to the row with
    /// `id`; returns the row as stored, or [`QueryError::NotFound`].
    pub async fn update_by_id(&self, id: Uuid, entity: &E) -> Result<E, QueryError> {
        let mut values: Vec<_> = entity
            .values()?
            .into_iter()
            .filter(|(name, _)| *name != E::ID && !(E::TIMESTAMPS && *name == CREATED_AT))
            .collect();
        if E::TIMESTAMPS {
            match values.iter_mut().find(|(n, _)| *n == UPDATED_AT) {
                Some((_, v)) => *v = Value::DateTime(now()),
                None => values.push((UPDATED_AT, Value::DateTime(now()))),
            }
        }
        let mut sql = Sql::new();
        sql.push("UPDATE ").ident(E::TABLE).push(" SET ");
        for (i, (name, value)) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(name).push(" = ").bind(value);
        }
        sql.push(" WHERE ").ident(E::ID).push(" = ").bind(id);
        sql.push(" RETURNING ");
        select_list::<E>(&mut sql);
        self.session()?
            .fetch_optional(&sql)
            .await?
            .ok_or_else(|| Self::not_found(id))
    }

    /// Deletes `entity`'s row; `false` if there was none.
    pub async fn delete(&self, entity: &E) -> Result<bool, QueryError> {
        self.delete_by_id(entity.id()).await
    }

    /// Deletes the row with `id`; `false` if there was none.
    pub async fn delete_by_id(&self, id: Uuid) -> Result<bool, QueryError> {
        let mut sql = Sql::new();
        sql.push("DELETE FROM ")
            .ident(E::TABLE)
            .push(" WHERE ")
            .ident(E::ID)
            .push(" = ")
            .bind(id);
        Ok(self.session()?.execute(&sql).await? > 0)
    }

    /// Whether a row has `id`.
    pub async fn exists(&self, id: Uuid) -> Result<bool, QueryError> {
        Ok(!self.intersects(&[id]).await?.is_empty())
    }

    /// Whether at least one of `ids` exists.
    pub async fn exists_some(&self, ids: &[Uuid]) -> Result<bool, QueryError> {
        let ids = distinct(ids);
        if ids.is_empty() {
            return Ok(false);
        }
        let mut sql = Sql::new();
        sql.push("SELECT count(*) FROM (SELECT 1 AS one FROM ")
            .ident(E::TABLE)
            .push(" WHERE ");
        id_in::<E>(&mut sql, &ids);
        sql.push(" LIMIT 1) AS found");
        Ok(self.session()?.fetch_i64(&sql).await? > 0)
    }

    /// Whether every one of `ids` exists (true for none).
    pub async fn exists_all(&self, ids: &[Uuid]) -> Result<bool, QueryError> {
        let ids = distinct(ids);
        if ids.is_empty() {
            return Ok(true);
        }
        let mut sql = Sql::new();
        sql.push("SELECT count(*) FROM ")
            .ident(E::TABLE)
            .push(" WHERE ");
        id_in::<E>(&mut sql, &ids);
        Ok(self.session()?.fetch_i64(&sql).await? == ids.len() as i64)
    }

    /// The ids among `ids` that exist, in the order given.
    pub async fn intersects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, QueryError> {
        let ids = distinct(ids);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new();
        sql.push("SELECT ")
            .ident(E::ID)
            .push(" FROM ")
            .ident(E::TABLE)
            .push(" WHERE ");
        id_in::<E>(&mut sql, &ids);
        let found: HashSet<Uuid> = self
            .session()?
            .fetch_map(&sql, |row| {
                match row.get_value(E::ID, ColumnType::Uuid)? {
                    Value::Uuid(id) => Ok(Some(id)),
                    _ => Ok(None),
                }
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(ids.into_iter().filter(|id| found.contains(id)).collect())
    }

    /// The ids among `ids` that do not exist, in the order given.
    pub async fn difference(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, QueryError> {
        let found: HashSet<Uuid> = self.intersects(ids).await?.into_iter().collect();
        Ok(distinct(ids)
            .into_iter()
            .filter(|id| !found.contains(id))
            .collect())
    }
}
