//! The HTTP capability of Jararaca: controllers, validated extractors, errors, OpenAPI and
//! docs, health endpoints, request tracing and the server.
//!
//! A [`Controller`] groups routes under a prefix; each route is described from its handler's
//! signature (what it takes and returns, through [`jararaca_api::RouteInput`] and
//! [`jararaca_api::RouteOutput`]) so that one registration yields the router, the OpenAPI
//! document and the TypeScript client. Given to a service, a controller adds the [`Http`]
//! capability, which serves it in the `server` role.
//!
//! ```
//! use jararaca_http::{Controller, Json, Path};
//! use jararaca_http::axum::body::Body;
//! use tower::ServiceExt;
//!
//! async fn greet(Path(name): Path<String>) -> Json<String> {
//!     Json(format!("Hello, {name}!"))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let (router, routes) = Controller::new("GreetController", "/greet")
//!     .get("/{name}", greet)
//!     .into_router();
//! assert_eq!(routes[0].path, "/greet/{name}");
//! let response = router
//!     .oneshot(http::Request::get("/greet/Ana").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
//!
//! # Why not utoipa or aide
//!
//! One registration must yield the router, the OpenAPI document *and* the TypeScript client.
//! utoipa describes each route a second time (`#[utoipa::path]`), which can drift from the
//! router. aide reads handler signatures as we do, but its traits cannot be implemented for
//! the extractors of our other crates (`Inject<T>`, the unit of work, the database session)
//! and it knows nothing of ts-rs. So route descriptions come from the handler's signature
//! through the small traits of `jararaca-api`, schemas from `schemars` (JSON Schema 2020-12,
//! which is what OpenAPI 3.1 uses) and TypeScript from `ts-rs`. The docs page is Swagger UI,
//! compiled into the binary.

mod capability;
mod controller;
mod describe;
mod docs;
mod error;
mod extract;
mod head_error;
mod health;
mod limits;
pub mod openapi;
mod response;
mod schema;
pub mod server;
mod trace;

pub use capability::{DuplicateRoute, Http, HttpApp, HttpPart, RouterFactory};
pub use controller::{Controller, Route, RouteLayer};
pub use error::{ApiError, FieldError, Loc, ValidationError};
pub use extract::{Json, Path, Query, parse_json, parse_query};
pub use jararaca_api::{
    ApiDescription, ApiInfo, ErrorBody, HandlerMeta, ParamLocation, ParamsMeta, ResponseMeta,
    RouteInput, RouteMeta, RouteOutput, TypeInfo,
};
pub use jararaca_di::ReadinessChecks;
/// Turns a panicking handler into a failed unit: a JSON 500, rolled back.
pub use jararaca_di::{CatchPanic, CatchPanicLayer};
pub use limits::ServerLimits;
pub use response::{Created, NoContent};
pub use trace::{TRACEPARENT, Trace, TraceContext, TraceLayer, X_REQUEST_ID};

pub(crate) use docs::router as docs_router;

/// The web framework the routes run on.
pub use axum;
pub(crate) use health::router as health_router;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
