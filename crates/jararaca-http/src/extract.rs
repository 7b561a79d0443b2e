//! Request extractors whose rejections are 422 responses naming every bad field.
//!
//! axum's own `Json`, `Path` and `Query` stop at the first problem and answer malformed JSON
//! with 400 and other problems with 422 in plain text. These wrap them: all input problems are
//! 422 with a JSON list of `{"loc", "msg", "type"}`, as FastAPI answers (and as the Python
//! reference meant to before its unit-of-work dependency turned them into 500s).
//!
//! To name *every* bad field rather than the first, the input is first checked against the
//! type's JSON Schema (required fields, JSON types, enums, bounds); serde then reports what the
//! schema cannot express.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, FieldError, Loc, ValidationError};

/// A JSON request body (validated, 422 on any problem) or a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + JsonSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a request body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        parse_json(&bytes).map(Json).map_err(ApiError::from)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        super::error::json_response(http::StatusCode::OK, &self.0)
    }
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into `T`, reporting every bad field found.
pub fn parse_json<T: DeserializeOwned + JsonSchema>(bytes: &[u8]) -> Result<T, ValidationError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ValidationError::new(vec![FieldError::new(
            vec!["body".into()],
            format!("invalid JSON: {e}"),
            "json_invalid",
        )])
    })?;
    from_value(value, "body")
}

/// Deserializes `T` from a JSON value found at `section` (`body`, `query`), checking it
/// against `T`'s schema first so that every bad field is reported.
fn from_value<T: DeserializeOwned + JsonSchema>(
    value: Value,
    section: &str,
) -> Result<T, ValidationError> {
    let mut errors = Vec::new();
    let schema = schema_of::<T>();
    check(
        &schema,
        schema.as_value(),
        &value,
        &mut vec![Loc::from(section)],
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ValidationError::new(errors));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut loc = vec![Loc::from(section)];
        loc.extend(path_locs(e.path()));
        ValidationError::new(vec![serde_error(loc, e.inner())])
    })
}

fn serde_error(mut loc: Vec<Loc>, error: &impl std::fmt::Display) -> FieldError {
    let msg = error.to_string();
    // serde reports a missing field without a path, only in its message.
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        loc.push(Loc::from(field));
        return FieldError::new(loc, "Field required", "missing");
    }
    FieldError::new(loc, msg, "value_error")
}

fn path_locs(path: &serde_path_to_error::Path) -> Vec<Loc> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Loc::Index(*index)),
            Segment::Map { key } => Some(Loc::Name(key.clone())),
            Segment::Enum { variant } => Some(Loc::Name(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// Schemas are only needed on the error path and per type, so they are built once and kept.
fn schema_of<T: JsonSchema>() -> Arc<Schema> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Schema>>>> = OnceLock::new();
    let key = T::schema_id().into_owned();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(cache.entry(key).or_insert_with(|| {
        Arc::new(schemars::SchemaGenerator::default().into_root_schema_for::<T>())
    }))
}

/// Follows a local `$ref` (`#/$defs/Name`) inside the root schema.
fn resolve<'a>(root: &'a Schema, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.as_value().pointer(pointer))
            .unwrap_or(schema),
        None => schema,
    }
}

fn json_type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// Checks what a JSON Schema can tell cheaply: types, required properties, enums, numeric
/// bounds; recursing into properties and items. Anything it cannot judge it leaves to serde.
fn check(
    root: &Schema,
    schema: &Value,
    value: &Value,
    loc: &mut Vec<Loc>,
    errors: &mut Vec<FieldError>,
) {
    let schema = resolve(root, schema);
    if let Some(expected) = schema.get("type") {
        let allowed: Vec<&str> = match expected {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| json_type_matches(t, value)) {
            let wanted = allowed
                .iter()
                .find(|t| **t != "null")
                .unwrap_or(&allowed[0]);
            errors.push(FieldError::new(
                loc.clone(),
                format!("Input should be a valid {wanted}"),
                format!("{wanted}_type"),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let names: Vec<String> = options.iter().map(Value::to_string).collect();
        errors.push(FieldError::new(
            loc.clone(),
            format!("Input should be one of {}", names.join(", ")),
            "enum",
        ));
        return;
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            errors.push(FieldError::new(
                loc.clone(),
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            errors.push(FieldError::new(
                loc.clone(),
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            ));
        }
    }
    match value {
        Value::Object(object) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) {
                        loc.push(Loc::from(name));
                        errors.push(FieldError::new(loc.clone(), "Field required", "missing"));
                        loc.pop();
                    }
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if let Some(field) = object.get(name) {
                        loc.push(Loc::from(name.as_str()));
                        check(root, property, field, loc, errors);
                        loc.pop();
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    loc.push(Loc::Index(i));
                    check(root, item_schema, item, loc, errors);
                    loc.pop();
                }
            }
        }
        _ => {}
    }
}

/// Path parameters, with 422 naming the parameter that does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let (loc, msg) = match e.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => (
                        vec![Loc::from("path"), Loc::from(key.as_str())],
                        format!("Input should be a valid {expected_type}"),
                    ),
                    ErrorKind::DeserializeError { key, message, .. } => (
                        vec![Loc::from("path"), Loc::from(key.as_str())],
                        message.clone(),
                    ),
                    ErrorKind::ParseErrorAtIndex {
                        index,
                        expected_type,
                        ..
                    } => (
                        vec![Loc::from("path"), Loc::Index(*index)],
                        format!("Input should be a valid {expected_type}"),
                    ),
                    ErrorKind::ParseError { expected_type, .. } => {
                        // A single scalar parameter: name it from the route.
                        let mut loc = vec![Loc::from("path")];
                        let names =
                            axum::extract::RawPathParams::from_request_parts(parts, state).await;
                        if let Ok(names) = names
                            && let [(name, _)] = names.iter().collect::<Vec<_>>()[..]
                        {
                            loc.push(Loc::from(name));
                        }
                        (loc, format!("Input should be a valid {expected_type}"))
                    }
                    other => (vec![Loc::from("path")], other.to_string()),
                };
                Err(ValidationError::new(vec![FieldError::new(loc, msg, "value_error")]).into())
            }
            Err(other) => Err(ApiError::internal(other)),
        }
    }
}

/// Query parameters, with 422 naming every missing or invalid parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + JsonSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default())
            .map(Query)
            .map_err(ApiError::from)
    }
}

/// Parses a query string into `T`, reporting every missing or invalid parameter at once.
///
/// Values are typed by `T`'s schema: numbers and booleans are parsed from their text; an
/// array parameter is either repeated (`tag=a&tag=b`, or `tag[]=a&tag[]=b` as
/// `@jararaca/core` sends it) or one JSON array, and an object parameter is JSON, so a
/// `PaginatedFilter` travels as `?page=0&page_size=10&sort_models=[{"field":"title","direction":"asc"}]`.
pub fn parse_query<T: DeserializeOwned + JsonSchema>(query: &str) -> Result<T, ValidationError> {
    let schema = schema_of::<T>();
    let root = resolve(&schema, schema.as_value());
    let properties = root.get("properties").and_then(Value::as_object);
    let mut object = serde_json::Map::new();
    for (key, raw) in form_urlencoded::parse(query.as_bytes()) {
        let key = key.strip_suffix("[]").unwrap_or(&key).to_owned();
        let property = properties
            .and_then(|p| p.get(&key))
            .map(|p| resolve(&schema, p));
        match primary_type(property) {
            Some("array") => {
                let items = property
                    .and_then(|p| p.get("items"))
                    .map(|i| resolve(&schema, i));
                if raw.trim_start().starts_with('[') {
                    object.insert(key, json_or_text(&raw));
                } else {
                    let item = coerce(primary_type(items), &raw);
                    match object
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        Value::Array(values) => values.push(item),
                        other => *other = Value::Array(vec![item]),
                    }
                }
            }
            Some("object") => {
                object.insert(key, json_or_text(&raw));
            }
            kind => {
                object.insert(key, coerce(kind, &raw));
            }
        }
    }
    from_value(Value::Object(object), "query")
}

/// The first non-null JSON type a schema allows (`["integer", "null"]` → `integer`).
fn primary_type(schema: Option<&Value>) -> Option<&str> {
    match schema?.get("type")? {
        Value::String(t) => Some(t.as_str()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

/// A query value as the JSON type its schema wants; left as text when it does not parse, so
/// the schema check reports it with the rest.
fn coerce(kind: Option<&str>, raw: &str) -> Value {
    let parsed = match kind {
        Some("integer") => raw
            .trim()
            .parse::<i64>()
            .ok()
            .map(Value::from)
            .or_else(|| raw.trim().parse::<u64>().ok().map(Value::from)),
        Some("number") => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number)),
        Some("boolean") => match raw.trim() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        Some("null") if raw.is_empty() => Some(Value::Null),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn json_or_text(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Tag {
        name: String,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    #[serde(rename_all = "snake_case")]
    enum Priority {
        Low,
        High,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct NewTask {
        title: String,
        done: bool,
        estimate: u16,
        priority: Priority,
        tags: Vec<Tag>,
        note: Option<String>,
    }

    fn locs(e: &ValidationError) -> Vec<String> {
        e.errors()
            .iter()
            .map(|f| {
                f.loc
                    .iter()
                    .map(|l| match l {
                        Loc::Name(n) => n.clone(),
                        Loc::Index(i) => i.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect()
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = parse_json::<NewTask>(
            br#"{"done": "yes", "estimate": -1, "priority": "urgent", "tags": [{"name": 1}, {}]}"#,
        )
        .unwrap_err();
        let mut found = locs(&err);
        found.sort();
        assert_eq!(
            found,
            [
                "body.done",
                "body.estimate",
                "body.priority",
                "body.tags.0.name",
                "body.tags.1.name",
                "body.title"
            ]
        );
        let missing = err.errors().iter().find(|e| e.kind == "missing").unwrap();
        assert_eq!(missing.msg, "Field required");
    }

    #[test]
    fn valid_bodies_parse_and_malformed_json_is_a_body_error() {
        let task = parse_json::<NewTask>(
            br#"{"title": "t", "done": false, "estimate": 3, "priority": "high", "tags": [], "note": null}"#,
        )
        .unwrap();
        assert_eq!(task.estimate, 3);
        let err = parse_json::<NewTask>(b"{\"title\": ").unwrap_err();
        assert_eq!(locs(&err), ["body"]);
        assert_eq!(err.errors()[0].kind, "json_invalid");
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Page {
        page: u32,
        size: u32,
        q: Option<String>,
    }

    #[test]
    fn query_reports_every_missing_and_bad_value() {
        let err = parse_query::<Page>("q=x").unwrap_err();
        assert_eq!(locs(&err), ["query.page", "query.size"]);
        let err = parse_query::<Page>("page=one&size=-2").unwrap_err();
        assert_eq!(locs(&err), ["query.page", "query.size"]);
        let page = parse_query::<Page>("page=1&size=2").unwrap();
        assert_eq!((page.page, page.size, page.q), (1, 2, None));
    }

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    struct Search {
        tags: Vec<String>,
        ids: Vec<u32>,
        tags_json: Option<Vec<String>>,
        sort: Vec<Sort>,
        exact: bool,
    }

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    struct Sort {
        field: String,
        desc: bool,
    }

    #[test]
    fn query_arrays_repeat_or_use_brackets_and_nested_values_are_json() {
        let search = parse_query::<Search>(
            "tags=a&tags[]=b&ids=1&ids=2&tags_json=%5B%22x%22%5D&sort=%5B%7B%22field%22%3A%22t%22%2C%22desc%22%3Atrue%7D%5D&exact=true",
        )
        .unwrap();
        assert_eq!(
            search,
            Search {
                tags: vec!["a".into(), "b".into()],
                ids: vec![1, 2],
                tags_json: Some(vec!["x".into()]),
                sort: vec![Sort {
                    field: "t".into(),
                    desc: true
                }],
                exact: true,
            }
        );
        let err = parse_query::<Search>("tags=a&ids=x&sort=%5B%7B%7D%5D&exact=maybe").unwrap_err();
        let mut found = locs(&err);
        found.sort();
        assert_eq!(
            found,
            [
                "query.exact",
                "query.ids.0",
                "query.sort.0.desc",
                "query.sort.0.field"
            ]
        );
    }
}
