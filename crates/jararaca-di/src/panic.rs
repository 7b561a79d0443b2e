//! [`CatchPanicLayer`]: a unit of work whose handler panics becomes a failed unit.
//!
//! Transport-neutral: it wraps any service over an [`Envelope`] whose result is an
//! [`Outcome`], so a panicking HTTP route answers with the JSON 500 of
//! [`Outcome::failure`] and a panicking message handler returns `Err` (which the bus worker
//! retries, then dead-letters). Put it *inside* the [`UnitOfWorkLayer`](crate::UnitOfWorkLayer)
//! so the unit sees a failure and rolls back; outside it, the unit of work sees its future
//! dropped mid-poll, which rolls back too, as a cancellation.
//!
//! Catching relies on unwinding: with `panic = "abort"` the process still aborts.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Envelope, Outcome, UnitKind};

/// The error a panicking handler fails its unit with. Its message is the panic's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the handler panicked: {message}")]
pub struct Panicked {
    message: String,
}

impl Panicked {
    /// The error for a caught panic payload (what [`catch_unwind`] returns).
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
            (*text).to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "a panic without a message".to_string()
        };
        Self { message }
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn failure<O: Outcome>(payload: &(dyn Any + Send), kind: UnitKind) -> O {
        let panicked = Self::from_payload(payload);
        tracing::error!(unit = kind.as_str(), panic = %panicked.message, "the handler panicked; the unit of work fails");
        O::failure(Box::new(panicked))
    }
}

/// Turns a panic in the inner service's `call`, or while its future is polled, into a failed
/// [`Outcome`] (an error of type [`Panicked`]), logged once at ERROR.
///
/// ```
/// use jararaca_di::{BoxError, CatchPanicLayer, Panicked};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let service = ServiceBuilder::new()
///     .layer(CatchPanicLayer::new())
///     .service(service_fn(|_req: http::Request<()>| async {
///         if true { panic!("boom") }
///         Ok::<(), BoxError>(())
///     }));
/// let error = service.oneshot(http::Request::new(())).await.unwrap_err();
/// assert_eq!(error.to_string(), "the handler panicked: boom");
/// assert!(error.is::<Panicked>());
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer {
    _private: (),
}

impl CatchPanicLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

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

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps it.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for CatchPanic<S>
where
    S: Service<R>,
    R: Envelope,
    Result<S::Response, S::Error>: Outcome,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let kind = req.kind();
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => State::Running { future },
            Err(payload) => State::Failed {
                outcome: Some(Panicked::failure(&*payload, kind)),
            },
        };
        CatchPanicFuture { state, kind }
    }
}

pin_project! {
    /// The response future of [`CatchPanic`]: the inner future, polled inside
    /// [`catch_unwind`].
    pub struct CatchPanicFuture<F, O> {
        #[pin]
        state: State<F, O>,
        kind: UnitKind,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, O> {
        Running { #[pin] future: F },
        // `call` panicked: the failure is ready.
        Failed { outcome: Option<O> },
        Done,
    }
}

impl<F, O> fmt::Debug for CatchPanicFuture<F, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatchPanicFuture")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<F, O> Future for CatchPanicFuture<F, O>
where
    F: Future<Output = O>,
    O: Outcome,
{
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let mut this = self.project();
        match this.state.as_mut().project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(poll) => poll,
                    Err(payload) => {
                        let outcome = Panicked::failure(&*payload, *this.kind);
                        // The future is broken; drop it now (its own drop may panic too).
                        let _ = catch_unwind(AssertUnwindSafe(|| this.state.set(State::Done)));
                        Poll::Ready(outcome)
                    }
                }
            }
            StateProj::Failed { outcome } => match outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => panic!("CatchPanicFuture polled after completion"),
            },
            StateProj::Done => panic!("CatchPanicFuture polled after completion"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::{BoxError, UnitOfWorkLayer, use_unit_of_work};

    type Response = http::Response<String>;

    fn request() -> http::Request<()> {
        http::Request::new(())
    }

    #[tokio::test]
    async fn a_panic_while_polling_is_an_err_naming_the_panic() {
        let service = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service(service_fn(|_req: http::Request<()>| async {
                tokio::task::yield_now().await;
                if true {
                    panic!("bad {}", 7);
                }
                Ok::<u32, BoxError>(1)
            }));
        let error = service.oneshot(request()).await.unwrap_err();
        assert_eq!(error.to_string(), "the handler panicked: bad 7");
        assert_eq!(
            error.downcast_ref::<Panicked>().map(Panicked::message),
            Some("bad 7")
        );
    }

    #[tokio::test]
    async fn a_panic_in_call_is_an_err_too() {
        let service = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service(service_fn(|_req: http::Request<()>| {
                if true {
                    panic!("in call");
                }
                async { Ok::<(), BoxError>(()) }
            }));
        let error = service.oneshot(request()).await.unwrap_err();
        assert_eq!(error.to_string(), "the handler panicked: in call");
    }

    #[tokio::test]
    async fn http_outcomes_become_a_json_500() {
        let service = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service(service_fn(|_req: http::Request<()>| async {
                if true {
                    panic!("route panicked");
                }
                Ok::<Response, Infallible>(http::Response::new(String::new()))
            }));
        let Ok(response) = service.oneshot(request()).await;
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers().get(http::header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        assert_eq!(response.body(), r#"{"detail":"Internal Server Error"}"#);
    }

    #[tokio::test]
    async fn without_a_panic_the_outcome_passes_through() {
        let service = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service(service_fn(|_req: http::Request<()>| async {
                Ok::<Response, Infallible>(
                    http::Response::builder()
                        .status(201)
                        .body("made".to_string())
                        .unwrap(),
                )
            }));
        let Ok(response) = service.oneshot(request()).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.body(), "made");
    }

    /// A unit that registers an after-commit action, then panics (or not).
    async fn unit(panics: bool) -> (Result<(), BoxError>, bool) {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let service = ServiceBuilder::new()
            .layer(UnitOfWorkLayer::new())
            .layer(CatchPanicLayer::new())
            .service(service_fn(move |_req: http::Request<()>| {
                let flag = Arc::clone(&flag);
                async move {
                    use_unit_of_work()?.after_commit("mark", move || async move {
                        flag.store(true, Ordering::SeqCst);
                        Ok(())
                    })?;
                    if panics {
                        panic!("after registering");
                    }
                    Ok::<(), BoxError>(())
                }
            }));
        let result = service.oneshot(request()).await;
        tokio::task::yield_now().await;
        (result, ran.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn inside_the_unit_of_work_a_panic_rolls_the_unit_back() {
        let (result, ran) = unit(false).await;
        assert!(result.is_ok() && ran, "without a panic the action runs");
        let (result, ran) = unit(true).await;
        let error = result.unwrap_err();
        assert!(error.is::<Panicked>(), "{error}");
        assert!(
            !ran,
            "the after-commit action of a panicked unit did not run"
        );
    }
}
