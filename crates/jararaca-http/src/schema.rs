//! The JSON Schemas the OpenAPI document declares and the extractors enforce: one way to make
//! them, so that both say the same thing.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use serde_json::Value;

/// JSON Schema 2020-12 (what OpenAPI 3.1 uses), with the bounds of Rust's integer types.
pub(crate) fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with_transform(IntegerBounds)
}

/// Gives every fixed-size integer its type's bounds: schemars marks a `u32` with
/// `"format": "uint32"` and `"minimum": 0` only, so without them a client would be promised
/// that 2^40 is a valid `u32`.
#[derive(Debug, Clone, Copy)]
struct IntegerBounds;

impl Transform for IntegerBounds {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            add_bounds(object);
        }
        transform_subschemas(self, schema);
    }
}

/// The bounds of `schema`'s integer format, if it has one and states none.
fn add_bounds(schema: &mut serde_json::Map<String, Value>) {
    let bounds: Option<(Value, Value)> = match schema.get("format").and_then(Value::as_str) {
        Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
        Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
        Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
        Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
        Some("int") => Some(((isize::MIN as i64).into(), (isize::MAX as i64).into())),
        Some("uint8") => Some((0.into(), u8::MAX.into())),
        Some("uint16") => Some((0.into(), u16::MAX.into())),
        Some("uint32") => Some((0.into(), u32::MAX.into())),
        Some("uint64") => Some((0.into(), u64::MAX.into())),
        Some("uint") => Some((0.into(), (usize::MAX as u64).into())),
        _ => None,
    };
    if let Some((min, max)) = bounds {
        schema.entry("minimum").or_insert(min);
        schema.entry("maximum").or_insert(max);
    }
}

/// [`settings`]' integer bounds applied to a schema taken out of a generator's definitions
/// before it applied them itself.
pub(crate) fn with_bounds(mut schema: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(object) => {
                add_bounds(object);
                object.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// How a query parameter travels, from its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryStyle<'a> {
    /// One value, read as the JSON type named (`integer`, `boolean`, `string`…; `None` when
    /// the schema names none).
    Scalar(Option<&'a str>),
    /// A list of scalars, repeated (`tag=a&tag=b`, `tag[]=a`) or one JSON array.
    Repeated(Option<&'a str>),
    /// Anything with objects or lists inside: one JSON text (OpenAPI's
    /// `content: application/json`); repeated, each occurrence is one JSON item of a list.
    Json,
}

/// The style of a parameter whose schema is `schema`; `resolve` follows a `$ref`.
pub(crate) fn query_style<'a>(
    schema: &'a Value,
    resolve: &impl Fn(&'a Value) -> &'a Value,
) -> QueryStyle<'a> {
    let schema = resolve(schema);
    match primary_type(schema) {
        Some("array") => {
            let items = schema.get("items").map(resolve);
            match items.map(|items| (primary_type(items), is_union(items, resolve))) {
                Some((Some("array" | "object"), _)) | Some((_, true)) => QueryStyle::Json,
                Some((kind, false)) => QueryStyle::Repeated(kind),
                None => QueryStyle::Repeated(None),
            }
        }
        Some("object") => QueryStyle::Json,
        None if is_union(schema, resolve) => QueryStyle::Json,
        kind => QueryStyle::Scalar(kind),
    }
}

/// Whether a schema is a union (`anyOf`/`oneOf`) of which a branch is an object or a list.
fn is_union<'a>(schema: &'a Value, resolve: &impl Fn(&'a Value) -> &'a Value) -> bool {
    ["anyOf", "oneOf"].iter().any(|key| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|branches| {
                branches
                    .iter()
                    .any(|b| matches!(primary_type(resolve(b)), Some("object" | "array")))
            })
    })
}

/// The first non-null JSON type a schema allows (`["integer", "null"]` → `integer`).
pub(crate) fn primary_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t.as_str()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_carry_their_type_bounds() {
        let schema = settings()
            .into_generator()
            .into_root_schema_for::<(u8, i64, u32)>();
        let items = schema.get("prefixItems").unwrap();
        assert_eq!(items[0]["maximum"], 255);
        assert_eq!(items[1]["minimum"], i64::MIN);
        assert_eq!(items[2]["maximum"], u32::MAX);
    }
}
