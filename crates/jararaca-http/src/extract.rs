//! Request extractors whose rejections are 422 responses naming every bad field.
//!
//! axum's own `Json`, `Path` and `Query` stop at the first problem and answer malformed JSON
//! with 400 and other problems with 422 in plain text. These wrap them: all input problems are
//! 422 with a JSON list of `{"loc", "msg", "type"}`, as FastAPI answers (and as the Python
//! reference meant to before its unit-of-work dependency turned them into 500s).
//!
//! The input is first validated against the type's JSON Schema — the very schema the OpenAPI
//! document declares — by the `jsonschema` crate, so every constraint the document states
//! (types, required fields, enums, bounds, lengths, patterns, formats) is enforced, and every
//! violation is reported, each at its own location. serde then reports what a schema cannot
//! express.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, FieldError, Loc, ValidationError};
use super::schema::{QueryStyle, query_style};

/// A JSON request body (validated, 422 on any problem) or a JSON response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + JsonSchema + 'static,
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
        parse_json(&bytes).map(Json)
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

/// Parses a JSON body into `T`, reporting every bad field found (a 422), or a 500 when
/// `T`'s schema cannot be compiled.
pub fn parse_json<T: DeserializeOwned + JsonSchema + 'static>(bytes: &[u8]) -> Result<T, ApiError> {
    let check = type_check::<T>()?;
    Ok(json_with(bytes, &check)?)
}

fn json_with<T: DeserializeOwned>(bytes: &[u8], check: &TypeCheck) -> Result<T, ValidationError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ValidationError::new(vec![FieldError::new(
            vec!["body".into()],
            format!("invalid JSON: {e}"),
            "json_invalid",
        )])
    })?;
    from_value(value, "body", check)
}

/// Deserializes `T` from a JSON value found at `section` (`body`, `query`), validating it
/// against `T`'s schema first so that every bad field is reported.
fn from_value<T: DeserializeOwned>(
    value: Value,
    section: &str,
    check: &TypeCheck,
) -> Result<T, ValidationError> {
    let mut errors = Vec::new();
    for error in check.validator.iter_errors(&value) {
        field_errors(&error, section, &mut errors);
    }
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

/// A type's JSON Schema and the validator compiled from it.
struct TypeCheck {
    schema: Value,
    validator: jsonschema::Validator,
}

impl TypeCheck {
    fn compile<T: JsonSchema>() -> Result<Self, String> {
        let schema = super::schema::settings()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| {
                format!(
                    "the JSON Schema of `{}` does not compile: {e}",
                    std::any::type_name::<T>()
                )
            })?;
        Ok(Self { schema, validator })
    }

    /// Follows a local `$ref` (`#/$defs/Name`) inside the root schema.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix('#')
                .and_then(|pointer| self.schema.pointer(pointer))
                .unwrap_or(schema),
            None => schema,
        }
    }
}

/// Every validator ever compiled, each once; a thread takes the lock only the first time it
/// meets a type, after which it finds the validator in its own map.
static COMPILED: LazyLock<Mutex<HashMap<TypeId, Arc<TypeCheck>>>> = LazyLock::new(Default::default);

thread_local! {
    static SEEN: RefCell<HashMap<TypeId, Arc<TypeCheck>>> = RefCell::new(HashMap::new());
}

/// `T`'s compiled validator. A schema that does not compile (a `pattern` the regex engine
/// refuses) is the program's error: a 500, with the reason logged.
fn type_check<T: JsonSchema + 'static>() -> Result<Arc<TypeCheck>, ApiError> {
    let id = TypeId::of::<T>();
    if let Some(found) = SEEN.with(|seen| seen.borrow().get(&id).cloned()) {
        return Ok(found);
    }
    let check = {
        let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
        match compiled.get(&id) {
            Some(check) => Arc::clone(check),
            None => match TypeCheck::compile::<T>() {
                Ok(check) => Arc::clone(compiled.entry(id).or_insert(Arc::new(check))),
                Err(reason) => return Err(ApiError::internal(reason)),
            },
        }
    };
    SEEN.with(|seen| seen.borrow_mut().insert(id, Arc::clone(&check)));
    Ok(check)
}

/// The field errors of one schema violation, located under `section`.
fn field_errors(error: &jsonschema::ValidationError<'_>, section: &str, out: &mut Vec<FieldError>) {
    let mut loc = vec![Loc::from(section)];
    loc.extend(error.instance_path().iter().map(|segment| match segment {
        LocationSegment::Property(name) => Loc::Name(name.into_owned()),
        LocationSegment::Index(index) => Loc::Index(index),
    }));
    let depth = loc.len();
    let (msg, kind): (String, &str) = match error.kind() {
        ValidationErrorKind::Required { property } => {
            loc.push(Loc::Name(
                property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned),
            ));
            ("Field required".into(), "missing")
        }
        ValidationErrorKind::Type { kind } => {
            let (msg, kind) = type_error(kind);
            out.push(FieldError::new(loc, msg, kind));
            return;
        }
        ValidationErrorKind::Enum { options } => {
            (format!("Input should be {}", one_of(options)), "enum")
        }
        ValidationErrorKind::Constant { expected_value } => {
            (format!("Input should be {expected_value}"), "literal_error")
        }
        ValidationErrorKind::Minimum { limit } => (
            format!("Input should be greater than or equal to {limit}"),
            "greater_than_equal",
        ),
        ValidationErrorKind::Maximum { limit } => (
            format!("Input should be less than or equal to {limit}"),
            "less_than_equal",
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => (
            format!("Input should be greater than {limit}"),
            "greater_than",
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            (format!("Input should be less than {limit}"), "less_than")
        }
        ValidationErrorKind::MultipleOf { multiple_of } => (
            format!("Input should be a multiple of {multiple_of}"),
            "multiple_of",
        ),
        ValidationErrorKind::MinLength { limit } => (
            format!("String should have at least {limit} characters"),
            "string_too_short",
        ),
        ValidationErrorKind::MaxLength { limit } => (
            format!("String should have at most {limit} characters"),
            "string_too_long",
        ),
        ValidationErrorKind::Pattern { pattern } => (
            format!("String should match pattern '{pattern}'"),
            "string_pattern_mismatch",
        ),
        ValidationErrorKind::Format { format } => {
            let kind = format!("{}_parsing", format.replace('-', ""));
            out.push(FieldError::new(
                loc,
                format!("Input should be a valid {format}"),
                kind,
            ));
            return;
        }
        ValidationErrorKind::MinItems { limit } => (
            format!("List should have at least {limit} items"),
            "too_short",
        ),
        ValidationErrorKind::MaxItems { limit } => (
            format!("List should have at most {limit} items"),
            "too_long",
        ),
        ValidationErrorKind::UniqueItems => ("List items should be unique".into(), "unique_items"),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                let mut loc = loc.clone();
                loc.push(Loc::Name(name.clone()));
                out.push(FieldError::new(
                    loc,
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                ));
            }
            return;
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // The branch the input came closest to: one whose errors all lie inside the
            // input (it matched the shape, not the details), with the fewest of them.
            let here = depth - 1;
            let closest = context
                .iter()
                .filter(|branch| !branch.is_empty() && branch.iter().all(|e| reach(e) > here))
                .min_by_key(|branch| branch.len());
            if let Some(branch) = closest {
                for error in branch {
                    field_errors(error, section, out);
                }
                return;
            }
            (
                "Input should match one of the allowed shapes".into(),
                "union_tag_invalid",
            )
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => (
            "Input matches more than one of the allowed shapes".into(),
            "value_error",
        ),
        _ => (error.masked().to_string(), "value_error"),
    };
    out.push(FieldError::new(loc, msg, kind));
}

/// How deep inside the input an error lies: a missing or an extra property counts as one
/// level below the object it is missing from.
fn reach(error: &jsonschema::ValidationError<'_>) -> usize {
    let below = matches!(
        error.kind(),
        ValidationErrorKind::Required { .. }
            | ValidationErrorKind::AdditionalProperties { .. }
            | ValidationErrorKind::UnevaluatedProperties { .. }
    );
    error.instance_path().iter().count() + usize::from(below)
}

fn type_error(kind: &TypeKind) -> (String, String) {
    use jsonschema::JsonType;
    let wanted = match kind {
        TypeKind::Single(t) => *t,
        TypeKind::Multiple(set) => set
            .iter()
            .find(|t| *t != JsonType::Null)
            .unwrap_or(JsonType::Null),
    };
    (
        format!("Input should be a valid {wanted}"),
        format!("{wanted}_type"),
    )
}

/// `'a', 'b' or 'c'`, as pydantic lists the members of an enum.
fn one_of(options: &Value) -> String {
    let names: Vec<String> = options
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "nothing".into(),
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
    T: DeserializeOwned + JsonSchema + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string into `T`, reporting every missing or invalid parameter at once (a
/// 422), or a 500 when `T`'s schema cannot be compiled.
///
/// Values are typed by `T`'s schema, as the OpenAPI document declares them: numbers and
/// booleans are parsed from their text; a list of scalars is either repeated (`tag=a&tag=b`,
/// or `tag[]=a&tag[]=b` as `@jararaca/core` sends it) or one JSON array; anything holding
/// objects or lists is JSON (`content: application/json` in the document), so a
/// `PaginatedFilter` travels as
/// `?page=0&page_size=10&sort_models=[{"field":"title","direction":"asc"}]` — and a list of
/// them may also be repeated, one JSON item each (`sort_models[]={"field":…}`, as axios
/// sends an array of objects).
pub fn parse_query<T: DeserializeOwned + JsonSchema + 'static>(query: &str) -> Result<T, ApiError> {
    let check = type_check::<T>()?;
    Ok(query_with(query, &check)?)
}

fn query_with<T: DeserializeOwned>(query: &str, check: &TypeCheck) -> Result<T, ValidationError> {
    let root = check.resolve(&check.schema);
    let properties = root.get("properties").and_then(Value::as_object);
    let resolve = |schema| check.resolve(schema);
    let mut object = serde_json::Map::new();
    for (key, raw) in form_urlencoded::parse(query.as_bytes()) {
        let key = key.strip_suffix("[]").unwrap_or(&key).to_owned();
        let Some(property) = properties.and_then(|p| p.get(&key)) else {
            // Not a parameter of `T`: serde ignores it, unless `T` refuses unknown fields.
            object.insert(key, Value::String(raw.into_owned()));
            continue;
        };
        let is_list = super::schema::primary_type(resolve(property)) == Some("array");
        match query_style(property, &resolve) {
            QueryStyle::Scalar(kind) => {
                object.insert(key, coerce(kind, &raw));
            }
            QueryStyle::Repeated(_) | QueryStyle::Json if raw.trim_start().starts_with('[') => {
                object.insert(key, json_or_text(&raw));
            }
            QueryStyle::Json if !is_list => {
                object.insert(key, json_or_text(&raw));
            }
            style => {
                let item = match style {
                    QueryStyle::Repeated(kind) => coerce(kind, &raw),
                    _ => json_or_text(&raw),
                };
                match object
                    .entry(key)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(values) => values.push(item),
                    other => *other = Value::Array(vec![item]),
                }
            }
        }
    }
    from_value(Value::Object(object), "query", check)
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

    fn json<T: DeserializeOwned + JsonSchema + 'static>(body: &[u8]) -> Result<T, ValidationError> {
        json_with(body, &type_check::<T>().unwrap())
    }

    fn query<T: DeserializeOwned + JsonSchema + 'static>(
        query: &str,
    ) -> Result<T, ValidationError> {
        query_with(query, &type_check::<T>().unwrap())
    }

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
        let err = json::<NewTask>(
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
        let task = json::<NewTask>(
            br#"{"title": "t", "done": false, "estimate": 3, "priority": "high", "tags": [], "note": null}"#,
        )
        .unwrap();
        assert_eq!(task.estimate, 3);
        let err = json::<NewTask>(b"{\"title\": ").unwrap_err();
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
        let err = query::<Page>("q=x").unwrap_err();
        assert_eq!(locs(&err), ["query.page", "query.size"]);
        let err = query::<Page>("page=one&size=-2").unwrap_err();
        assert_eq!(locs(&err), ["query.page", "query.size"]);
        let page = query::<Page>("page=1&size=2").unwrap();
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
        let search = query::<Search>(
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
        let err = query::<Search>("tags=a&ids=x&sort=%5B%7B%7D%5D&exact=maybe").unwrap_err();
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
