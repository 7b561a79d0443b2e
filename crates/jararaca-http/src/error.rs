//! Error responses: typed application errors, validation errors (422) and unhandled errors
//! (500 that leaks nothing).

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
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
    pub fn with_detail(status: StatusCode, detail: serde_json::Value) -> Self {
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

    /// 422 Unprocessable Entity with a text detail (see [`ValidationError`] for field errors).
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

pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "response body could not be serialized");
            internal_server_error()
        }
    }
}

fn internal_server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"detail":"Internal Server Error"}"#,
    )
        .into_response()
}

/// One part of an error location: a name (`"body"`, a field) or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
