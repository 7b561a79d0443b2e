//! Response types with a status the route description can know statically.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

/// `201 Created` with a JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        super::error::json_response(StatusCode::CREATED, &self.0)
    }
}

/// `204 No Content`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}
