//! [`FilterFor`]: a [`PaginatedFilter`] whose API description names the fields, operators and
//! values a list route accepts, so that what the OpenAPI document promises is what the
//! route's [`QueryOperations`](crate::QueryOperations) answers.

use std::marker::PhantomData;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::{Fields, PaginatedFilter};

/// The whitelist of a list route, named by a type so that the route's description can list
/// it: give the same [`Fields`] to the route's `QueryOperations`.
///
/// ```
/// use jararaca_query::{ColumnType, FieldSet, Fields, FilterFor};
///
/// struct TaskFields;
///
/// impl FieldSet for TaskFields {
///     fn fields() -> Fields {
///         Fields::new().field("title", "title", ColumnType::Text)
///     }
/// }
///
/// // A handler takes `Query<FilterFor<TaskFields>>` and queries with
/// // `QueryOperations::new(TaskFields::fields())`.
/// let filter: FilterFor<TaskFields> = serde_json::from_str(r#"{"page": 1}"#).unwrap();
/// assert_eq!(filter.page, 1);
/// ```
pub trait FieldSet: 'static {
    /// The fields clients may sort and filter by.
    fn fields() -> Fields;
}

/// A [`PaginatedFilter`] on the fields of `F`: the same JSON and the same TypeScript type, but
/// its JSON Schema (with the `schema` feature) lists the sortable fields, each filterable
/// field with its type's operators, and the values each operator takes, so a request valid
/// by the document is one the query accepts.
///
/// It dereferences to the [`PaginatedFilter`], which is what `QueryOperations::query` takes.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct FilterFor<F> {
    filter: PaginatedFilter,
    #[serde(skip)]
    fields: PhantomData<fn() -> F>,
}

impl<F> FilterFor<F> {
    /// The filter.
    pub fn into_inner(self) -> PaginatedFilter {
        self.filter
    }
}

impl<F> From<PaginatedFilter> for FilterFor<F> {
    fn from(filter: PaginatedFilter) -> Self {
        Self {
            filter,
            fields: PhantomData,
        }
    }
}

impl<F> Deref for FilterFor<F> {
    type Target = PaginatedFilter;

    fn deref(&self) -> &PaginatedFilter {
        &self.filter
    }
}

impl<F> AsRef<PaginatedFilter> for FilterFor<F> {
    fn as_ref(&self) -> &PaginatedFilter {
        &self.filter
    }
}

impl<F> Clone for FilterFor<F> {
    fn clone(&self) -> Self {
        self.filter.clone().into()
    }
}

impl<F> std::fmt::Debug for FilterFor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.filter.fmt(f)
    }
}

#[cfg(feature = "schema")]
mod schema {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator};
    use serde_json::{Value, json};

    use super::{FieldSet, FilterFor};
    use crate::{ColumnType, Direction, Field, FilterOperator, PaginatedFilter};

    impl<F: FieldSet> JsonSchema for FilterFor<F> {
        fn schema_name() -> Cow<'static, str> {
            let name = std::any::type_name::<F>();
            let short = name.rsplit("::").next().unwrap_or(name);
            format!("PaginatedFilter_for_{short}").into()
        }

        fn schema_id() -> Cow<'static, str> {
            format!("jararaca_query::FilterFor<{}>", std::any::type_name::<F>()).into()
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            let mut schema = PaginatedFilter::json_schema(generator);
            let fields = F::fields();
            let direction = generator.subschema_for::<Direction>();
            let sortable: Vec<&str> = fields
                .iter()
                .filter(|f| f.sortable)
                .map(|f| f.name.as_ref())
                .collect();
            let sort = if sortable.is_empty() {
                json!({ "type": "array", "maxItems": 0 })
            } else {
                json!({
                    "type": "array",
                    "description": "Sort rules, applied in order.",
                    "default": [],
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": { "enum": sortable },
                            "direction": direction,
                        },
                        "required": ["field", "direction"],
                    },
                })
            };
            let rules: Vec<Value> = fields
                .iter()
                .filter(|f| f.filterable)
                .flat_map(filter_rules)
                .collect();
            let filter = if rules.is_empty() {
                json!({ "type": "array", "maxItems": 0 })
            } else {
                json!({
                    "type": "array",
                    "description": "Filter rules, all of which must hold. An empty value \
                        (`\"\"`, `[]`) filters nothing, except for `isEmpty` and `isNotEmpty`.",
                    "default": [],
                    "items": { "oneOf": rules },
                })
            };
            if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert("sort_models".into(), sort);
                properties.insert("filter_models".into(), filter);
            }
            schema
        }
    }

    /// The TypeScript of a [`PaginatedFilter`]: clients send the same thing.
    impl<F: 'static> ts_rs::TS for FilterFor<F> {
        type WithoutGenerics = PaginatedFilter;
        type OptionInnerType = Self;

        fn name(cfg: &ts_rs::Config) -> String {
            PaginatedFilter::name(cfg)
        }

        fn inline(cfg: &ts_rs::Config) -> String {
            PaginatedFilter::inline(cfg)
        }

        fn inline_flattened(cfg: &ts_rs::Config) -> String {
            PaginatedFilter::inline_flattened(cfg)
        }

        fn visit_dependencies(visitor: &mut impl ts_rs::TypeVisitor) {
            visitor.visit::<PaginatedFilter>();
        }
    }

    /// One `oneOf` branch per group of operators of `field` that take the same values.
    fn filter_rules(field: &Field) -> Vec<Value> {
        let operators = FilterOperator::for_type(field.ty);
        let names = |pick: &dyn Fn(FilterOperator) -> bool| -> Vec<&str> {
            operators
                .iter()
                .filter(|(_, op)| pick(*op))
                .map(|(name, _)| *name)
                .collect()
        };
        let no_value = |op| matches!(op, FilterOperator::IsEmpty | FilterOperator::IsNotEmpty);
        let single = names(&|op| !no_value(op) && op != FilterOperator::IsAnyOf);
        let any_of = names(&|op| op == FilterOperator::IsAnyOf);
        let without = names(&no_value);
        let rule = |ops: Vec<&str>, value: Value| {
            json!({
                "type": "object",
                "properties": {
                    "field": { "const": field.name },
                    "operator": { "enum": ops },
                    "value": value,
                },
                "required": ["field", "operator"],
            })
        };
        let mut rules = Vec::new();
        if !single.is_empty() {
            rules.push(rule(single, single_value(field.ty)));
        }
        if !any_of.is_empty() {
            let one = typed(field.ty);
            rules.push(rule(
                any_of,
                json!({ "anyOf": [empty(), one, { "type": "array", "items": one }] }),
            ));
        }
        if !without.is_empty() {
            rules.push(rule(
                without,
                json!({ "anyOf": [
                    { "type": "string" },
                    { "type": "array", "items": { "type": "string" } },
                ] }),
            ));
        }
        rules
    }

    /// The value of a single-value operator: one value of the type, or nothing (`""`, `[]`);
    /// a one-item list stands for its item on dates and booleans, as in the reference.
    fn single_value(ty: ColumnType) -> Value {
        let nothing = json!({ "type": "array", "maxItems": 0 });
        match ty {
            ColumnType::Text => json!({ "anyOf": [{ "type": "string" }, nothing] }),
            ColumnType::Bool => json!({ "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "maxItems": 1 },
            ] }),
            ColumnType::Date | ColumnType::DateTime => {
                let one = json!({ "anyOf": [empty(), typed(ty)] });
                json!({ "anyOf": [one, { "type": "array", "items": one, "maxItems": 1 }] })
            }
            _ => json!({ "anyOf": [empty(), typed(ty), nothing] }),
        }
    }

    /// `""`, which means "no filter".
    fn empty() -> Value {
        json!({ "type": "string", "maxLength": 0 })
    }

    /// One value of the type, as a string the filter parses.
    fn typed(ty: ColumnType) -> Value {
        match ty {
            ColumnType::Text | ColumnType::Bool | ColumnType::Json => json!({ "type": "string" }),
            ColumnType::Uuid => json!({ "type": "string", "format": "uuid" }),
            // Eighteen digits always fit in 64 bits.
            ColumnType::Int => json!({ "type": "string", "pattern": "^-?[0-9]{1,18}$" }),
            ColumnType::Float => json!({
                "type": "string",
                "pattern": r"^[+-]?([0-9]{1,15}(\.[0-9]*)?|\.[0-9]{1,15})([eE][+-]?[0-9]{1,2})?$",
            }),
            ColumnType::Date => json!({ "type": "string", "format": "date" }),
            // A date stands for its UTC midnight.
            ColumnType::DateTime => json!({ "anyOf": [
                { "type": "string", "format": "date-time" },
                { "type": "string", "format": "date" },
            ] }),
        }
    }
}
