//! Startup and shutdown hooks: started in registration order, stopped in reverse.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::{BoxError, Container};

type Hook = Arc<dyn Fn(Container) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

struct Entry {
    name: &'static str,
    start: Option<Hook>,
    stop: Option<Hook>,
}

/// The hooks of an application, run by [`Container::startup`] and [`Container::shutdown`].
///
/// A startup hook and a shutdown hook registered on one entry form a pair; on shutdown, only
/// entries whose startup ran (or that have none) are stopped, last started first. This fixes
/// the reference, whose interceptor lifecycles exit in start order.
#[derive(Default)]
pub(crate) struct Lifecycle {
    entries: Vec<Entry>,
    /// How many entries have started; shutdown stops exactly those.
    started: AtomicUsize,
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name))
            .finish()
    }
}

fn hook<F, Fut>(f: F) -> Hook
where
    F: Fn(Container) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Arc::new(move |c| f(c).boxed())
}

impl Lifecycle {
    pub(crate) fn on_startup<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.entries.push(Entry {
            name,
            start: Some(hook(f)),
            stop: None,
        });
    }

    pub(crate) fn on_shutdown<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.entries.push(Entry {
            name,
            start: None,
            stop: Some(hook(f)),
        });
    }

    pub(crate) async fn startup(&self, container: &Container) -> Result<(), BoxError> {
        let from = self.started.load(Ordering::Acquire);
        for (i, entry) in self.entries.iter().enumerate().skip(from) {
            if let Some(start) = &entry.start {
                tracing::debug!(hook = entry.name, "starting");
                if let Err(error) = start(container.clone()).await {
                    tracing::error!(hook = entry.name, %error, "startup hook failed");
                    if let Err(stop_errors) = self.shutdown(container).await {
                        tracing::error!(%stop_errors, "shutdown after a failed startup");
                    }
                    return Err(format!("startup hook `{}` failed: {error}", entry.name).into());
                }
            }
            self.started.store(i + 1, Ordering::Release);
        }
        Ok(())
    }

    pub(crate) async fn shutdown(&self, container: &Container) -> Result<(), ShutdownError> {
        let started = self.started.swap(0, Ordering::AcqRel);
        let mut failures = Vec::new();
        for entry in self.entries[..started].iter().rev() {
            if let Some(stop) = &entry.stop {
                tracing::debug!(hook = entry.name, "stopping");
                if let Err(error) = stop(container.clone()).await {
                    tracing::error!(hook = entry.name, %error, "shutdown hook failed");
                    failures.push((entry.name, error));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError { failures })
        }
    }
}

/// The shutdown hooks that failed; every other hook still ran.
#[derive(Debug)]
pub struct ShutdownError {
    failures: Vec<(&'static str, BoxError)>,
}

impl ShutdownError {
    /// Each failed hook's name and error, in the order they ran.
    pub fn failures(&self) -> &[(&'static str, BoxError)] {
        &self.failures
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shutdown hooks failed: ")?;
        for (i, (name, error)) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{name}`: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownError {}
