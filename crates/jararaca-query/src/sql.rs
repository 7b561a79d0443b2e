//! SQL text with bound parameters, written once for both dialects.

use std::borrow::Cow;
use std::fmt::Write;

use crate::{QueryError, Value};

/// The SQL dialect of a database: what differs between PostgreSQL and SQLite in the SQL this
/// crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: `$1` placeholders, `ILIKE`.
    Postgres,
    /// SQLite: `?` placeholders, `LIKE` (case-insensitive for ASCII), explicit null ordering.
    Sqlite,
}

impl Dialect {
    /// The placeholder of the `n`th parameter (1-based).
    pub fn placeholder(self, n: usize, out: &mut String) {
        match self {
            // Writing to a String cannot fail.
            Self::Postgres => {
                let _ = write!(out, "${n}");
            }
            Self::Sqlite => out.push('?'),
        }
    }

    /// The case-insensitive `LIKE` operator.
    pub fn ilike(self) -> &'static str {
        match self {
            Self::Postgres => "ILIKE",
            Self::Sqlite => "LIKE",
        }
    }

    /// `ASC`/`DESC` with PostgreSQL's null placement (nulls last ascending, first descending),
    /// so both databases order rows the same way.
    pub fn order(self, descending: bool) -> &'static str {
        match (self, descending) {
            (Self::Postgres, false) => " ASC",
            (Self::Postgres, true) => " DESC",
            (Self::Sqlite, false) => " ASC NULLS LAST",
            (Self::Sqlite, true) => " DESC NULLS FIRST",
        }
    }

    /// Appends `name` as a quoted identifier. Quotes inside are doubled, so no name can end
    /// the identifier early; `a.b` is quoted as one identifier, not a qualified name.
    pub fn quote_ident(self, name: &str, out: &mut String) {
        out.push('"');
        for c in name.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(Cow<'static, str>),
    Ident(Cow<'static, str>),
    Param(Value),
    ILike,
}

/// A fragment of SQL: text, quoted identifiers and bound values, rendered for a [`Dialect`]
/// when it runs.
///
/// Text comes only from `&'static str` (or [`Sql::push_unchecked`], named so it is never
/// handed user input); identifiers are quoted; values are always bound parameters:
///
/// ```
/// use jararaca_query::{Dialect, Sql};
///
/// let mut sql = Sql::new();
/// sql.push("SELECT * FROM ").ident("tasks").push(" WHERE ").ident("title");
/// sql.push(" = ").bind("' OR 1=1 --");
/// assert_eq!(
///     sql.render(Dialect::Postgres).0,
///     r#"SELECT * FROM "tasks" WHERE "title" = $1"#
/// );
/// assert_eq!(sql.render(Dialect::Sqlite).0, r#"SELECT * FROM "tasks" WHERE "title" = ?"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pieces: Vec<Piece>,
}

impl Sql {
    /// An empty fragment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &'static str) -> &mut Self {
        self.pieces.push(Piece::Text(Cow::Borrowed(text)));
        self
    }

    /// Appends SQL text built at run time. Never pass it anything a client sent: use
    /// [`Sql::bind`] for values and [`Sql::ident`] for names.
    pub fn push_unchecked(&mut self, text: impl Into<String>) -> &mut Self {
        self.pieces.push(Piece::Text(Cow::Owned(text.into())));
        self
    }

    /// Appends a quoted identifier (a table or column name).
    pub fn ident(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Self {
        self.pieces.push(Piece::Ident(name.into()));
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.pieces.push(Piece::Param(value.into()));
        self
    }

    /// Appends the dialect's case-insensitive `LIKE` operator.
    pub fn ilike(&mut self) -> &mut Self {
        self.pieces.push(Piece::ILike);
        self
    }

    /// Appends another fragment.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.pieces.extend(other.pieces);
        self
    }

    /// Appends `items` separated by `separator`.
    pub fn join(
        &mut self,
        items: impl IntoIterator<Item = Sql>,
        separator: &'static str,
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(separator);
            }
            self.append(item);
        }
        self
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The SQL text for `dialect` and the values to bind, in placeholder order.
    pub fn render(&self, dialect: Dialect) -> (String, Vec<&Value>) {
        let mut text = String::new();
        let mut values = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Ident(name) => dialect.quote_ident(name, &mut text),
                Piece::Param(v) => {
                    values.push(v);
                    dialect.placeholder(values.len(), &mut text);
                }
                Piece::ILike => text.push_str(dialect.ilike()),
            }
        }
        (text, values)
    }

    /// Renders for PostgreSQL with the values encoded as arguments.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self) -> Result<(String, sqlx::postgres::PgArguments), QueryError> {
        let (text, values) = self.render(Dialect::Postgres);
        let mut args = sqlx::postgres::PgArguments::default();
        for value in values {
            postgres_can_store(value)?;
            bind_value(&mut args, value)
                .map_err(|e| QueryError::Database(sqlx::Error::Encode(e)))?;
        }
        Ok((text, args))
    }

    /// Renders for SQLite with the values encoded as arguments.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(&self) -> Result<(String, sqlx::sqlite::SqliteArguments), QueryError> {
        let (text, values) = self.render(Dialect::Sqlite);
        let mut args = sqlx::sqlite::SqliteArguments::default();
        for value in values {
            bind_value(&mut args, value)
                .map_err(|e| QueryError::Database(sqlx::Error::Encode(e)))?;
        }
        Ok((text, args))
    }
}

/// Refuses a value PostgreSQL would reject with an encoding error: its `text` and `jsonb`
/// types cannot hold a NUL character.
#[cfg(feature = "postgres")]
fn postgres_can_store(value: &Value) -> Result<(), QueryError> {
    fn json_has_nul(json: &serde_json::Value) -> bool {
        match json {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(json_has_nul),
            serde_json::Value::Object(map) => map
                .iter()
                .any(|(key, value)| key.contains('\0') || json_has_nul(value)),
            _ => false,
        }
    }
    let nul = match value {
        Value::Text(text) => text.contains('\0'),
        Value::Json(json) => json_has_nul(json),
        _ => false,
    };
    if nul {
        return Err(QueryError::Unstorable(
            "a text value contains a NUL character (\\0), which cannot be stored".to_owned(),
        ));
    }
    Ok(())
}

/// Adds `value` to `args`, typed for the database. Both databases encode every [`Value`].
fn bind_value<A>(args: &mut A, value: &Value) -> Result<(), sqlx::error::BoxDynError>
where
    A: sqlx::Arguments,
    for<'t> String: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> uuid::Uuid: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> bool: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> i64: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> f64: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> chrono::NaiveDate: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> chrono::DateTime<chrono::Utc>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> sqlx::types::Json<serde_json::Value>:
        sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<String>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<uuid::Uuid>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<bool>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<i64>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<f64>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<chrono::NaiveDate>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<chrono::DateTime<chrono::Utc>>:
        sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<sqlx::types::Json<serde_json::Value>>:
        sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
{
    use crate::ColumnType as T;
    match value {
        Value::Null(T::Text) => args.add(None::<String>),
        Value::Null(T::Uuid) => args.add(None::<uuid::Uuid>),
        Value::Null(T::Bool) => args.add(None::<bool>),
        Value::Null(T::Int) => args.add(None::<i64>),
        Value::Null(T::Float) => args.add(None::<f64>),
        Value::Null(T::Date) => args.add(None::<chrono::NaiveDate>),
        Value::Null(T::DateTime) => args.add(None::<chrono::DateTime<chrono::Utc>>),
        Value::Null(T::Json) => args.add(None::<sqlx::types::Json<serde_json::Value>>),
        Value::Text(s) => args.add(s.clone()),
        Value::Uuid(u) => args.add(*u),
        Value::Bool(b) => args.add(*b),
        Value::Int(i) => args.add(*i),
        Value::Float(f) => args.add(*f),
        Value::Date(d) => args.add(*d),
        Value::DateTime(t) => args.add(*t),
        Value::Json(j) => args.add(sqlx::types::Json(j.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_identifiers_stay_one_quoted_identifier() {
        let mut sql = Sql::new();
        sql.ident(r#"name"; DROP TABLE x; --"#);
        assert_eq!(
            sql.render(Dialect::Postgres).0,
            r#""name""; DROP TABLE x; --""#
        );
    }

    #[test]
    fn placeholders_are_numbered_across_appended_fragments() {
        let mut a = Sql::new();
        a.ident("a").push(" = ").bind(1i64);
        let mut b = Sql::new();
        b.ident("b").push(" ").ilike().push(" ").bind("x");
        let mut all = Sql::new();
        all.join([a, b], " AND ");
        let (pg, values) = all.render(Dialect::Postgres);
        assert_eq!(pg, r#""a" = $1 AND "b" ILIKE $2"#);
        assert_eq!(values.len(), 2);
        assert_eq!(all.render(Dialect::Sqlite).0, r#""a" = ? AND "b" LIKE ?"#);
    }
}
