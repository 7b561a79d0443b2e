//! The API description of a Jararaca service: its routes (parameters, bodies, responses),
//! the WebSocket messages it pushes and the types it exposes, each type with its JSON Schema
//! (schemars) and its TypeScript (ts-rs).
//!
//! It knows no web framework. The HTTP crate fills it from handler signatures through
//! [`RouteInput`] and [`RouteOutput`] and renders OpenAPI from it; the TypeScript generator
//! reads only this crate. A crate whose types appear in handlers implements these traits for
//! them (usually with an empty body: an injected service is not part of the contract).
//!
//! ```
//! use jararaca_api::{HandlerMeta, RouteMeta, RouteOutput, TypeInfo};
//!
//! async fn version() -> String {
//!     "1.0".into()
//! }
//!
//! fn describe<H: HandlerMeta<A>, A>(_: &H) -> RouteMeta {
//!     let mut route = RouteMeta::new(http::Method::GET);
//!     H::describe(&mut route);
//!     route
//! }
//!
//! let route = describe(&version);
//! assert_eq!(route.responses[0].content_type, Some("text/plain; charset=utf-8"));
//! assert_eq!(TypeInfo::of::<Vec<u32>>().ts_name(&ts_rs::Config::default()), "Array<number>");
//! ```

mod description;
mod route;
mod types;

pub use description::{ApiDescription, ApiInfo, WebSocketMessageMeta};
pub use route::{
    ClientHooks, ErrorBody, HandlerMeta, ParamLocation, ParamsMeta, ResponseMeta, RouteInput,
    RouteMeta, RouteOutput, describe_error_response,
};
pub use types::{TsDeclaration, TypeInfo};

/// JSON Schema for API types; derive `schemars::JsonSchema` on them.
pub use schemars;
/// TypeScript for API types; derive `ts_rs::TS` on them.
pub use ts_rs;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
