//! [`TraceContextLayer`]: W3C `traceparent` on outgoing requests, continuing the current unit
//! of work's trace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use http::header::{HeaderName, HeaderValue};
use jararaca_di::TraceContext;
use pin_project_lite::pin_project;
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
    type Future = ResponseFuture<S::Future>;

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
            return ResponseFuture::plain(self.inner.call(request));
        };
        // No span at all when nothing records it: a disabled span still costs a `log` check on
        // every poll when tracing's `log` feature is on, and entering even `Span::none()` on
        // every poll and on drop is work for nothing.
        let span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            tracing::debug_span!(
                "rpc.client",
                http.method = %request.method(),
                url = %request.uri(),
            )
        });
        let child = parent
            .child()
            .export(span.as_ref().unwrap_or(&tracing::Span::none()));
        // The header is how the child travels, to the layers below as to the server; it is
        // not also put in the extensions, which would cost three allocations per request here
        // and as many again in each retry's copy.
        if let Ok(value) = HeaderValue::from_bytes(&child.traceparent_bytes()) {
            request.headers_mut().insert(TRACEPARENT, value);
        }
        let future = self.inner.call(request);
        match span {
            Some(span) => ResponseFuture {
                kind: Kind::Traced {
                    future: future.instrument(span),
                },
            },
            None => ResponseFuture::plain(future),
        }
    }
}

pin_project! {
    /// Response future of [`TraceContextService`]: the inner service's, in the `rpc.client`
    /// span when one is recorded.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Plain { #[pin] future: F },
        Traced { #[pin] future: Instrumented<F> },
    }
}

impl<F> ResponseFuture<F> {
    fn plain(future: F) -> Self {
        Self {
            kind: Kind::Plain { future },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            KindProj::Plain { future } => future.poll(cx),
            KindProj::Traced { future } => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use jararaca_di::{UnitKind, UnitOfWork};
    use tower::{ServiceExt, service_fn};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What the inner service saw: the `traceparent` it was sent and the span it ran in.
    type Seen = Arc<Mutex<Vec<(String, Option<&'static str>)>>>;

    fn recording(
        seen: Seen,
    ) -> TraceContextService<
        impl Service<Request<()>, Response = (), Error = std::convert::Infallible>,
    > {
        TraceContextLayer::new().layer(service_fn(move |request: Request<()>| {
            let seen = Arc::clone(&seen);
            async move {
                let traceparent = request
                    .headers()
                    .get(TRACEPARENT)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let span = tracing::Span::current().metadata().map(|m| m.name());
                seen.lock().unwrap().push((traceparent, span));
                Ok::<_, std::convert::Infallible>(())
            }
        }))
    }

    async fn call_in_unit<S>(service: S, parent: TraceContext)
    where
        S: Service<Request<()>, Response = ()>,
        S::Error: std::fmt::Debug,
    {
        let unit = UnitOfWork::traced(UnitKind::Http, Some(parent));
        let request = Request::get("http://h/items").body(()).unwrap();
        unit.scope(service.oneshot(request)).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_call_runs_in_an_rpc_client_span_only_when_one_is_recorded() {
        let parent = TraceContext::continue_from(None);
        let seen = Seen::default();

        // Nothing records DEBUG: the child's header goes out, and no span is made.
        call_in_unit(recording(Arc::clone(&seen)), parent).await;

        // A subscriber that records DEBUG: the inner call runs inside `rpc.client`.
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::DEBUG);
        let guard = tracing::subscriber::set_default(subscriber);
        call_in_unit(recording(Arc::clone(&seen)), parent).await;
        drop(guard);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1, None, "no span without a subscriber");
        assert_eq!(seen[1].1, Some("rpc.client"));
        for (traceparent, _) in seen.iter() {
            let link = jararaca_di::trace::TraceLink::parse(traceparent).expect(traceparent);
            assert_eq!(link.trace_id, parent.trace_id, "the unit's trace");
            assert_ne!(link.span_id, parent.span_id, "a child span of the unit's");
        }
        assert_ne!(seen[0].0, seen[1].0, "one child per call");
    }
}
