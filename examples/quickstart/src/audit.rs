//! An interceptor written once for every kind of unit of work: it counts the units the
//! service has run, by kind, in a singleton it gets from the unit's DI scope.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use jararaca::di::Scope;
use jararaca::{Envelope, UnitKind};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// How many units of work of each kind the service ran.
#[derive(Debug, Default)]
pub struct UnitsSeen(Mutex<HashMap<UnitKind, u64>>);

impl UnitsSeen {
    /// The count for `kind`.
    pub fn count(&self, kind: UnitKind) -> u64 {
        self.0
            .lock()
            .map(|m| m.get(&kind).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    fn record(&self, kind: UnitKind) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(kind).or_default() += 1;
        }
    }
}

/// Counts every unit of work in [`UnitsSeen`] and logs its kind at debug level.
#[derive(Debug, Clone, Copy)]
pub struct AuditLayer;

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit { inner }
    }
}

/// The service of [`AuditLayer`].
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
}

impl<S, R: Envelope> Service<R> for Audit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuditFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let kind = req.kind();
        if let Some(seen) = req
            .extensions()
            .get::<Scope>()
            .and_then(|scope| scope.container().get::<UnitsSeen>().ok())
        {
            seen.record(kind);
        }
        tracing::debug!(unit = kind.as_str(), "unit of work");
        AuditFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`Audit`].
    #[derive(Debug)]
    pub struct AuditFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for AuditFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
