//! The whitelist of sortable and filterable fields, and the MUI DataGrid filter operators.

use std::borrow::Cow;

use crate::value::parse_filter_value;
use crate::{ColumnType, Dialect, Entity, FilterModel, FilterValue, QueryError, Sql, Value};

/// A client-visible field: the column it maps to and what may be done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name clients use in sort and filter models.
    pub name: Cow<'static, str>,
    /// The column it maps to.
    pub column: &'static str,
    /// The column's type, which decides the filter operators.
    pub ty: ColumnType,
    /// Whether clients may sort by it.
    pub sortable: bool,
    /// Whether clients may filter on it.
    pub filterable: bool,
}

/// The whitelist of fields clients may sort and filter by (the reference's
/// `FILTER_SORT_ENTITY_ATTR_MAP`). Column names come only from here, never from a request.
///
/// ```
/// use jararaca_query::{ColumnType, Fields};
///
/// let fields = Fields::new()
///     .field("title", "title", ColumnType::Text)
///     .field("createdAt", "created_at", ColumnType::DateTime)
///     .sortable("priority", "priority", ColumnType::Int);
/// assert!(fields.get("title").is_some());
/// assert!(fields.get("title; DROP TABLE tasks").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    fields: Vec<Field>,
}

impl Fields {
    /// An empty whitelist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every column of `E` under its own name, sortable and filterable (JSON columns are
    /// neither).
    pub fn of<E: Entity>() -> Self {
        E::COLUMNS.iter().fold(Self::new(), |fields, c| {
            if c.ty == ColumnType::Json {
                fields
            } else {
                fields.field(c.name, c.name, c.ty)
            }
        })
    }

    fn add(
        mut self,
        name: impl Into<Cow<'static, str>>,
        column: &'static str,
        ty: ColumnType,
        sortable: bool,
        filterable: bool,
    ) -> Self {
        let name = name.into();
        self.fields.retain(|f| f.name != name);
        self.fields.push(Field {
            name,
            column,
            ty,
            sortable,
            filterable,
        });
        self
    }

    /// Adds a field clients may sort and filter by.
    pub fn field(
        self,
        name: impl Into<Cow<'static, str>>,
        column: &'static str,
        ty: ColumnType,
    ) -> Self {
        self.add(name, column, ty, true, true)
    }

    /// Adds a field clients may only sort by.
    pub fn sortable(
        self,
        name: impl Into<Cow<'static, str>>,
        column: &'static str,
        ty: ColumnType,
    ) -> Self {
        self.add(name, column, ty, true, false)
    }

    /// Adds a field clients may only filter on.
    pub fn filterable(
        self,
        name: impl Into<Cow<'static, str>>,
        column: &'static str,
        ty: ColumnType,
    ) -> Self {
        self.add(name, column, ty, false, true)
    }

    /// Removes a field.
    pub fn without(mut self, name: &str) -> Self {
        self.fields.retain(|f| f.name != name);
        self
    }

    /// Every field, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter()
    }

    /// The field named `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    fn allowed(&self, pick: impl Fn(&Field) -> bool) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| pick(f))
            .map(|f| f.name.to_string())
            .collect()
    }

    /// The sortable field `name`, or [`QueryError::UnknownField`].
    pub fn sort_field(&self, name: &str) -> Result<&Field, QueryError> {
        self.get(name)
            .filter(|f| f.sortable)
            .ok_or_else(|| QueryError::UnknownField {
                field: name.to_string(),
                purpose: "sorting",
                allowed: self.allowed(|f| f.sortable),
            })
    }

    /// The filterable field `name`, or [`QueryError::UnknownField`].
    pub fn filter_field(&self, name: &str) -> Result<&Field, QueryError> {
        self.get(name)
            .filter(|f| f.filterable)
            .ok_or_else(|| QueryError::UnknownField {
                field: name.to_string(),
                purpose: "filtering",
                allowed: self.allowed(|f| f.filterable),
            })
    }
}

/// A filter operator, with its wire name. Which apply depends on the column type:
///
/// | type | operators |
/// |---|---|
/// | text | `contains` `doesNotContain` (case-insensitive), `equals` `doesNotEqual` `startsWith` `endsWith` (case-sensitive), `isEmpty` `isNotEmpty` `isAnyOf` |
/// | uuid | `equals` `doesNotEqual` `isEmpty` `isNotEmpty` `isAnyOf` |
/// | date, datetime | `is` `not` `after` `onOrAfter` `before` `onOrBefore` `isEmpty` `isNotEmpty` |
/// | bool | `is` (`"true"` or anything else for false) |
/// | int, float | `=` `!=` `>` `<` `>=` `<=` `isEmpty` `isNotEmpty` `isAnyOf` |
///
/// An empty value (`""`, `[]`) means no filter, as in the reference; `isEmpty` and
/// `isNotEmpty` need no value and always apply. Dates are `YYYY-MM-DD`, date-times RFC 3339
/// (the reference's `%Y-%m-%dT%H:%M:%S.%fZ` included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterOperator {
    /// `contains`
    Contains,
    /// `doesNotContain`
    DoesNotContain,
    /// `equals`, `is` (date, bool), `=`
    Equals,
    /// `doesNotEqual`, `not`, `!=`
    NotEquals,
    /// `startsWith`
    StartsWith,
    /// `endsWith`
    EndsWith,
    /// `after`, `>`
    Greater,
    /// `onOrAfter`, `>=`
    GreaterOrEqual,
    /// `before`, `<`
    Less,
    /// `onOrBefore`, `<=`
    LessOrEqual,
    /// `isEmpty`
    IsEmpty,
    /// `isNotEmpty`
    IsNotEmpty,
    /// `isAnyOf`
    IsAnyOf,
}

impl FilterOperator {
    /// The operators of a column type, as `(wire name, operator)`.
    pub fn for_type(ty: ColumnType) -> &'static [(&'static str, FilterOperator)] {
        use FilterOperator as O;
        match ty {
            ColumnType::Text => &[
                ("contains", O::Contains),
                ("doesNotContain", O::DoesNotContain),
                ("equals", O::Equals),
                ("doesNotEqual", O::NotEquals),
                ("startsWith", O::StartsWith),
                ("endsWith", O::EndsWith),
                ("isEmpty", O::IsEmpty),
                ("isNotEmpty", O::IsNotEmpty),
                ("isAnyOf", O::IsAnyOf),
            ],
            ColumnType::Uuid => &[
                ("equals", O::Equals),
                ("doesNotEqual", O::NotEquals),
                ("isEmpty", O::IsEmpty),
                ("isNotEmpty", O::IsNotEmpty),
                ("isAnyOf", O::IsAnyOf),
            ],
            ColumnType::Date | ColumnType::DateTime => &[
                ("is", O::Equals),
                ("not", O::NotEquals),
                ("after", O::Greater),
                ("onOrAfter", O::GreaterOrEqual),
                ("before", O::Less),
                ("onOrBefore", O::LessOrEqual),
                ("isEmpty", O::IsEmpty),
                ("isNotEmpty", O::IsNotEmpty),
            ],
            ColumnType::Bool => &[("is", O::Equals)],
            ColumnType::Int | ColumnType::Float => &[
                ("=", O::Equals),
                ("!=", O::NotEquals),
                (">", O::Greater),
                ("<", O::Less),
                (">=", O::GreaterOrEqual),
                ("<=", O::LessOrEqual),
                ("isEmpty", O::IsEmpty),
                ("isNotEmpty", O::IsNotEmpty),
                ("isAnyOf", O::IsAnyOf),
            ],
            ColumnType::Json => &[],
        }
    }

    /// The operator named `name` for a column of type `ty`.
    pub fn parse(name: &str, ty: ColumnType) -> Option<Self> {
        Self::for_type(ty)
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }
}

/// `%`, `_` and `\` escaped for `LIKE … ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The condition for one filter model, or `None` when it filters nothing (an empty value).
pub(crate) fn condition(
    fields: &Fields,
    model: &FilterModel,
    dialect: Dialect,
) -> Result<Option<Sql>, QueryError> {
    use FilterOperator as O;
    let field = fields.filter_field(&model.field)?;
    let op = FilterOperator::parse(&model.operator, field.ty).ok_or_else(|| {
        QueryError::UnknownOperator {
            field: model.field.clone(),
            operator: model.operator.clone(),
            column_type: field.ty.as_str(),
            allowed: FilterOperator::for_type(field.ty)
                .iter()
                .map(|(n, _)| *n)
                .collect(),
        }
    })?;
    let mut sql = Sql::new();
    let col = field.column;
    match op {
        O::IsEmpty if field.ty == ColumnType::Text => {
            sql.push("(")
                .ident(col)
                .push(" IS NULL OR ")
                .ident(col)
                .push(" = '')");
            return Ok(Some(sql));
        }
        O::IsNotEmpty if field.ty == ColumnType::Text => {
            sql.push("(")
                .ident(col)
                .push(" IS NOT NULL AND ")
                .ident(col)
                .push(" <> '')");
            return Ok(Some(sql));
        }
        O::IsEmpty => {
            sql.ident(col).push(" IS NULL");
            return Ok(Some(sql));
        }
        O::IsNotEmpty => {
            sql.ident(col).push(" IS NOT NULL");
            return Ok(Some(sql));
        }
        _ => {}
    }
    if model.value.is_empty() {
        return Ok(None);
    }
    if op == O::IsAnyOf {
        let raw: Vec<&str> = match &model.value {
            FilterValue::One(s) => vec![s.as_str()],
            FilterValue::Many(v) => v.iter().map(String::as_str).collect(),
        };
        let values = raw
            .into_iter()
            .map(|r| parse_filter_value(&model.field, r, field.ty))
            .collect::<Result<Vec<_>, _>>()?;
        sql.ident(col).push(" IN (");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(value);
        }
        sql.push(")");
        return Ok(Some(sql));
    }
    let raw = match &model.value {
        FilterValue::One(s) => s.as_str(),
        // The reference reads the first item of a list for single-value operators on dates
        // and booleans and rejects lists for numbers; a list here takes its first item only
        // where it is unambiguous.
        FilterValue::Many(v)
            if v.len() == 1
                && matches!(
                    field.ty,
                    ColumnType::Date | ColumnType::DateTime | ColumnType::Bool
                ) =>
        {
            v[0].as_str()
        }
        FilterValue::Many(_) => {
            return Err(QueryError::InvalidValue {
                field: model.field.clone(),
                value: serde_json::to_string(&model.value).unwrap_or_default(),
                expected: "a single value (only isAnyOf takes a list)",
            });
        }
    };
    if matches!(field.ty, ColumnType::Date | ColumnType::DateTime) && raw.trim().is_empty() {
        return Ok(None);
    }
    let value = parse_filter_value(&model.field, raw, field.ty)?;
    let text = |v: &Value| match v {
        Value::Text(s) => s.clone(),
        other => other.to_json().to_string(),
    };
    match op {
        O::Contains | O::DoesNotContain => {
            if op == O::DoesNotContain {
                sql.push("NOT (");
            }
            sql.ident(col).push(" ").ilike().push(" ");
            sql.bind(format!("%{}%", escape_like(&text(&value))))
                .push(" ESCAPE '\\'");
            if op == O::DoesNotContain {
                sql.push(")");
            }
        }
        O::StartsWith | O::EndsWith => {
            let s = text(&value);
            match dialect {
                // LIKE is case-sensitive on PostgreSQL and can use a text_pattern_ops index.
                Dialect::Postgres => {
                    let pattern = if op == O::StartsWith {
                        format!("{}%", escape_like(&s))
                    } else {
                        format!("%{}", escape_like(&s))
                    };
                    sql.ident(col)
                        .push(" LIKE ")
                        .bind(pattern)
                        .push(" ESCAPE '\\'");
                }
                // SQLite's LIKE ignores case: compare the ends exactly instead.
                Dialect::Sqlite => {
                    if op == O::StartsWith {
                        sql.push("substr(")
                            .ident(col)
                            .push(", 1, length(")
                            .bind(s.clone());
                    } else {
                        sql.push("substr(")
                            .ident(col)
                            .push(", -length(")
                            .bind(s.clone());
                    }
                    sql.push(")) = ").bind(s);
                }
            }
        }
        O::Equals => {
            sql.ident(col).push(" = ").bind(value);
        }
        O::NotEquals => {
            sql.ident(col).push(" <> ").bind(value);
        }
        O::Greater => {
            sql.ident(col).push(" > ").bind(value);
        }
        O::GreaterOrEqual => {
            sql.ident(col).push(" >= ").bind(value);
        }
        O::Less => {
            sql.ident(col).push(" < ").bind(value);
        }
        O::LessOrEqual => {
            sql.ident(col).push(" <= ").bind(value);
        }
        O::IsEmpty | O::IsNotEmpty | O::IsAnyOf => unreachable!("handled above"),
    }
    Ok(Some(sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields::new()
            .field("title", "title", ColumnType::Text)
            .field("n", "n", ColumnType::Int)
            .sortable("rank", "rank", ColumnType::Int)
    }

    fn model(field: &str, operator: &str, value: &str) -> FilterModel {
        FilterModel {
            field: field.into(),
            operator: operator.into(),
            value: FilterValue::One(value.into()),
        }
    }

    #[test]
    fn values_are_bound_and_like_wildcards_escaped() {
        let sql = condition(
            &fields(),
            &model("title", "contains", "50%_off' --"),
            Dialect::Postgres,
        )
        .unwrap()
        .unwrap();
        let (text, values) = sql.render(Dialect::Postgres);
        assert_eq!(text, r#""title" ILIKE $1 ESCAPE '\'"#);
        assert_eq!(values, [&Value::Text(r"%50\%\_off' --%".into())]);
    }

    #[test]
    fn unknown_fields_and_operators_are_client_errors() {
        let err = condition(
            &fields(),
            &model("title\"; DROP TABLE t; --", "equals", "x"),
            Dialect::Sqlite,
        )
        .unwrap_err();
        assert!(matches!(err, QueryError::UnknownField { .. }), "{err}");
        let err = condition(&fields(), &model("rank", "=", "1"), Dialect::Sqlite).unwrap_err();
        assert!(err.to_string().contains("use one of title, n"), "{err}");
        let err = condition(&fields(), &model("n", "contains", "1"), Dialect::Sqlite).unwrap_err();
        assert!(matches!(err, QueryError::UnknownOperator { .. }));
        assert!(err.to_string().contains("=, !=, >"), "{err}");
        let err = condition(&fields(), &model("n", ">", "1 OR 1=1"), Dialect::Sqlite).unwrap_err();
        assert!(matches!(err, QueryError::InvalidValue { .. }));
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn empty_values_filter_nothing_but_is_empty_always_applies() {
        assert_eq!(
            condition(&fields(), &model("title", "equals", ""), Dialect::Sqlite).unwrap(),
            None
        );
        let sql = condition(&fields(), &model("n", "isEmpty", ""), Dialect::Sqlite)
            .unwrap()
            .unwrap();
        assert_eq!(sql.render(Dialect::Sqlite).0, r#""n" IS NULL"#);
    }
}
