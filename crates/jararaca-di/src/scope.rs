//! The DI scope layer: a fresh [`Scope`] for every unit of work.

use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::ambient::SCOPE;
use crate::{Container, Envelope, Scope};

/// Gives every unit of work its own [`Scope`]: in the request's extensions (for extractors)
/// and as the ambient scope (for [`use_scope`](crate::use_scope) and [`inject`](crate::inject)).
#[derive(Debug, Clone)]
pub struct ScopeLayer {
    container: Container,
}

impl ScopeLayer {
    /// Scopes every unit of work in `container`.
    pub fn new(container: Container) -> Self {
        Self { container }
    }
}

impl<S> Layer<S> for ScopeLayer {
    type Service = ScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeService {
            inner,
            container: self.container.clone(),
        }
    }
}

/// The service of [`ScopeLayer`].
#[derive(Debug, Clone)]
pub struct ScopeService<S> {
    inner: S,
    container: Container,
}

impl<S, R> Service<R> for ScopeService<S>
where
    S: Service<R>,
    R: Envelope,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Scope, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let scope = self.container.new_scope();
        req.extensions_mut().insert(scope.clone());
        // `call` itself runs inside the scope too: `service_fn` bodies and inner layers do
        // their work there, before the future is first polled.
        let future = SCOPE.sync_scope(scope.clone(), || self.inner.call(req));
        SCOPE.scope(scope, future)
    }
}

impl Scope {
    /// Runs `future` with this scope as the ambient scope (for work spawned off a unit).
    pub fn enter<F: std::future::Future>(&self, future: F) -> TaskLocalFuture<Scope, F> {
        SCOPE.scope(self.clone(), future)
    }
}
