//! The HTTP side of a microservice: controllers, validated extractors, errors, OpenAPI and
//! docs, health endpoints and request tracing.

mod controller;
mod docs;
mod error;
mod extract;
mod health;
mod meta;
pub mod openapi;
mod response;
mod trace;

pub use controller::{Controller, Route};
pub use error::{ApiError, FieldError, Loc, ValidationError};
pub use extract::{Json, Path, Query, parse_json, parse_query};
pub use health::HealthChecks;
pub use meta::{
    ErrorBody, HandlerMeta, ParamLocation, ParamsMeta, ResponseMeta, RouteInput, RouteMeta,
    RouteOutput, TypeInfo,
};
pub use openapi::ApiInfo;
pub use response::{Created, NoContent};
pub use trace::{TRACEPARENT, Trace, TraceContext, TraceLayer};

pub(crate) use docs::router as docs_router;
pub(crate) use error::internal_server_error;
pub(crate) use health::router as health_router;
