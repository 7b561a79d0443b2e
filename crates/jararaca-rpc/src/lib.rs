//! REST clients for Jararaca services: a request builder, typed errors, and a client stack of
//! tower layers over a pooled hyper-util transport or an in-process axum `Router`.
//!
//! - [`RestRequest`] builds one call: a method, a path template with `{name}` parameters
//!   (each value percent-encoded as one segment), query parameters, headers, and a JSON, form,
//!   multipart or raw body, plus per-route settings (timeout, whether it may be retried, which
//!   statuses are a success, status → error mappers).
//! - [`RestClient`] joins it to a base URL (whose path is kept), sends it through any tower
//!   `Service<http::Request<Body>>`, and returns the decoded body ([`RestClient::json`]), the
//!   bytes ([`RestClient::bytes`]), the whole response ([`RestClient::send`]) or nothing
//!   ([`RestClient::execute`]). Any 2xx is a success unless the route says otherwise; other
//!   statuses go through the route's, then the client's, mappers into [`RpcError::Mapped`].
//! - `#[rest_client("/base")]` (in `jararaca-macros`) declares a client as a trait of routes and
//!   implements it with the two above; the README shows the same client written by hand.
//! - [`RestClient::boxed`] erases the stack's type ([`BoxService`]), so a client can be a
//!   provider in the container, built by a factory from the typed configuration (the README's
//!   "Clients in the container").
//! - Transports: [`HyperTransport`] (one connection pool per value, shared by its clones) and
//!   [`RouterTransport`] (an axum `Router`, called in process, for tests).
//! - Layers: [`AuthLayer`] (bearer, basic, API key), [`TokenAuthLayer`] (an async token
//!   provider, refreshed once on `401`), [`CacheLayer`], [`retry`] (the [`jararaca_retry`]
//!   policy for HTTP), [`TimeoutLayer`] and [`TraceContextLayer`]. tower-http's client layers
//!   (`DecompressionLayer`, `FollowRedirectLayer`, `SetRequestHeaderLayer`) stack with them.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Json, Router, extract::Path, routing::get};
//! use jararaca_retry::RetryPolicy;
//! use jararaca_rpc::{RestClient, RestRequest, RouterTransport, TimeoutLayer};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The service being called; here in process, usually `HyperTransport::new()`.
//! let orders = Router::new().route(
//!     "/api/orders/{id}",
//!     get(|Path(id): Path<String>| async move { Json(serde_json::json!({ "id": id })) }),
//! );
//!
//! let stack = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .layer(jararaca_rpc::retry(RetryPolicy::default().max_retries(2)))
//!     .service(RouterTransport::new(orders));
//! let client = RestClient::new(stack, "http://orders.internal/api")?;
//!
//! let order: serde_json::Value = client
//!     .json(RestRequest::get("/orders/{id}").path("id", "a b"))
//!     .await?;
//! assert_eq!(order["id"], "a b");
//! # Ok(())
//! # }
//! ```

mod auth;
mod body;
mod cache;
mod client;
mod error;
mod request;
mod response;
mod retry;
pub mod route;
mod sending;
mod timeout;
mod trace;
mod transport;

pub use auth::{Auth, AuthLayer, BoxFuture, TokenAuth, TokenAuthLayer, TokenError, TokenProvider};
pub use body::{Body, try_clone_request};
pub use cache::{Cache, CacheLayer};
pub use client::{BoxService, InvalidBaseUrl, RestClient};
pub use error::{RpcError, TimeoutError};
pub use request::{FilePart, RestRequest};
pub use response::RpcResponse;
pub use retry::{HttpReplay, HttpRetryPredicate, retry};
pub use timeout::{ResponseFuture as TimeoutFuture, Timeout, TimeoutLayer};
pub use trace::{ResponseFuture as TraceContextFuture, TraceContextLayer, TraceContextService};
#[cfg(feature = "hyper")]
pub use transport::HyperTransport;
#[cfg(feature = "axum")]
pub use transport::RouterTransport;

/// The `http` crate, re-exported so a client names the same version (and `#[rest_client]`
/// can name it without the caller depending on it).
pub use http;
/// The `http-body` crate, re-exported for the response body bound of a client stack.
pub use http_body;
/// The tower `Service` trait a client stack implements.
pub use tower_service::Service;

/// The error type at the generic tower boundaries of the client stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

// The README's examples are compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
