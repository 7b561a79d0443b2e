//! The core of Jararaca: dependency injection, typed configuration, the unit of work and the
//! [`Envelope`] every unit of work implements.
//!
//! Every piece of work a Jararaca service runs — an HTTP request, a delivered message, a
//! scheduled tick, a WebSocket connection — is a request type flowing through a tower
//! `Service` and implementing [`Envelope`]. Interceptors are tower layers generic over any
//! envelope, so the same stack wraps routes, message handlers and scheduled actions:
//!
//! * [`ScopeLayer`] gives each unit a DI [`Scope`] over the application's [`Container`];
//! * [`UnitOfWorkLayer`] decides each unit: it commits the enlisted [`Resource`]s (a database
//!   transaction) and then runs the after-commit actions (message publishes, WebSocket sends)
//!   when the unit succeeds, and rolls everything back when it fails or is cancelled;
//! * [`CatchPanicLayer`] turns a panicking handler into a failed unit (a JSON 500 for HTTP,
//!   an `Err` for a message handler) instead of a crashed task.
//!
//! Handlers reach those values through extractors ([`Inject`], [`UnitOfWork`], [`Scope`]) or
//! through ambient accessors ([`use_container`], [`inject`], [`use_unit_of_work`]).
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use jararaca_di::{Container, ScopeLayer, UnitOfWorkLayer, UnitKind, inject, use_unit_of_work};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! struct Greeter(&'static str);
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let container = Container::builder().value(Greeter("hello")).build().await?;
//! let stack = ServiceBuilder::new()
//!     .layer(UnitOfWorkLayer::new())
//!     .layer(ScopeLayer::new(container));
//!
//! // Any `Envelope` works; here a plain `http::Request` reaches a non-axum service.
//! let service = stack.service(service_fn(|_req: http::Request<()>| async {
//!     let greeter: Arc<Greeter> = inject().await?;
//!     use_unit_of_work()?.after_commit("log", || async {
//!         println!("runs only if the unit succeeded");
//!         Ok(())
//!     })?;
//!     Ok::<_, jararaca_di::BoxError>(greeter.0)
//! }));
//! assert_eq!(service.oneshot(http::Request::new(())).await?, "hello");
//! # Ok::<_, jararaca_di::BoxError>(())
//! # }).unwrap();
//! ```
//!
//! Containers check their whole graph when built: every missing provider (naming who needs
//! it), every cycle and every invalid configuration variable is reported at once, at startup.

mod ambient;
pub mod app;
pub mod config;
mod container;
mod describe;
mod envelope;
#[cfg(feature = "axum")]
mod extract;
mod lifecycle;
mod panic;
mod scope;
pub mod trace;
mod uow;

pub use ambient::{
    InjectError, OutsideUnit, current_trace, inject, use_container, use_scope, use_unit_of_work,
};
pub use app::{
    App, BuildContext, Capabilities, Capability, CommandKind, CommandSpec, Contribution, EnvVar,
    InterceptLayer, Interceptors, Part, ReadinessChecks, Role, SetupContext, Stop, ToolContext,
    Unit, UnitLayer, UnitOutcome, UnitService,
};
pub use container::{
    BuildError, Container, ContainerBuilder, Dependency, Factory, Injectable, Key, Lifetime,
    Problem, Provider, ResolveError, Resolver, Scope, Token,
};
pub use envelope::{Envelope, UnitKind};
#[cfg(feature = "axum")]
pub use extract::{Inject, Rejection};
pub use lifecycle::ShutdownError;
pub use panic::{CatchPanic, CatchPanicFuture, CatchPanicLayer, Panicked};
pub use scope::{ScopeLayer, ScopeService};
pub use trace::TraceContext;
pub use uow::{
    ActionErrorHandler, DefaultJudge, Judge, Outcome, Resource, ResponseFuture, UnitConflict,
    UnitError, UnitOfWork, UnitOfWorkLayer, UnitOfWorkService,
};

/// The error type at generic tower boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
