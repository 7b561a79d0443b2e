//! [`TimeoutLayer`]: a deadline per call, with a per-route override.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use crate::route::RouteTimeout;
use crate::{BoxError, TimeoutError};

/// Fails a call with [`TimeoutError`] when the inner service has not answered within the
/// route's timeout ([`RestRequest::timeout`](crate::RestRequest::timeout)) or else this
/// layer's default.
///
/// Outside a retry layer it bounds the whole call, retries included; inside, each attempt.
/// It covers the wait for the response head; the client reads the body after it.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    default: Duration,
}

impl TimeoutLayer {
    /// A layer with `default` for routes that set no timeout of their own.
    pub fn new(default: Duration) -> Self {
        Self { default }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            default: self.default,
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    default: Duration,
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let after = request
            .extensions()
            .get::<RouteTimeout>()
            .map_or(self.default, |t| t.0);
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: tokio::time::sleep(after),
            after,
        }
    }
}

pin_project! {
    /// Response future of [`Timeout`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        after: Duration,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(outcome.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimeoutError { after: *this.after }.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}
