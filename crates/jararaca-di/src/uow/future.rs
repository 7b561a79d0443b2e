use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use super::layer::ActionErrorHandler;
use super::outcome::{Judge, Outcome};
use super::{CancelGuard, UnitOfWork};
use crate::BoxError;

pin_project! {
    /// The response future of [`UnitOfWorkService`](super::UnitOfWorkService): the inner
    /// service's future, then (only when the unit collected anything) its commit and actions.
    pub struct ResponseFuture<F, T, E, J> {
        #[pin]
        inner: TaskLocalFuture<UnitOfWork, F>,
        guard: CancelGuard,
        judge: J,
        detached: bool,
        on_action_error: Option<ActionErrorHandler>,
        finishing: Option<Finishing<T, E>>,
    }
}

struct Finishing<T, E> {
    outcome: Option<Result<T, E>>,
    work: BoxFuture<'static, Result<(), BoxError>>,
}

impl<F, T, E, J> ResponseFuture<F, T, E, J> {
    pub(super) fn new(
        inner: TaskLocalFuture<UnitOfWork, F>,
        guard: CancelGuard,
        judge: J,
        detached: bool,
        on_action_error: Option<ActionErrorHandler>,
    ) -> Self {
        Self {
            inner,
            guard,
            judge,
            detached,
            on_action_error,
            finishing: None,
        }
    }
}

impl<F, T, E, J> fmt::Debug for ResponseFuture<F, T, E, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("finishing", &self.finishing.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, T, E, J> Future for ResponseFuture<F, T, E, J>
where
    F: Future<Output = Result<T, E>>,
    Result<T, E>: Outcome,
    J: Judge<Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.finishing.is_none() {
            let outcome = ready!(this.inner.as_mut().poll(cx));
            let Some(mut finish) = this.guard.0.take().and_then(|unit| unit.decide()) else {
                // Decided by hand with `UnitOfWork::finish`.
                return Poll::Ready(outcome);
            };
            finish.on_action_error = this.on_action_error.clone();
            if finish.is_empty() {
                return Poll::Ready(outcome);
            }
            let success = this.judge.is_success(&outcome);
            let work = match tokio::runtime::Handle::try_current() {
                Ok(handle) if *this.detached => {
                    // In the unit's span: what the commit and the actions log belongs to it.
                    let task = handle.spawn(tracing::Instrument::instrument(
                        finish.run(success),
                        tracing::Span::current(),
                    ));
                    async move {
                        task.await.unwrap_or_else(|e| {
                            Err(format!("the unit of work's finish panicked: {e}").into())
                        })
                    }
                    .boxed()
                }
                _ => finish.run(success).boxed(),
            };
            *this.finishing = Some(Finishing {
                outcome: Some(outcome),
                work,
            });
        }
        let Some(finishing) = this.finishing.as_mut() else {
            unreachable!("set above")
        };
        let result = ready!(finishing.work.poll_unpin(cx));
        let Some(outcome) = finishing.outcome.take() else {
            panic!("ResponseFuture polled after completion")
        };
        Poll::Ready(match result {
            Ok(()) => outcome,
            Err(error) => outcome.into_failure(error),
        })
    }
}
