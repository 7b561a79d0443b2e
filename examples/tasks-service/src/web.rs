//! The web front end: the built files of `web/` (`scripts/build-web.sh` writes them to
//! `web/dist`), served at `/` when the directory exists. They are plain files, not units of
//! work; a path that is neither a route nor a file is the API's JSON 404.

use std::convert::Infallible;
use std::path::Path;

use axum::response::IntoResponse;
use jararaca::http::{ApiError, RouterFactory};
use tower_http::services::ServeDir;

/// Serves `dir` under `/` behind the service's routes, or `None` when `dir` holds no
/// `index.html` (the front end was not built).
pub(crate) fn front_end(dir: &Path) -> Option<RouterFactory> {
    if !dir.join("index.html").is_file() {
        return None;
    }
    let not_found = tower::service_fn(|_request| async {
        Ok::<_, Infallible>(ApiError::new(http::StatusCode::NOT_FOUND, "Not Found").into_response())
    });
    let files = ServeDir::new(dir).not_found_service(not_found);
    Some(RouterFactory::new(move |router| {
        router.fallback_service(files)
    }))
}
