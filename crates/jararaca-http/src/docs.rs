//! The interactive API docs at `/docs`: Swagger UI, served from assets compiled into the
//! binary, so it works with no network at all.

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use http::header;

const BUNDLE_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

fn page(title: &str) -> String {
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    // Relative URLs keep the page working under any path prefix (`/api/docs`).
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — API docs</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true }});
</script>
</body>
</html>
"##
    )
}

/// `/docs` and its assets.
pub(crate) fn router(title: &str) -> Router {
    let html = page(title);
    Router::new()
        .route("/docs", get(move || async move { Html(html) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/javascript"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    BUNDLE_JS,
                )
                    .into_response()
            }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    CSS,
                )
                    .into_response()
            }),
        )
}
