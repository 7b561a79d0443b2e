//! Entities: a table's rows as Rust structs, and the `{id, data}` wire shape.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ColumnType, FromDbRow, QueryError, Value};

/// A column of an entity's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Column {
    /// The column's name, which is also the struct field's serialized name.
    pub name: &'static str,
    /// The column's type.
    pub ty: ColumnType,
}

impl Column {
    /// A column named `name` of type `ty`.
    pub const fn new(name: &'static str, ty: ColumnType) -> Self {
        Self { name, ty }
    }
}

/// The conventional name of the creation time column.
pub const CREATED_AT: &str = "created_at";
/// The conventional name of the last update time column.
pub const UPDATED_AT: &str = "updated_at";

/// A struct stored as a row of one table, with a UUID primary key.
///
/// Rows are read with the struct's `sqlx::FromRow` (derive it) and written from its serde
/// form: each of [`Entity::COLUMNS`] is taken from the serialized field of the same name, so
/// no per-column code is needed. With [`Entity::TIMESTAMPS`] the operations set
/// `created_at`/`updated_at` (type [`ColumnType::DateTime`]) themselves: both on create, the
/// latter on every update.
///
/// ```
/// use jararaca_query::{Column, ColumnType, Entity};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
/// struct Task {
///     id: uuid::Uuid,
///     title: String,
///     done: bool,
///     created_at: chrono::DateTime<chrono::Utc>,
///     updated_at: chrono::DateTime<chrono::Utc>,
/// }
///
/// impl Entity for Task {
///     const TABLE: &'static str = "tasks";
///     const COLUMNS: &'static [Column] = &[
///         Column::new("id", ColumnType::Uuid),
///         Column::new("title", ColumnType::Text),
///         Column::new("done", ColumnType::Bool),
///         Column::new("created_at", ColumnType::DateTime),
///         Column::new("updated_at", ColumnType::DateTime),
///     ];
///     const TIMESTAMPS: bool = true;
///
///     fn id(&self) -> uuid::Uuid {
///         self.id
///     }
/// }
/// ```
pub trait Entity: Serialize + FromDbRow + Send + Sync + 'static {
    /// The table's name.
    const TABLE: &'static str;

    /// Every column the entity reads and writes, including the id (and the timestamps).
    const COLUMNS: &'static [Column];

    /// The primary key column, a [`ColumnType::Uuid`].
    const ID: &'static str = "id";

    /// Whether the table has `created_at`/`updated_at` columns that the operations maintain.
    const TIMESTAMPS: bool = false;

    /// The entity's id.
    fn id(&self) -> Uuid;

    /// The value of every column, in [`Entity::COLUMNS`] order. The default reads them from
    /// the serde form; override it to write values by hand.
    fn values(&self) -> Result<Vec<(&'static str, Value)>, QueryError> {
        let shape = |message: String| QueryError::EntityShape {
            entity: Self::TABLE,
            message,
        };
        let json =
            serde_json::to_value(self).map_err(|e| shape(format!("it does not serialize: {e}")))?;
        let serde_json::Value::Object(mut fields) = json else {
            return Err(shape("it must serialize as a JSON object".to_string()));
        };
        Self::COLUMNS
            .iter()
            .map(|column| {
                let field = fields.remove(column.name).ok_or_else(|| {
                    shape(format!(
                        "column `{}` has no serialized field of that name",
                        column.name
                    ))
                })?;
                let value = Value::from_json(&field, column.ty).ok_or_else(|| {
                    shape(format!(
                        "field `{}` = {field} is not a {}",
                        column.name,
                        column.ty.as_str()
                    ))
                })?;
                Ok((column.name, value))
            })
            .collect()
    }

    /// The entity as `{"id", "data"}`.
    fn to_identifiable(self) -> Identifiable<Self>
    where
        Self: Sized,
    {
        Identifiable {
            id: self.id(),
            data: self,
        }
    }

    /// The column named `name`, if the entity has it.
    fn column(name: &str) -> Option<&'static Column> {
        Self::COLUMNS.iter().find(|c| c.name == name)
    }
}

/// A value with its id, serialized as `{"id": "<uuid>", "data": {…}}` (the reference's
/// `Identifiable[T]`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifiable<T> {
    /// The id.
    pub id: Uuid,
    /// The value.
    pub data: T,
}

impl<T> Identifiable<T> {
    /// Pairs `data` with `id`.
    pub fn new(id: Uuid, data: T) -> Self {
        Self { id, data }
    }

    /// Maps the data, keeping the id.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Identifiable<U> {
        Identifiable {
            id: self.id,
            data: f(self.data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiable_serializes_as_id_and_data() {
        let id = Uuid::nil();
        let json =
            serde_json::to_value(Identifiable::new(id, serde_json::json!({"a": 1}))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "00000000-0000-0000-0000-000000000000", "data": {"a": 1}})
        );
        let back: Identifiable<serde_json::Value> = serde_json::from_value(json).unwrap();
        assert_eq!(back.map(|d| d["a"].clone()).data, serde_json::json!(1));
    }
}
