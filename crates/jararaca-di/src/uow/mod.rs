//! The unit of work: the single point where a unit's fate is decided.
//!
//! During a unit (an HTTP request, a delivered message, a scheduled tick) code *enlists*
//! [`Resource`]s (a database transaction) and registers *after-commit actions* (message
//! publishes, WebSocket sends) on the [`UnitOfWork`]. When the wrapped service finishes, the
//! [`UnitOfWorkLayer`] judges its outcome:
//!
//! * **success** — resources commit in enlistment order, then actions run in registration
//!   order. If a commit fails, the resources not yet committed roll back, the actions are
//!   dropped and the outcome is turned into a failure (an HTTP 500, or `Err` for a handler).
//! * **failure** — resources roll back in reverse order and the actions are dropped: a failed
//!   handler publishes nothing.
//! * **cancelled** (the future is dropped, e.g. the client went away) — resources roll back
//!   in the background and the actions are dropped.
//!
//! After-commit actions are at-most-once: they run after the data they announce is durable,
//! and a failing action cannot undo the commit. A failing action is therefore logged (and
//! handed to [`UnitOfWorkLayer::on_action_error`]); the remaining actions still run and the
//! outcome stays a success, so a retried request or message does not repeat committed work.
//! Side effects that must not be lost belong in an outbox enlisted as a resource.
//!
//! Registering after the outcome is decided is an error ([`UnitError::Decided`]), never a
//! silent drop.

mod future;
mod layer;
mod outcome;

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::task::futures::TaskLocalFuture;

pub use future::ResponseFuture;
pub use layer::{ActionErrorHandler, UnitOfWorkLayer, UnitOfWorkService};
pub use outcome::{DefaultJudge, Judge, Outcome, UnitConflict};

use crate::ambient::UNIT;
use crate::{BoxError, TraceContext, UnitKind};

/// Something with a commit and a rollback that the unit of work decides, such as a database
/// transaction. Enlist it with [`UnitOfWork::enlist`].
pub trait Resource: Send + 'static {
    /// A short name for logs and errors, such as `"postgres transaction"`.
    fn name(&self) -> Cow<'static, str>;

    /// Makes the unit's changes durable.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>>;

    /// Discards the unit's changes.
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<(), BoxError>>;
}

pub(crate) struct Action {
    name: Cow<'static, str>,
    run: Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>,
}

/// Errors of the unit-of-work handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The unit's outcome is already decided, so nothing more can join it.
    #[error(
        "the {kind} unit of work is already decided: enlist resources and register actions \
         before the handler returns (await spawned work wrapped in `UnitOfWork::scope`)"
    )]
    Decided {
        /// The kind of unit.
        kind: &'static str,
    },
}

/// The handle of one unit of work. Cheap to clone; every clone is the same unit.
///
/// Get it from the request's extensions, the `UnitOfWork` extractor, or
/// [`use_unit_of_work`](crate::use_unit_of_work).
#[derive(Clone)]
pub struct UnitOfWork {
    inner: Arc<Inner>,
}

struct Inner {
    kind: UnitKind,
    trace: Option<TraceContext>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    decided: bool,
    resources: Vec<Box<dyn Resource>>,
    actions: Vec<Action>,
    locals: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("UnitOfWork")
            .field("kind", &self.inner.kind)
            .field("decided", &state.decided)
            .field(
                "resources",
                &state.resources.iter().map(|r| r.name()).collect::<Vec<_>>(),
            )
            .field(
                "actions",
                &state.actions.iter().map(|a| &a.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl UnitOfWork {
    /// A new, undecided unit of the given kind. The [`UnitOfWorkLayer`] makes one per unit;
    /// make one by hand only to drive a unit yourself (with [`UnitOfWork::finish`]).
    pub fn new(kind: UnitKind) -> Self {
        Self::traced(kind, None)
    }

    /// A new unit at `trace` in its trace: what it publishes continues that trace.
    pub fn traced(kind: UnitKind, trace: Option<TraceContext>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                trace,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The unit's place in its trace, when its transport knew one (the request's or the
    /// delivery's [`TraceContext`]).
    pub fn trace(&self) -> Option<TraceContext> {
        self.inner.trace
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned lock still holds sound data.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current unit of work of this task.
    pub fn current() -> Result<Self, crate::OutsideUnit> {
        crate::use_unit_of_work()
    }

    /// What kind of unit this is.
    pub fn kind(&self) -> UnitKind {
        self.inner.kind
    }

    /// Whether the outcome is decided (nothing more can be enlisted or registered).
    pub fn is_decided(&self) -> bool {
        self.lock().decided
    }

    fn decided_error(&self) -> UnitError {
        UnitError::Decided {
            kind: self.inner.kind.as_str(),
        }
    }

    /// Adds a resource: it commits if the unit succeeds and rolls back otherwise.
    pub fn enlist<R: Resource>(&self, resource: R) -> Result<(), UnitError> {
        let mut state = self.lock();
        if state.decided {
            return Err(self.decided_error());
        }
        state.resources.push(Box::new(resource));
        Ok(())
    }

    /// Registers an action to run after every resource committed, in registration order; it
    /// is dropped if the unit fails.
    pub fn after_commit<F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        action: F,
    ) -> Result<(), UnitError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let mut state = self.lock();
        if state.decided {
            return Err(self.decided_error());
        }
        state.actions.push(Action {
            name: name.into(),
            run: Box::new(move || action().boxed()),
        });
        Ok(())
    }

    /// A value that lives as long as this unit, created on first use: the place for other
    /// crates to keep per-unit state (a lazily begun transaction, staged messages).
    pub fn local<T: Send + Sync + 'static>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut state = self.lock();
        let entry = state
            .locals
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(init()));
        match Arc::clone(entry).downcast::<T>() {
            Ok(value) => value,
            Err(_) => unreachable!("unit-local stored under the TypeId of another type"),
        }
    }

    /// The unit-local `T`, if one was created.
    pub fn get_local<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let state = self.lock();
        let value = state.locals.get(&TypeId::of::<T>())?;
        Arc::clone(value).downcast::<T>().ok()
    }

    /// Runs `future` with this unit as the ambient unit of work, for work spawned off the unit.
    /// Await it before the unit's handler returns, or its registrations will be refused.
    pub fn scope<F: Future>(&self, future: F) -> TaskLocalFuture<UnitOfWork, F> {
        UNIT.scope(self.clone(), future)
    }

    /// Closes the unit and takes what it collected. Only the first call gets anything.
    fn decide(&self) -> Option<Finish> {
        let mut state = self.lock();
        if state.decided {
            return None;
        }
        state.decided = true;
        Some(Finish {
            resources: std::mem::take(&mut state.resources),
            actions: std::mem::take(&mut state.actions),
            on_action_error: None,
        })
    }

    /// Decides the unit by hand: on `success`, commits the resources and runs the actions,
    /// returning the error of a failed commit; otherwise rolls back. The layer does this for
    /// you; a second call does nothing.
    pub async fn finish(&self, success: bool) -> Result<(), BoxError> {
        match self.decide() {
            Some(finish) => finish.run(success).await,
            None => Ok(()),
        }
    }
}

/// What a decided unit still has to do.
pub(crate) struct Finish {
    resources: Vec<Box<dyn Resource>>,
    actions: Vec<Action>,
    on_action_error: Option<ActionErrorHandler>,
}

impl Finish {
    fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.actions.is_empty()
    }

    /// Commits then runs the actions (success), or rolls back (failure). `Err` only when a
    /// commit failed.
    async fn run(self, success: bool) -> Result<(), BoxError> {
        if !success {
            rollback_all(self.resources).await;
            return Ok(());
        }
        let mut resources = self.resources.into_iter();
        while let Some(resource) = resources.next() {
            let name = resource.name();
            if let Err(error) = resource.commit().await {
                rollback_all(resources.collect()).await;
                // A conflict is the outcome of a race, not a fault: it keeps its type, so the
                // unit's failure can say so (409 for HTTP).
                if error.is::<UnitConflict>() {
                    tracing::info!(resource = %name, %error, "commit conflicted; the unit of work is undone");
                    return Err(error);
                }
                tracing::error!(resource = %name, %error, "commit failed; the unit of work fails");
                return Err(format!("committing {name} failed: {error}").into());
            }
        }
        for action in self.actions {
            if let Err(error) = (action.run)().await {
                tracing::error!(action = %action.name, %error, "after-commit action failed");
                if let Some(handler) = &self.on_action_error {
                    handler(&action.name, &error);
                }
            }
        }
        Ok(())
    }
}

async fn rollback_all(resources: Vec<Box<dyn Resource>>) {
    for resource in resources.into_iter().rev() {
        let name = resource.name();
        if let Err(error) = resource.rollback().await {
            tracing::warn!(resource = %name, %error, "rollback failed");
        }
    }
}

/// Rolls back a unit whose future was dropped before it was decided.
pub(crate) struct CancelGuard(pub(crate) Option<UnitOfWork>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let Some(Finish { resources, .. }) = self.0.take().and_then(|u| u.decide()) else {
            return;
        };
        if resources.is_empty() {
            return;
        }
        tracing::debug!("unit of work cancelled; rolling back");
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(rollback_all(resources));
            }
            // No runtime left (shutdown): dropping the resources is all that can be done;
            // a database transaction rolls back when its connection drops it.
            Err(_) => drop(resources),
        }
    }
}
