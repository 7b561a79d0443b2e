//! Retry with exponential backoff, jitter and a cap, for Jararaca services.
//!
//! Two ways to use one [`RetryPolicy`]:
//!
//! - [`RetryPolicy::retry`] / [`RetryPolicy::retry_if`] retry a plain async operation (connecting
//!   to a broker, declaring a queue), driven by [`tokio_retry`] with the policy's delays;
//! - [`RetryLayer`] retries calls through any tower [`Service`](tower_service::Service) whose
//!   request is `Clone` (or can be copied by a [`Replay`]), whatever the transport: an HTTP
//!   client, a bus handler, a job. A [`RetryPredicate`] decides which outcomes are retried
//!   ([`DefaultRetryPredicate`]: every `Err`) and may replace the backoff delay with the one an
//!   outcome asks for.
//!
//! The policy's defaults are the reference `RetryPolicy()`: 5 retries, 1 s doubling up to 60 s,
//! with jitter. Each retry emits a `debug` event (attempt, delay) and giving up a `warn` event.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use jararaca_retry::{RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counted = Arc::clone(&calls);
//! // A flaky dependency: the first two calls fail.
//! let flaky = service_fn(move |name: &'static str| {
//!     let n = counted.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n < 2 { Err("unavailable") } else { Ok(format!("hello, {name}")) }
//!     }
//! });
//!
//! let policy = RetryPolicy::default()
//!     .max_retries(3)
//!     .initial_delay(Duration::from_millis(200));
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy))
//!     .service(flaky);
//!
//! assert_eq!(service.oneshot("jararaca").await.as_deref(), Ok("hello, jararaca"));
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```

mod future;
mod policy;
mod predicate;
mod replay;
mod service;

pub use future::ResponseFuture;
pub use policy::{Delays, RetryPolicy};
pub use predicate::{DefaultRetryPredicate, RetryPredicate};
pub use replay::{CloneReplay, Replay};
pub use service::{Retry, RetryLayer};

// The README's examples are compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
