//! [`Interceptors`]: the stack a service gives once, wrapped around every unit of every
//! transport.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

use super::unit::{Unit, UnitOutcome};
use crate::{Envelope, Outcome};

/// A unit's service with its types erased: what an interceptor layer wraps.
pub type UnitService = BoxCloneSyncService<Unit, UnitOutcome, Infallible>;

type Wrap = dyn Fn(UnitService) -> UnitService + Send + Sync;

/// A layer that can be an interceptor: its service over [`Unit`] answers [`UnitOutcome`]s,
/// is cloneable and `Send + Sync`, and so is its future. Every layer generic over
/// `R: Envelope` and transparent to the response is one.
pub trait UnitLayer:
    Layer<
        UnitService,
        Service: Service<
            Unit,
            Response = UnitOutcome,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
                     + Send
                     + Sync
                     + 'static,
    > + Send
    + Sync
    + 'static
{
}

impl<L> UnitLayer for L
where
    L: Layer<UnitService> + Send + Sync + 'static,
    L::Service:
        Service<Unit, Response = UnitOutcome, Error = Infallible> + Clone + Send + Sync + 'static,
    <L::Service as Service<Unit>>::Future: Send + 'static,
{
}

/// The interceptor stack of a service: tower layers written once for any
/// [`Envelope`], wrapped by every transport around each of its units (HTTP routes, message
/// handlers, scheduled ticks, WebSocket frames), inside the unit of work and the DI scope.
///
/// A layer qualifies when its service over [`Unit`] answers [`UnitOutcome`]s — which every
/// layer generic over `R: Envelope` and transparent to the response does. Adding a transport
/// adds no bound: each one erases its request into a `Unit` on the way in and takes it back
/// out on the way to its handler. With no interceptor, nothing is erased.
///
/// ```
/// use std::convert::Infallible;
/// use jararaca_di::{BoxError, Interceptors, UnitKind};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // Any layer works; this one lets every unit through.
/// let interceptors = Interceptors::new().layer(ServiceBuilder::new().map_request(|unit| unit));
///
/// // An HTTP-shaped service and a handler-shaped one, wrapped by the same stack.
/// let http = interceptors.layer_for::<http::Request<()>>().layer(service_fn(|_req| async {
///     Ok::<_, Infallible>(http::Response::new(String::from("hi")))
/// }));
/// let handler = interceptors.layer_for::<http::Request<u8>>().layer(service_fn(|req: http::Request<u8>| async move {
///     Ok::<_, BoxError>(*req.body())
/// }));
/// # use tower::Layer;
/// assert_eq!(http.oneshot(http::Request::new(())).await.unwrap().body(), "hi");
/// assert_eq!(handler.oneshot(http::Request::new(7)).await.unwrap(), 7);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Interceptors {
    layers: Vec<Arc<Wrap>>,
}

impl fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interceptors")
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl Interceptors {
    /// No interceptor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `layer` inside the ones added before (the first added is the outermost). Give a
    /// whole `ServiceBuilder` at once: each call boxes the stack once more.
    #[must_use]
    pub fn layer<L: UnitLayer>(mut self, layer: L) -> Self {
        self.layers
            .push(Arc::new(move |inner| UnitService::new(layer.layer(inner))));
        self
    }

    /// Adds every layer of `other` inside these.
    #[must_use]
    pub fn extend(mut self, other: Interceptors) -> Self {
        self.layers.extend(other.layers);
        self
    }

    /// Whether there is no interceptor.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Wraps a unit service in the whole stack.
    pub fn wrap(&self, inner: UnitService) -> UnitService {
        self.layers
            .iter()
            .rev()
            .fold(inner, |inner, wrap| wrap(inner))
    }

    /// The stack as a tower layer for a transport whose units are `R`s.
    pub fn layer_for<R: Envelope>(&self) -> InterceptLayer<R> {
        InterceptLayer {
            interceptors: self.clone(),
            _unit: PhantomData,
        }
    }
}

/// [`Interceptors`] as a layer for units of type `R`; made by [`Interceptors::layer_for`].
pub struct InterceptLayer<R> {
    interceptors: Interceptors,
    _unit: PhantomData<fn(R)>,
}

impl<R> Clone for InterceptLayer<R> {
    fn clone(&self) -> Self {
        Self {
            interceptors: self.interceptors.clone(),
            _unit: PhantomData,
        }
    }
}

impl<R> fmt::Debug for InterceptLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterceptLayer")
            .field("unit", &std::any::type_name::<R>())
            .field("interceptors", &self.interceptors)
            .finish()
    }
}

impl<R, S> Layer<S> for InterceptLayer<R>
where
    R: Envelope,
    S: Service<R> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + Sync + 'static,
    Result<S::Response, S::Error>: Outcome,
{
    type Service = Intercept<R, S>;

    fn layer(&self, inner: S) -> Self::Service {
        if self.interceptors.is_empty() {
            return Intercept {
                repr: InterceptRepr::Direct(inner),
                _unit: PhantomData,
            };
        }
        let edge = UnitService::new(Edge::new(inner));
        Intercept {
            repr: InterceptRepr::Stacked(self.interceptors.wrap(edge)),
            _unit: PhantomData,
        }
    }
}

/// The service of [`InterceptLayer`]: the inner service itself when there is no
/// interceptor, else the stack around it.
pub struct Intercept<R, S> {
    repr: InterceptRepr<S>,
    _unit: PhantomData<fn(R)>,
}

#[derive(Clone)]
enum InterceptRepr<S> {
    Direct(S),
    Stacked(UnitService),
}

impl<R, S: Clone> Clone for Intercept<R, S> {
    fn clone(&self) -> Self {
        Self {
            repr: self.repr.clone(),
            _unit: PhantomData,
        }
    }
}

impl<R, S> fmt::Debug for Intercept<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intercept")
            .field("stacked", &matches!(self.repr, InterceptRepr::Stacked(_)))
            .finish()
    }
}

impl<R, S> Service<R> for Intercept<R, S>
where
    R: Envelope,
    S: Service<R>,
    Result<S::Response, S::Error>: Outcome,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InterceptFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.repr {
            InterceptRepr::Direct(inner) => inner.poll_ready(cx),
            InterceptRepr::Stacked(stack) => match ready!(stack.poll_ready(cx)) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(never) => match never {},
            },
        }
    }

    fn call(&mut self, unit: R) -> Self::Future {
        match &mut self.repr {
            InterceptRepr::Direct(inner) => InterceptFuture {
                repr: InterceptFutureRepr::Direct {
                    future: inner.call(unit),
                },
            },
            InterceptRepr::Stacked(stack) => InterceptFuture {
                repr: InterceptFutureRepr::Stacked {
                    future: stack.call(Unit::new(unit)),
                    _outcome: PhantomData,
                },
            },
        }
    }
}

pin_project! {
    /// The future of [`Intercept`].
    pub struct InterceptFuture<F, T, E> {
        #[pin]
        repr: InterceptFutureRepr<F, T, E>,
    }
}

pin_project! {
    #[project = InterceptProj]
    enum InterceptFutureRepr<F, T, E> {
        Direct { #[pin] future: F },
        Stacked {
            #[pin] future: <UnitService as Service<Unit>>::Future,
            _outcome: PhantomData<fn() -> (T, E)>,
        },
    }
}

impl<F, T, E> fmt::Debug for InterceptFuture<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InterceptFuture")
    }
}

impl<F, T, E> Future for InterceptFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
    Result<T, E>: Outcome,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().repr.project() {
            InterceptProj::Direct { future } => future.poll(cx),
            InterceptProj::Stacked { future, .. } => match ready!(future.poll(cx)) {
                Ok(outcome) => Poll::Ready(outcome.into_outcome()),
                Err(never) => match never {},
            },
        }
    }
}

/// The inner end of the stack: takes the transport's unit back out and erases its outcome.
struct Edge<R, S: Service<R>> {
    inner: S,
    /// The inner service's readiness error, answered to the next call.
    not_ready: Option<S::Error>,
    _unit: PhantomData<fn(R)>,
}

impl<R, S: Service<R> + Clone> Clone for Edge<R, S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone())
    }
}

impl<R, S: Service<R>> Edge<R, S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            not_ready: None,
            _unit: PhantomData,
        }
    }
}

impl<R, S> Service<Unit> for Edge<R, S>
where
    R: Envelope,
    S: Service<R>,
    Result<S::Response, S::Error>: Outcome,
{
    type Response = UnitOutcome;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_none()
            && let Err(error) = ready!(self.inner.poll_ready(cx))
        {
            self.not_ready = Some(error);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, unit: Unit) -> Self::Future {
        if let Some(error) = self.not_ready.take() {
            return EdgeFuture::Answer {
                outcome: Some(UnitOutcome::new(Err::<S::Response, S::Error>(error))),
            };
        }
        match unit.downcast::<R>() {
            Ok(unit) => EdgeFuture::Inner {
                future: self.inner.call(unit),
                _outcome: PhantomData,
            },
            Err(unit) => EdgeFuture::Answer {
                outcome: Some(UnitOutcome::failed(format!(
                    "an interceptor replaced the unit with a {}",
                    unit.type_name()
                ))),
            },
        }
    }
}

pin_project! {
    #[project = EdgeProj]
    enum EdgeFuture<F, T, E> {
        Inner { #[pin] future: F, _outcome: PhantomData<fn() -> (T, E)> },
        Answer { outcome: Option<UnitOutcome> },
    }
}

impl<F, T, E> Future for EdgeFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
    Result<T, E>: Outcome,
{
    type Output = Result<UnitOutcome, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EdgeProj::Inner { future, .. } => {
                Poll::Ready(Ok(UnitOutcome::new(ready!(future.poll(cx)))))
            }
            EdgeProj::Answer { outcome } => Poll::Ready(Ok(outcome
                .take()
                .unwrap_or_else(|| UnitOutcome::failed("polled after completion")))),
        }
    }
}
