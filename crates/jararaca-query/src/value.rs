//! Column types and the values bound as query parameters.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use crate::QueryError;

/// The type of a column, which decides how values are bound and which filter operators apply.
///
/// | type | PostgreSQL | SQLite |
/// |---|---|---|
/// | `Text` | `text`, `varchar` | `TEXT` |
/// | `Uuid` | `uuid` | `BLOB` (16 bytes) |
/// | `Bool` | `boolean` | `INTEGER` 0/1 |
/// | `Int` | `bigint` (`integer` works too) | `INTEGER` |
/// | `Float` | `double precision` | `REAL` |
/// | `Date` | `date` | `TEXT` `YYYY-MM-DD` |
/// | `DateTime` | `timestamptz` | `TEXT` RFC 3339 in UTC |
/// | `Json` | `jsonb` | `TEXT` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnType {
    /// Text.
    Text,
    /// A UUID.
    Uuid,
    /// A boolean.
    Bool,
    /// A 64-bit integer.
    Int,
    /// A 64-bit float.
    Float,
    /// A calendar date.
    Date,
    /// A point in time, stored in UTC.
    DateTime,
    /// A JSON document.
    Json,
}

impl ColumnType {
    /// The lower-case name used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Uuid => "uuid",
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Float => "float",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Json => "json",
        }
    }
}

/// A value bound as a query parameter. Values never become SQL text.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL` of a column type (PostgreSQL needs the type).
    Null(ColumnType),
    /// Text.
    Text(String),
    /// A UUID.
    Uuid(Uuid),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A date.
    Date(NaiveDate),
    /// A point in time.
    DateTime(DateTime<Utc>),
    /// A JSON document.
    Json(serde_json::Value),
}

impl Value {
    /// The column type this value binds as.
    pub fn column_type(&self) -> ColumnType {
        match self {
            Self::Null(ty) => *ty,
            Self::Text(_) => ColumnType::Text,
            Self::Uuid(_) => ColumnType::Uuid,
            Self::Bool(_) => ColumnType::Bool,
            Self::Int(_) => ColumnType::Int,
            Self::Float(_) => ColumnType::Float,
            Self::Date(_) => ColumnType::Date,
            Self::DateTime(_) => ColumnType::DateTime,
            Self::Json(_) => ColumnType::Json,
        }
    }

    /// Reads a value of type `ty` from its JSON form (as serde writes entities: UUIDs, dates
    /// and times as strings). `None` when the JSON does not fit the type.
    pub fn from_json(json: &serde_json::Value, ty: ColumnType) -> Option<Self> {
        use serde_json::Value as J;
        if json.is_null() {
            return Some(Self::Null(ty));
        }
        Some(match (ty, json) {
            (ColumnType::Json, j) => Self::Json(j.clone()),
            (ColumnType::Text, J::String(s)) => Self::Text(s.clone()),
            (ColumnType::Uuid, J::String(s)) => Self::Uuid(Uuid::parse_str(s).ok()?),
            (ColumnType::Bool, J::Bool(b)) => Self::Bool(*b),
            (ColumnType::Int, J::Number(n)) => Self::Int(n.as_i64()?),
            (ColumnType::Float, J::Number(n)) => Self::Float(n.as_f64()?),
            (ColumnType::Date, J::String(s)) => Self::Date(parse_date(s)?),
            (ColumnType::DateTime, J::String(s)) => Self::DateTime(parse_datetime(s)?),
            _ => return None,
        })
    }

    /// The JSON form of the value (used in keyset cursors).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Null(_) => J::Null,
            Self::Text(s) => J::String(s.clone()),
            Self::Uuid(u) => J::String(u.to_string()),
            Self::Bool(b) => J::Bool(*b),
            Self::Int(i) => J::from(*i),
            Self::Float(f) => J::from(*f),
            Self::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Self::DateTime(t) => J::String(t.to_rfc3339()),
            Self::Json(j) => j.clone(),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::$v(v.into())
            }
        }
    )*};
}

value_from! {
    String => Text,
    &str => Text,
    Uuid => Uuid,
    bool => Bool,
    i64 => Int,
    i32 => Int,
    f64 => Float,
    NaiveDate => Date,
    DateTime<Utc> => DateTime,
    serde_json::Value => Json,
}

/// Parses `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Parses RFC 3339 (which covers the reference's `%Y-%m-%dT%H:%M:%S.%fZ`), a naive
/// `YYYY-MM-DDTHH:MM:SS[.f]` taken as UTC, or a plain date taken as its UTC midnight.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    parse_date(s).map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// Reads one filter value of type `ty` as a client sent it (a string).
pub(crate) fn parse_filter_value(
    field: &str,
    raw: &str,
    ty: ColumnType,
) -> Result<Value, QueryError> {
    let invalid = |expected| QueryError::InvalidValue {
        field: field.to_string(),
        value: raw.to_string(),
        expected,
    };
    Ok(match ty {
        ColumnType::Text => Value::Text(raw.to_string()),
        ColumnType::Uuid => Value::Uuid(
            Uuid::parse_str(raw.trim())
                .map_err(|_| invalid("a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8"))?,
        ),
        ColumnType::Bool => Value::Bool(raw == "true"),
        ColumnType::Int => {
            let t = raw.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("an integer such as 42 or -7"));
            }
            Value::Int(
                t.parse()
                    .map_err(|_| invalid("an integer that fits in 64 bits"))?,
            )
        }
        ColumnType::Float => Value::Float(
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| invalid("a number such as 1.5"))?,
        ),
        ColumnType::Date => {
            Value::Date(parse_date(raw).ok_or_else(|| invalid("a date as YYYY-MM-DD"))?)
        }
        ColumnType::DateTime => Value::DateTime(
            parse_datetime(raw)
                .ok_or_else(|| invalid("a date-time such as 2024-05-01T12:00:00.000Z"))?,
        ),
        ColumnType::Json => {
            return Err(invalid(
                "a filterable type (JSON columns cannot be filtered)",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_follow_the_column_type() {
        let id = Uuid::new_v4();
        assert_eq!(
            Value::from_json(&serde_json::json!(id.to_string()), ColumnType::Uuid),
            Some(Value::Uuid(id))
        );
        assert_eq!(
            Value::from_json(&serde_json::json!("x"), ColumnType::Int),
            None
        );
        assert_eq!(
            Value::from_json(&serde_json::Value::Null, ColumnType::Date),
            Some(Value::Null(ColumnType::Date))
        );
    }

    #[test]
    fn filter_values_accept_the_reference_formats() {
        let t = parse_filter_value("at", "2024-05-01T12:30:00.000Z", ColumnType::DateTime).unwrap();
        assert_eq!(t.to_json(), serde_json::json!("2024-05-01T12:30:00+00:00"));
        assert!(parse_filter_value("n", "12a", ColumnType::Int).is_err());
        assert!(parse_filter_value("n", "-", ColumnType::Int).is_err());
        assert_eq!(
            parse_filter_value("n", "-12", ColumnType::Int).unwrap(),
            Value::Int(-12)
        );
        assert_eq!(
            parse_filter_value("b", "yes", ColumnType::Bool).unwrap(),
            Value::Bool(false)
        );
        assert!(parse_filter_value("d", "01/02/2024", ColumnType::Date).is_err());
    }
}
