//! Turns a panicking handler into a 500, keeping the server serving. Unlike tower-http's
//! `CatchPanic`, the response body type is left as it is, so nothing is boxed per response.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// Answers a panic in the wrapped service with `500 {"detail":"Internal Server Error"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture {
                state: State::Running {
                    future: AssertUnwindSafe(future).catch_unwind(),
                },
            },
            Err(panic) => ResponseFuture {
                state: State::Panicked { panic: Some(panic) },
            },
        }
    }
}

pin_project! {
    /// The response future of [`CatchPanic`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: CatchUnwind<AssertUnwindSafe<F>> },
        Panicked { panic: Option<Box<dyn Any + Send>> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<&'static str>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let panic = match self.project().state.project() {
            StateProj::Running { future } => match ready!(future.poll(cx)) {
                Ok(result) => return Poll::Ready(result),
                Err(panic) => panic,
            },
            StateProj::Panicked { panic } => {
                panic.take().unwrap_or_else(|| Box::new("polled again"))
            }
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".to_owned());
        tracing::error!(panic = %message, "a handler panicked");
        let mut response = Response::new(ResBody::from(r#"{"detail":"Internal Server Error"}"#));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Poll::Ready(Ok(response))
    }
}
