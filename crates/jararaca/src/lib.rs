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
//! use jararaca::http::{ApiError, Controller, HttpApp, Json, Path};
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
//! The crates it re-exports can be used on their own: each capability is a crate
//! (`jararaca-http`, `jararaca-bus`) plugged into the service through one trait,
//! [`Capability`].

pub mod cli;
mod log_fields;
mod microservice;
pub mod reload;
pub mod telemetry;

/// The API description: routes, parameters, responses, types (`jararaca-api`).
pub use jararaca_api as api;
/// The message bus (`jararaca-bus`, feature `bus`): messages, message controllers, the
/// worker and the `worker`/`declare` commands.
#[cfg(feature = "bus")]
pub use jararaca_bus as bus;
/// Scheduled actions (`jararaca-cron`, feature `cron`): `ScheduledAction`,
/// `ScheduledController`, the beat and the `beat` command.
#[cfg(feature = "cron")]
pub use jararaca_cron as cron;
pub use jararaca_di as di;
pub use jararaca_di::trace;
pub use jararaca_di::{
    App, BoxError, Capability, Container, ContainerBuilder, Contribution, Envelope, Inject,
    Injectable, Interceptors, Provider, Role, Scope, Token, Unit, UnitKind, UnitOfWork,
    UnitOutcome, inject, use_container, use_unit_of_work,
};
/// The HTTP capability (`jararaca-http`, feature `http`, on by default): controllers,
/// validated extractors, OpenAPI, docs, health, tracing and the server.
#[cfg(feature = "http")]
pub use jararaca_http as http;
#[cfg(feature = "http")]
pub use jararaca_http::server;
#[cfg(feature = "bus")]
pub use jararaca_macros::Message;
#[cfg(feature = "rpc")]
pub use jararaca_macros::rest_client;
#[cfg(feature = "cron")]
pub use jararaca_macros::scheduled;
pub use jararaca_macros::{Injectable, controller};
#[cfg(feature = "ws")]
pub use jararaca_macros::{WebSocketMessage, websocket_controller};
/// REST clients (`jararaca-rpc`, feature `rpc`): the request builder, `RestClient`, its
/// transports and layers; `#[rest_client]` declares one.
#[cfg(feature = "rpc")]
pub use jararaca_rpc as rpc;
/// The TypeScript client (`jararaca-tsgen`, feature `tsgen`): `generate`, `export` for a
/// one-line `#[test]`, and the `TypeScript` capability that adds `gen-tsi`.
#[cfg(feature = "tsgen")]
pub use jararaca_tsgen as tsgen;
/// WebSocket (`jararaca-ws`, feature `ws`): messages, rooms, the manager, endpoints and the
/// Redis fan-out; `#[derive(WebSocketMessage)]` and `#[websocket_controller]` declare them.
#[cfg(feature = "ws")]
pub use jararaca_ws as ws;
pub use microservice::{AppBuildError, Microservice};

/// The extension traits that give a built [`App`] its capabilities' accessors
/// (`app.router()`, `app.worker()`): `use jararaca::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "bus")]
    pub use jararaca_bus::BusApp;
    #[cfg(feature = "http")]
    pub use jararaca_http::HttpApp;
    #[cfg(feature = "ws")]
    pub use jararaca_ws::{WebSocketApp, WebSocketMessageExt};
}

/// JSON Schema for API types (derive `schemars::JsonSchema` on DTOs; depend on `schemars`
/// directly so the derive finds it).
pub use jararaca_api::schemars;
/// TypeScript declarations for API types (derive `ts_rs::TS` on DTOs; depend on `ts-rs`
/// directly so the derive finds it).
pub use jararaca_api::ts_rs;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
