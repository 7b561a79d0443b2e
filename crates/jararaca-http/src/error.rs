//! Error responses: typed application errors, validation errors (422) and unhandled errors
//! (500 that leaks nothing).

use std::cell::RefCell;
use std::fmt;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use jararaca_di::BoxError;

/// An error answered with its status and a JSON body `{"detail": …}`, the reference's shape.
///
/// Build typed errors with [`ApiError::new`] and the shortcuts (`not_found`, `conflict`, …).
/// Any other error converts with `?` into a 500 whose body says only "Internal Server Error";
/// the cause is logged, never sent.
///
/// ```
/// use jararaca_http::ApiError;
///
/// fn find(id: u32) -> Result<&'static str, ApiError> {
///     if id == 1 { Ok("one") } else { Err(ApiError::not_found(format!("task {id} not found"))) }
/// }
/// assert_eq!(find(2).unwrap_err().status(), http::StatusCode::NOT_FOUND);
/// ```
pub struct ApiError {
    status: StatusCode,
    detail: serde_json::Value,
    source: Option<BoxError>,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.detail) {
            (Some(source), _) => write!(f, "{}: {source}", self.status),
            (None, serde_json::Value::String(detail)) => write!(f, "{}: {detail}", self.status),
            (None, detail) => write!(f, "{}: {detail}", self.status),
        }
    }
}

impl ApiError {
    /// An error with `status` and a text detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::with_detail(status, serde_json::Value::String(detail.into()))
    }

    /// An error with `status` and any JSON detail.
    ///
    /// A 422's detail is always a list of `{"loc", "msg", "type"}` entries, as the document
    /// declares it: a text detail becomes one entry with an empty `loc` (the error is about
    /// the request as a whole). Use [`ValidationError`] to name the fields.
    pub fn with_detail(status: StatusCode, detail: serde_json::Value) -> Self {
        let detail = match detail {
            serde_json::Value::String(msg) if status == StatusCode::UNPROCESSABLE_ENTITY => {
                serde_json::json!([{ "loc": [], "msg": msg, "type": "value_error" }])
            }
            detail => detail,
        };
        Self {
            status,
            detail,
            source: None,
        }
    }

    /// A 500 for an unexpected error: the cause is logged, the client sees no internals.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: serde_json::Value::String("Internal Server Error".into()),
            source: Some(source.into()),
        }
    }

    /// An error of another crate that knows its own status: a server error (5xx) is logged
    /// and hidden like [`ApiError::internal`]; a client error shows `error`'s message.
    ///
    /// `repo.get(id).await.map_err(|e| ApiError::from_status(e.status(), e))?`
    pub fn from_status(status: StatusCode, error: impl Into<BoxError>) -> Self {
        let error = error.into();
        if status.is_server_error() || !status.is_client_error() {
            let mut api = Self::internal(error);
            if status.is_server_error() {
                api.status = status;
            }
            api
        } else {
            Self::new(status, error.to_string())
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403 Forbidden.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409 Conflict.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422 Unprocessable Entity about the request as a whole: `{"detail": [{"loc": [], "msg":
    /// detail, "type": "value_error"}]}` (see [`ValidationError`] to name the fields).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `detail` sent to the client.
    pub fn detail(&self) -> &serde_json::Value {
        &self.detail
    }
}

/// Any error becomes a 500 (logged, not sent), so handlers can use `?` freely.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::internal(error)
    }
}

/// An error answer made with no body (404 for no route and 405 for a route without the
/// method by the router; 413, 415 or 431 by an extractor or a layer) given the documented
/// `{"detail": …}` body, its other headers (`Allow`) kept.
pub(crate) fn with_error_body(response: Response) -> Response {
    use axum::body::HttpBody as _;
    let status = response.status();
    let detail = match status {
        StatusCode::NOT_FOUND
        | StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            status.canonical_reason().unwrap_or_default()
        }
        _ => return response,
    };
    if response.body().size_hint().exact() != Some(0) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = serde_json::json!({ "detail": detail }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error = %source, status = self.status.as_u16(), "request failed");
        }
        json_response(
            self.status,
            &Detail {
                detail: &self.detail,
            },
        )
    }
}

#[derive(Serialize)]
struct Detail<'a, T: Serialize> {
    detail: &'a T,
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response built in place: the content type is a static value and the body one
/// exact-size allocation, which the tuple `IntoResponse` impls would not give.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match to_json(body) {
        Ok(bytes) => response(status, Body::from(bytes)),
        Err(error) => {
            tracing::error!(%error, "response body could not be serialized");
            internal_server_error()
        }
    }
}

fn internal_server_error() -> Response {
    response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Body::from(r#"{"detail":"Internal Server Error"}"#),
    )
}

fn response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, APPLICATION_JSON);
    response
}

thread_local! {
    /// Where bodies are serialized before being copied out: a growing `Vec` per response
    /// would reallocate as it grows and then cost `Bytes` a second allocation for its spare
    /// capacity.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Above this the scratch buffer is given back, so one large body does not pin its memory.
const SCRATCH_KEPT: usize = 64 * 1024;

fn to_json<T: Serialize>(body: &T) -> serde_json::Result<Bytes> {
    let scratch = SCRATCH.try_with(|cell| {
        // Taken already only if serializing `body` itself builds a response.
        let mut buf = cell.try_borrow_mut().ok()?;
        buf.clear();
        let result = serde_json::to_writer(&mut *buf, body).map(|()| Bytes::copy_from_slice(&buf));
        if buf.capacity() > SCRATCH_KEPT {
            *buf = Vec::new();
        }
        Some(result)
    });
    match scratch {
        Ok(Some(result)) => result,
        _ => serde_json::to_vec(body).map(Bytes::from),
    }
}

/// One part of an error location: a name (`"body"`, a field) or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Loc {
    /// A field or section name.
    Name(String),
    /// An array index.
    Index(usize),
}

impl From<&str> for Loc {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

/// One invalid input: where (`["body", "title"]`), what is wrong, and an error type code, as
/// FastAPI's validation errors (`{"loc", "msg", "type"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[schemars(rename = "ValidationError")]
pub struct FieldError {
    /// Where the error is: `body`/`query`/`path`/`header`, then field names and indices.
    pub loc: Vec<Loc>,
    /// What is wrong, for people.
    pub msg: String,
    /// A stable code: `missing`, `string_type`, `json_invalid`, `value_error`, …
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// An error at `loc`.
    pub fn new(loc: Vec<Loc>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// Invalid request input, answered with 422 and `{"detail": [FieldError, …]}` naming every
/// bad field that could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    errors: Vec<FieldError>,
}

impl ValidationError {
    /// A validation error made of `errors`.
    pub fn new(errors: Vec<FieldError>) -> Self {
        Self { errors }
    }

    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid request:")?;
        for e in &self.errors {
            let loc: Vec<String> = e
                .loc
                .iter()
                .map(|l| match l {
                    Loc::Name(n) => n.clone(),
                    Loc::Index(i) => i.to_string(),
                })
                .collect();
            write!(f, " {}: {};", loc.join("."), e.msg)?;
        }
        Ok(())
    }
}

/// The body of every 422, as the document declares it (FastAPI's name for it).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "HTTPValidationError")]
pub(crate) struct ValidationBody {
    /// Every invalid input found.
    pub(crate) detail: Vec<FieldError>,
}

impl IntoResponse for ValidationError {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &Detail {
                detail: &self.errors,
            },
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        match serde_json::to_value(&error.errors) {
            Ok(detail) => Self::with_detail(StatusCode::UNPROCESSABLE_ENTITY, detail),
            Err(e) => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response) -> Vec<u8> {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        bytes.to_vec()
    }

    /// Builds a response of its own while being serialized.
    struct Nested;

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = json_response(StatusCode::OK, &"inner");
            assert_eq!(inner.status(), StatusCode::OK);
            serializer.serialize_str("outer")
        }
    }

    #[tokio::test]
    async fn json_responses_carry_the_status_type_and_exact_body() {
        let big: Vec<String> = (0..20_000).map(|i| format!("item {i}")).collect();
        for _ in 0..2 {
            let response = json_response(StatusCode::CREATED, &big);
            assert_eq!(response.status(), StatusCode::CREATED);
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(body(response).await, serde_json::to_vec(&big).unwrap());
        }
        let small = json_response(StatusCode::OK, &Detail { detail: &"x" });
        assert_eq!(body(small).await, br#"{"detail":"x"}"#);
        let nested = json_response(StatusCode::OK, &Nested);
        assert_eq!(body(nested).await, br#""outer""#);
    }
}
