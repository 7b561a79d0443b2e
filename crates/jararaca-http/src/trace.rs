//! A span per HTTP request that continues an incoming W3C `traceparent` and echoes the trace
//! in the response's `traceparent` header, as the reference's trace-header middleware does,
//! and the request's `x-request-id`, kept from the client or made up.
//!
//! Both live in one layer because they share the work: one pass over the request headers,
//! one random seed, one response future that writes both headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::header::Entry;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_http::request_id::RequestId;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Level, Span, field};

/// The W3C trace-context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The request-id header: the client's value is kept, otherwise one of 32 random hex digits is
/// set, and the response echoes it (unless the handler set its own).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The trace position of the current request, in its extensions so outgoing calls and
/// published messages continue the trace (shared by every transport).
pub use jararaca_di::TraceContext;

/// Wraps each request in a span (`http.request`: method, route template, status, latency,
/// trace and span ids), sets the response's `traceparent`, and gives every request an
/// `x-request-id` (in its headers and as a [`RequestId`] extension) that the response echoes.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    level: Level,
}

impl Default for TraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceLayer {
    /// Spans at `DEBUG`: present when the log filter enables them for `jararaca_http`
    /// (`RUST_LOG=info,jararaca_http=debug`) or an OpenTelemetry layer asks for them, and free
    /// otherwise. The `traceparent` is continued and echoed either way.
    pub fn new() -> Self {
        Self {
            level: Level::DEBUG,
        }
    }

    /// Spans at `level` instead (`INFO` puts them under the default `info` filter, at a cost
    /// of about a tenth of the throughput of a trivial route with a `fmt` subscriber).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            level: self.level,
        }
    }
}

/// The service of [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    level: Level,
}

macro_rules! request_span {
    ($level:expr, $($fields:tt)*) => {
        match $level {
            Level::ERROR => tracing::error_span!("http.request", $($fields)*),
            Level::WARN => tracing::warn_span!("http.request", $($fields)*),
            Level::INFO => tracing::info_span!("http.request", $($fields)*),
            Level::DEBUG => tracing::debug_span!("http.request", $($fields)*),
            _ => tracing::trace_span!("http.request", $($fields)*),
        }
    };
}

impl<S, B, ResBody> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // One access to the thread's generator; the ids of this request come from the seed.
        let mut rng = fastrand::Rng::with_seed(fastrand::u64(..));
        let headers = req.headers();
        let context = TraceContext::continue_with(
            headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
            &mut rng,
        );
        let request_id = match headers.get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = HeaderValue::from_bytes(&jararaca_di::trace::hex::<16, 32>(
                    rng.u128(..).to_be_bytes(),
                ))
                .unwrap_or_else(|_| unreachable!("hex digits are a valid header value"));
                // Handlers and interceptors read the id where a client would have sent it.
                req.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        req.extensions_mut()
            .get_or_insert_with(|| RequestId::new(request_id.clone()));
        // The field values are evaluated only when the span is enabled.
        let span = request_span!(
            self.level,
            http.request.method = %req.method(),
            http.route = route_of(&req),
            http.response.status_code = field::Empty,
            latency_ms = field::Empty,
            trace_id = %format_args!("{:032x}", context.trace_id),
            span_id = %format_args!("{:016x}", context.span_id),
            parent_span_id = field::Empty,
        );
        if let Some(parent) = context.parent_span_id {
            span.record(
                "parent_span_id",
                field::display(format_args!("{parent:016x}")),
            );
        }
        let context = context.export(&span);
        req.extensions_mut().insert(context);
        // Reading the clock is only worth it when someone records the latency.
        let start = (!span.is_disabled() || tracing::enabled!(Level::DEBUG)).then(Instant::now);
        let future = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner: future,
            span,
            start,
            context,
            request_id: Some(request_id),
        }
    }
}

fn route_of<B>(req: &Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path(), MatchedPath::as_str)
}

pin_project! {
    /// The response future of [`Trace`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Option<Instant>,
        context: TraceContext,
        request_id: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut result = ready!(this.inner.poll(cx));
        let latency = this.start.map(|start| start.elapsed());
        if let Some(latency) = latency {
            this.span
                .record("latency_ms", latency.as_secs_f64() * 1000.0);
        }
        if let Ok(response) = &mut result {
            let headers = response.headers_mut();
            // A handler that set its own request id keeps it.
            if let (Entry::Vacant(entry), Some(id)) =
                (headers.entry(X_REQUEST_ID), this.request_id.take())
            {
                entry.insert(id);
            }
            if let Ok(value) = HeaderValue::from_bytes(&this.context.traceparent_bytes()) {
                headers.insert(TRACEPARENT, value);
            }
            if let Some(latency) = latency {
                let status = response.status().as_u16();
                this.span.record("http.response.status_code", status);
                tracing::debug!(status, ?latency, "request finished");
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(request: Request<()>, own_id: bool) -> (Response<()>, Request<()>) {
        use tower::{ServiceExt, service_fn};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let keep = std::sync::Arc::clone(&seen);
        let service = TraceLayer::new().layer(service_fn(move |req: Request<()>| {
            let keep = std::sync::Arc::clone(&keep);
            async move {
                let mut response = Response::new(());
                if own_id {
                    response
                        .headers_mut()
                        .insert(X_REQUEST_ID, HeaderValue::from_static("mine"));
                }
                *keep.lock().unwrap() = Some(req);
                Ok::<_, std::convert::Infallible>(response)
            }
        }));
        let response = service.oneshot(request).await.unwrap();
        let request = seen.lock().unwrap().take().unwrap();
        (response, request)
    }

    #[tokio::test]
    async fn request_ids_are_kept_or_made_and_echoed_with_the_trace() {
        let (response, request) = call(Request::new(()), false).await;
        let id = &response.headers()[X_REQUEST_ID];
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        assert_eq!(&request.headers()[X_REQUEST_ID], id);
        assert_eq!(
            request
                .extensions()
                .get::<RequestId>()
                .unwrap()
                .header_value(),
            id
        );
        let context = request.extensions().get::<TraceContext>().unwrap();
        assert_eq!(
            response.headers()[TRACEPARENT],
            context.traceparent().as_str()
        );
        assert_eq!(
            response.extensions().len(),
            0,
            "nothing is added to the response"
        );

        let (other, _) = call(Request::new(()), false).await;
        assert_ne!(&other.headers()[X_REQUEST_ID], id, "a new id per request");

        let from_client = Request::builder()
            .header(X_REQUEST_ID, "abc")
            .body(())
            .unwrap();
        let (response, request) = call(from_client, false).await;
        assert_eq!(response.headers()[X_REQUEST_ID], "abc");
        assert_eq!(
            request
                .extensions()
                .get::<RequestId>()
                .unwrap()
                .header_value(),
            "abc"
        );

        let (response, _) = call(Request::new(()), true).await;
        assert_eq!(
            response.headers()[X_REQUEST_ID],
            "mine",
            "the handler's id wins"
        );
    }
}
