use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::outcome::{DefaultJudge, Judge, Outcome};
use super::{CancelGuard, UnitOfWork};
use crate::ambient::UNIT;
use crate::{BoxError, Envelope};

/// Called with the name and error of each after-commit action that fails.
pub type ActionErrorHandler = Arc<dyn Fn(&str, &BoxError) + Send + Sync>;

/// Wraps every unit of work in a [`UnitOfWork`] and decides it when the inner service is done.
///
/// The layer must be outside the layers that enlist resources or register actions (the DB
/// transaction layer, the publisher); the order of those among themselves does not matter,
/// since the unit of work, not layer order, commits resources before running actions.
///
/// By default the finishing work (commit, actions) runs *detached*: spawned on the runtime
/// and awaited, so a cancelled caller (a client that disconnects mid-commit) cannot cut it in
/// half. [`UnitOfWorkLayer::inline`] runs it in the caller's future instead, which is cheaper
/// and fine where cancellation cannot happen.
#[derive(Clone)]
pub struct UnitOfWorkLayer<J = DefaultJudge> {
    judge: J,
    detached: bool,
    on_action_error: Option<ActionErrorHandler>,
}

impl<J: fmt::Debug> fmt::Debug for UnitOfWorkLayer<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOfWorkLayer")
            .field("judge", &self.judge)
            .field("detached", &self.detached)
            .field("on_action_error", &self.on_action_error.is_some())
            .finish()
    }
}

impl Default for UnitOfWorkLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl UnitOfWorkLayer {
    /// A layer that judges outcomes with [`Outcome::is_success`].
    pub fn new() -> Self {
        Self {
            judge: DefaultJudge,
            detached: true,
            on_action_error: None,
        }
    }
}

impl<J> UnitOfWorkLayer<J> {
    /// Judges success with `judge` instead (see [`Judge`]).
    pub fn judge<J2>(self, judge: J2) -> UnitOfWorkLayer<J2> {
        UnitOfWorkLayer {
            judge,
            detached: self.detached,
            on_action_error: self.on_action_error,
        }
    }

    /// Finishes units in the caller's future rather than in a spawned task.
    pub fn inline(mut self) -> Self {
        self.detached = false;
        self
    }

    /// Calls `handler` for each after-commit action that fails (they are always logged).
    pub fn on_action_error(
        mut self,
        handler: impl Fn(&str, &BoxError) + Send + Sync + 'static,
    ) -> Self {
        self.on_action_error = Some(Arc::new(handler));
        self
    }
}

impl<S, J: Clone> Layer<S> for UnitOfWorkLayer<J> {
    type Service = UnitOfWorkService<S, J>;

    fn layer(&self, inner: S) -> Self::Service {
        UnitOfWorkService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`UnitOfWorkLayer`].
#[derive(Clone)]
pub struct UnitOfWorkService<S, J = DefaultJudge> {
    inner: S,
    layer: UnitOfWorkLayer<J>,
}

impl<S: fmt::Debug, J: fmt::Debug> fmt::Debug for UnitOfWorkService<S, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOfWorkService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, R, J> Service<R> for UnitOfWorkService<S, J>
where
    S: Service<R>,
    R: Envelope,
    Result<S::Response, S::Error>: Outcome,
    J: Judge<Result<S::Response, S::Error>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Response, S::Error, J>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let unit = UnitOfWork::traced(
            req.kind(),
            req.extensions().get::<crate::TraceContext>().copied(),
        );
        req.extensions_mut().insert(unit.clone());
        let future = UNIT.sync_scope(unit.clone(), || self.inner.call(req));
        ResponseFuture::new(
            UNIT.scope(unit.clone(), future),
            CancelGuard(Some(unit)),
            self.layer.judge.clone(),
            self.layer.detached,
            self.layer.on_action_error.clone(),
        )
    }
}
