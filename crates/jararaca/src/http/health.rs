//! `/health/live` and `/health/ready`: liveness, and readiness aggregated from the checks
//! other crates register (database, Redis, broker).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use http::StatusCode;
use jararaca_di::Container;
use serde_json::{Map, json};

use crate::BoxError;

type Check = Arc<dyn Fn(Container) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// The readiness checks of a service; each must answer within [`HealthChecks::TIMEOUT`].
#[derive(Clone, Default)]
pub struct HealthChecks {
    checks: Vec<(String, Check)>,
}

impl fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(n, _)| n))
            .finish()
    }
}

impl HealthChecks {
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

    /// Runs every check concurrently: the failures by name, empty when ready.
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

pub(crate) fn router(checks: HealthChecks, container: Container) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { super::error::json_response(StatusCode::OK, &json!({"status": "ok"})) }),
        )
        .route(
            "/health/ready",
            get(move || {
                let checks = checks.clone();
                let container = container.clone();
                async move { ready(&checks, &container).await }
            }),
        )
}

async fn ready(checks: &HealthChecks, container: &Container) -> Response {
    let results = checks.run(container).await;
    let mut body = Map::new();
    let mut all_ok = true;
    for (name, result) in results {
        let entry = match result {
            Ok(()) => json!({"status": "ok"}),
            Err(error) => {
                all_ok = false;
                tracing::warn!(check = %name, %error, "readiness check failed");
                json!({"status": "error", "error": error})
            }
        };
        body.insert(name, entry);
    }
    let (status, word) = if all_ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    super::error::json_response(status, &json!({"status": word, "checks": body}))
}
