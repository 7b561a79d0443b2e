//! The test server: an axum app on 127.0.0.1:0 whose routes echo what they got or misbehave
//! on purpose, with a hit counter per route.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Multipart, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub struct Hits(
    Arc<Mutex<HashMap<String, usize>>>,
    Arc<Mutex<HashMap<String, Vec<String>>>>,
);

impl Hits {
    fn hit(&self, name: &str) -> usize {
        let mut hits = self.0.lock().unwrap();
        let n = hits.entry(name.to_owned()).or_default();
        *n += 1;
        *n
    }

    pub fn get(&self, name: &str) -> usize {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn record(&self, name: &str, value: &str) {
        let mut seen = self.1.lock().unwrap();
        seen.entry(name.to_owned())
            .or_default()
            .push(value.to_owned());
    }

    /// What the route `name` recorded, in order.
    pub fn recorded(&self, name: &str) -> Vec<String> {
        self.1
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub fn app(hits: Hits) -> Router {
    let api = Router::new()
        .route(
            "/items/{id}",
            get(
                |State(hits): State<Hits>, Path(id): Path<String>, OriginalUri(uri): OriginalUri| async move {
                    hits.hit("items");
                    Json(json!({ "id": id, "raw_path": uri.path() }))
                },
            ),
        )
        .route(
            "/echo/{a}",
            post(
                |Path(a): Path<String>,
                 Query(q): Query<HashMap<String, String>>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    Json(json!({ "a": a, "query": q, "headers": headers_json(&headers), "body": body }))
                },
            ),
        )
        .route(
            "/form",
            post(|Form(form): Form<HashMap<String, String>>| async move { Json(json!(form)) }),
        )
        .route(
            "/upload",
            post(|mut multipart: Multipart| async move {
                let mut parts = Vec::new();
                while let Some(field) = multipart.next_field().await.unwrap() {
                    let name = field.name().map(str::to_owned);
                    let file = field.file_name().map(str::to_owned);
                    let ct = field.content_type().map(str::to_owned);
                    let bytes = field.bytes().await.unwrap();
                    parts.push(json!({
                        "name": name, "file": file, "type": ct,
                        "data": String::from_utf8_lossy(&bytes),
                    }));
                }
                Json(json!(parts))
            }),
        )
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
                Json(json!({ "authorization": auth, "api_key": key }))
            }),
        )
        .route(
            "/secure",
            any(|State(hits): State<Hits>, headers: HeaderMap, body: String| async move {
                hits.hit("secure");
                let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                if auth == Some("Bearer fresh") {
                    (StatusCode::OK, body).into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .route(
            "/counted",
            get(|State(hits): State<Hits>| async move {
                let n = hits.hit("counted");
                Json(json!({ "n": n }))
            }),
        )
        .route(
            "/fails",
            get(|State(hits): State<Hits>| async move {
                hits.hit("fails");
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/flaky",
            any(|State(hits): State<Hits>| async move {
                // 503 with Retry-After: 1 on the first call, then fine.
                if hits.hit("flaky") == 1 {
                    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "busy")
                        .into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/traced-flaky",
            get(|State(hits): State<Hits>, headers: HeaderMap| async move {
                // Records each attempt's traceparent; 503 on the first, then fine.
                let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
                hits.record("traced-flaky", traceparent.unwrap_or("none"));
                if hits.hit("traced-flaky") == 1 {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/unavailable",
            any(|State(hits): State<Hits>| async move {
                hits.hit("unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/status/{code}",
            any(|Path(code): Path<u16>| async move {
                (StatusCode::from_u16(code).unwrap(), format!("status {code}")).into_response()
            }),
        )
        .route(
            "/traced",
            get(|headers: HeaderMap| async move {
                Json(json!({
                    "traceparent": headers.get("traceparent").and_then(|v| v.to_str().ok()),
                    "baggage": headers.get("baggage").and_then(|v| v.to_str().ok()),
                }))
            }),
        )
        .route("/moved", get(|| async { Response::builder().status(302).header("location", "/api/whoami").body(axum::body::Body::empty()).unwrap() }))
        .route("/big", get(|| async { "x".repeat(10_000) }));
    Router::new()
        .nest("/api", api)
        .with_state(hits)
        .layer(tower_http::compression::CompressionLayer::new())
}

/// Serves `app` on a fresh loopback port.
pub async fn serve(hits: Hits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app(hits)).await.unwrap();
    });
    addr
}

pub fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}
