//! The TypeScript client of a Jararaca service, generated from its API description
//! ([`jararaca_api::ApiDescription`]) as one `.ts` file for the npm runtime `@jararaca/core`:
//!
//! * every type the API reaches, once, sorted by name (ts-rs gives the type expressions;
//!   64-bit integers are `number`), with property names as the runtime delivers them — its
//!   own snake→camel rule (`customer_name` → `customerName`, `line_1` stays) — and enums as
//!   `const` objects plus a type (string enums by value, `#[ts(repr(enum))]` enums by number);
//! * the `WebSocketMessageMap` of the messages the server pushes;
//! * one class per controller extending `HttpService`, one camelCase method per route that
//!   calls `this.httpBackend.request({ method, path, pathParams, headers, query, body })` on
//!   the path exactly as served;
//! * the react-query hook bundle of the routes marked as queries, infinite queries or
//!   mutations ([`jararaca_api::ClientHooks`]).
//!
//! The file compiles under `tsc --strict` and under the Vite template's flags
//! (`verbatimModuleSyntax`, `erasableSyntaxOnly`, `noUnusedLocals`, `noUnusedParameters`),
//! with `skipLibCheck` for `@jararaca/core`'s own declarations. Generation fails, saying
//! what to change, when a field the client sends would not come back to the server under its
//! name (the runtime turns each capital into `_` + lowercase), or when two types would share
//! a name.
//!
//! ```
//! use jararaca_api::{ApiDescription, ApiInfo, ParamLocation, ParamsMeta, ResponseMeta, RouteMeta, TypeInfo};
//!
//! #[derive(serde::Serialize, schemars::JsonSchema, ts_rs::TS)]
//! struct Task {
//!     id: u64,
//!     created_by: String,
//! }
//!
//! let mut route = RouteMeta::new(http::Method::GET);
//! route.path = "/tasks/{id}".into();
//! route.handler = "get_task".into();
//! route.controller = "TasksController".into();
//! route.params.push(ParamsMeta { location: ParamLocation::Path, ty: TypeInfo::of::<u64>(), header: None });
//! route.responses.push(ResponseMeta {
//!     status: Some(http::StatusCode::OK),
//!     body: Some(TypeInfo::of::<Task>()),
//!     content_type: None,
//! });
//! let mut api = ApiDescription::new(ApiInfo::new("tasks"));
//! api.routes.push(route);
//!
//! let ts = jararaca_tsgen::generate(&api).unwrap();
//! assert!(ts.contains("export interface Task {\n  id: number;\n  createdBy: string;\n}"));
//! assert!(ts.contains("export class TasksController extends HttpService {"));
//! assert!(ts.contains("async getTask(id: number): Promise<Task> {"));
//! assert!(ts.contains("path: \"/tasks/:id\","));
//! ```
//!
//! Three ways to run it: [`export`] in a one-line `#[test]` of the service (writes the file
//! during `cargo test`, fails under `CI=true` when the committed file is stale); the
//! `gen-tsi` command that the [`TypeScript`] capability adds to the service's CLI; and
//! [`generate`] for anything else.

mod capability;
mod client;
mod error;
mod file;
pub mod names;
mod syntax;
mod types;

pub use capability::TypeScript;
pub use error::TsGenError;
pub use file::{Written, export, export_with};

use jararaca_api::ApiDescription;

/// How the client is generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    prefix: String,
}

impl Options {
    /// The defaults: paths as the API description has them.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `prefix` before every path: for a service mounted under a path of its own
    /// (`"/api"`) that its routes do not include.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The client of `api`, as the text of one `.ts` file.
pub fn generate(api: &ApiDescription) -> Result<String, TsGenError> {
    generate_with(api, &Options::default())
}

/// The client of `api` generated with `options`.
pub fn generate_with(api: &ApiDescription, options: &Options) -> Result<String, TsGenError> {
    client::generate(api, options)
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
