//! Ambient access to the current unit of work, for code that cannot take an extractor.
//!
//! The [`ScopeLayer`](crate::ScopeLayer) and [`UnitOfWorkLayer`](crate::UnitOfWorkLayer) set
//! tokio task-locals for the duration of each unit, so deep code can call
//! [`use_container`], [`use_scope`], [`inject`] or [`use_unit_of_work`] without threading
//! handles through every call. Outside a unit they fail with [`OutsideUnit`], never with a
//! panic.
//!
//! Task-locals do not follow `tokio::spawn`: wrap spawned work in
//! [`UnitOfWork::scope`](crate::UnitOfWork::scope) (and [`Scope::enter`](crate::Scope::enter))
//! and await it before the unit ends.

use std::sync::Arc;

use crate::{Container, Key, ResolveError, Scope, TraceContext, UnitOfWork};

tokio::task_local! {
    pub(crate) static SCOPE: Scope;
    pub(crate) static UNIT: UnitOfWork;
}

/// Raised by the ambient accessors when the calling task is not inside a unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no {what} in this task: call it while a handler wrapped by the {layer} runs (spawned tasks \
     must be wrapped with `scope(...)`)"
)]
pub struct OutsideUnit {
    what: &'static str,
    layer: &'static str,
}

/// The DI scope of the current unit of work.
pub fn use_scope() -> Result<Scope, OutsideUnit> {
    SCOPE.try_with(Scope::clone).map_err(|_| OutsideUnit {
        what: "dependency-injection scope",
        layer: "ScopeLayer",
    })
}

/// The container of the current unit of work (the reference's `use_current_container`).
pub fn use_container() -> Result<Container, OutsideUnit> {
    use_scope().map(|s| s.container().clone())
}

/// The current unit of work, to enlist resources and register after-commit actions.
pub fn use_unit_of_work() -> Result<UnitOfWork, OutsideUnit> {
    UNIT.try_with(UnitOfWork::clone).map_err(|_| OutsideUnit {
        what: "unit of work",
        layer: "UnitOfWorkLayer",
    })
}

/// The trace of the current unit of work, if it is traced; `None` outside a unit. Cheaper
/// than `use_unit_of_work()?.trace()`, which takes and drops a handle to the unit.
pub fn current_trace() -> Option<TraceContext> {
    UNIT.try_with(UnitOfWork::trace).ok().flatten()
}

/// Resolves `T` in the current unit's scope.
pub async fn inject<T: ?Sized + Send + Sync + 'static>() -> Result<Arc<T>, InjectError> {
    Ok(use_scope()?.resolve::<T>().await?)
}

/// Why a value could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// There is no unit of work (or no DI scope in it).
    #[error(transparent)]
    OutsideUnit(#[from] OutsideUnit),
    /// The scope could not resolve the value.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl InjectError {
    /// The key that failed, if the failure was about one.
    pub fn key(&self) -> Option<Key> {
        match self {
            Self::Resolve(ResolveError::NotProvided(k) | ResolveError::ScopedOutsideUnit(k)) => {
                Some(*k)
            }
            Self::Resolve(
                ResolveError::Factory { key, .. } | ResolveError::Undeclared { key, .. },
            ) => Some(*key),
            _ => None,
        }
    }
}
