//! The HTTP side of a microservice: controllers, validated extractors, errors, OpenAPI and
//! docs, health endpoints and request tracing.

mod controller;
mod docs;
mod error;
mod extract;
mod health;
mod meta;
pub mod openapi;
mod panic;
mod response;
mod trace;

pub use controller::{Controller, Route, RouteLayer};
pub use error::{ApiError, FieldError, Loc, ValidationError};
pub use extract::{Json, Path, Query, parse_json, parse_query};
pub use health::HealthChecks;
pub use meta::{
    ErrorBody, HandlerMeta, ParamLocation, ParamsMeta, ResponseMeta, RouteInput, RouteMeta,
    RouteOutput, TypeInfo,
};
pub use openapi::ApiInfo;
pub use panic::{CatchPanic, CatchPanicLayer};
pub use response::{Created, NoContent};
pub use trace::{TRACEPARENT, Trace, TraceContext, TraceLayer};

pub(crate) use docs::router as docs_router;
pub(crate) use health::router as health_router;

/// Lower-case hex of `N` bytes into `M = 2N` bytes.
pub(crate) fn hex<const N: usize, const M: usize>(bytes: [u8; N]) -> [u8; M] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; M];
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}
