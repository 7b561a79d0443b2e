//! [`ReadinessChecks`]: what a service must reach before it is ready (a database, Redis, the
//! broker), registered by the service and its capabilities, served by the HTTP capability.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};

use crate::{BoxError, Container};

type Check = Arc<dyn Fn(Container) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// The readiness checks of a service; each must answer within [`ReadinessChecks::TIMEOUT`].
#[derive(Clone, Default)]
pub struct ReadinessChecks {
    checks: Vec<(String, Check)>,
}

impl fmt::Debug for ReadinessChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(n, _)| n))
            .finish()
    }
}

impl ReadinessChecks {
    /// How long one check may take before it counts as failed.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// Adds a check named `name`.
    pub fn add<F, Fut>(&mut self, name: impl Into<String>, check: F)
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.checks
            .push((name.into(), Arc::new(move |c| check(c).boxed())));
    }

    /// The names of the checks, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|(name, _)| name.as_str())
    }

    /// Runs every check concurrently: each name with its result.
    pub async fn run(&self, container: &Container) -> Vec<(String, Result<(), String>)> {
        join_all(self.checks.iter().map(|(name, check)| {
            let fut = check(container.clone());
            async move {
                let result = match tokio::time::timeout(Self::TIMEOUT, fut).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", Self::TIMEOUT)),
                };
                (name.clone(), result)
            }
        }))
        .await
    }
}
