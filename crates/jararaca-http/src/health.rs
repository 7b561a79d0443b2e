//! `/health/live` and `/health/ready`: liveness, and readiness aggregated from the checks
//! other crates register (database, Redis, broker).

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use jararaca_di::{Container, ReadinessChecks};
use serde_json::{Map, json};

pub(crate) fn router(checks: ReadinessChecks, container: Container) -> Router {
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

async fn ready(checks: &ReadinessChecks, container: &Container) -> Response {
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
