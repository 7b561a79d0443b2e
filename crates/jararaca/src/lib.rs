//! Jararaca: a microservice framework built from tower layers.
//!
//! A service defines controllers (HTTP routes; with the other crates, message handlers and
//! scheduled actions), providers (dependency injection) and interceptors (tower layers around
//! every unit of work). The same binary then runs as an HTTP server, a message-bus worker or
//! a cron beat through [`cli::run`].
//!
//! ```
//! use std::sync::Arc;
//! use jararaca::{Inject, Microservice};
//! use jararaca::http::{ApiError, Controller, Json, Path};
//! use tower::ServiceExt;
//!
//! struct Greetings {
//!     greeting: String,
//! }
//!
//! async fn greet(
//!     Inject(greetings): Inject<Greetings>,
//!     Path(name): Path<String>,
//! ) -> Result<Json<String>, ApiError> {
//!     if name.is_empty() {
//!         return Err(ApiError::bad_request("a name is needed"));
//!     }
//!     Ok(Json(format!("{}, {name}!", greetings.greeting)))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = Microservice::new("greeter")
//!     .providers(|c| c.value(Greetings { greeting: "Hello".into() }))
//!     .controller(Controller::new("GreetController", "/greet").get("/{name}", greet))
//!     .build()
//!     .await
//!     .unwrap();
//!
//! let response = app
//!     .router()
//!     .oneshot(http::Request::get("/greet/Ana").body(axum::body::Body::empty()).unwrap())
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
//! router. aide reads handler signatures as we do, but its traits cannot be implemented here
//! for the extractors of our other crates (`Inject<T>`, the unit of work) and it knows nothing
//! of ts-rs. So route descriptions come from the handler's signature through small traits of
//! our own ([`http::RouteInput`], [`http::RouteOutput`]), schemas from `schemars` (JSON
//! Schema 2020-12, which is what OpenAPI 3.1 uses) and TypeScript from `ts-rs`. The docs page
//! is Swagger UI, compiled into the binary.

#[cfg(feature = "bus")]
pub mod bus;
pub mod cli;
pub mod http;
mod microservice;
pub mod server;
pub mod telemetry;

pub use jararaca_di as di;
pub use jararaca_di::{
    BoxError, Container, ContainerBuilder, Envelope, Inject, Injectable, Provider, Scope, Token,
    UnitKind, UnitOfWork, inject, use_container, use_unit_of_work,
};
#[cfg(feature = "bus")]
pub use jararaca_macros::Message;
pub use jararaca_macros::{Injectable, controller};
pub use microservice::{App, AppBuildError, Microservice};

/// JSON Schema for API types (derive `schemars::JsonSchema` on DTOs; depend on `schemars`
/// directly so the derive finds it).
pub use schemars;
/// TypeScript declarations for API types (derive `ts_rs::TS` on DTOs; depend on `ts-rs`
/// directly so the derive finds it).
pub use ts_rs;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
