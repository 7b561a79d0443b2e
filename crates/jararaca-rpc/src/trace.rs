//! [`TraceContextLayer`]: W3C `traceparent` on outgoing requests, continuing the current unit
//! of work's trace.

use std::task::{Context, Poll};

use http::Request;
use http::header::{HeaderName, HeaderValue};
use jararaca_di::TraceContext;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::instrument::Instrumented;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sends each request as a child span of the trace it is part of: the [`TraceContext`] in the
/// request's extensions, else the current unit of work's
/// ([`jararaca_di::current_trace`]). The call runs in a `rpc.client` span tied to that child
/// ([`TraceContext::export`]), and the child's `traceparent` goes in the request.
///
/// A request that already has a `traceparent`, or is sent outside any trace, is left as it is.
/// No `baggage` is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl TraceContextLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContextService { inner }
    }
}

/// The service of [`TraceContextLayer`].
#[derive(Debug, Clone)]
pub struct TraceContextService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TraceContextService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let parent = if request.headers().contains_key(TRACEPARENT) {
            None
        } else {
            request
                .extensions()
                .get::<TraceContext>()
                .copied()
                .or_else(jararaca_di::current_trace)
        };
        let Some(parent) = parent else {
            return self.inner.call(request).instrument(tracing::Span::none());
        };
        // No span at all when nothing records it: a disabled span still costs a `log` check on
        // every poll when tracing's `log` feature is on.
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!(
                "rpc.client",
                http.method = %request.method(),
                url = %request.uri(),
            )
        } else {
            tracing::Span::none()
        };
        let child = parent.child().export(&span);
        // The header is how the child travels, to the layers below as to the server; it is
        // not also put in the extensions, which would cost three allocations per request here
        // and as many again in each retry's copy.
        if let Ok(value) = HeaderValue::from_bytes(&child.traceparent_bytes()) {
            request.headers_mut().insert(TRACEPARENT, value);
        }
        self.inner.call(request).instrument(span)
    }
}
