//! Per-route settings a [`RestRequest`](crate::RestRequest) puts in the request's extensions,
//! for the layers of the client stack to read.

use std::time::Duration;

/// The timeout of one route, read by [`TimeoutLayer`](crate::TimeoutLayer) in place of its
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTimeout(pub Duration);

/// Whether one request may be retried, read by [`HttpReplay`](crate::HttpReplay) in place of
/// its method rule (`true` lets a POST known to be idempotent be retried; `false` forbids
/// retrying a GET with side effects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retryable(pub bool);

/// Copies the route settings above onto a replayed request.
pub(crate) fn copy_route_extensions(from: &http::Extensions, to: &mut http::Extensions) {
    if let Some(timeout) = from.get::<RouteTimeout>() {
        to.insert(*timeout);
    }
    if let Some(retryable) = from.get::<Retryable>() {
        to.insert(*retryable);
    }
    if let Some(trace) = from.get::<jararaca_di::TraceContext>() {
        to.insert(*trace);
    }
}
