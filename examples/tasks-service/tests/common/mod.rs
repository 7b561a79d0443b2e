//! What the tests share: calling the router as a client does, and logging in.

#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Calls `router` with `method uri`, an optional bearer token and an optional JSON body.
pub async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Logs `username` in with the demo password (`<name>-password`): the token pair.
pub async fn login(router: &axum::Router, username: &str) -> Value {
    let (status, pair) = call(
        router,
        "POST",
        "/auth/login",
        None,
        Some(serde_json::json!({"username": username, "password": format!("{username}-password")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    pair
}

/// The access token of a pair.
pub fn access(pair: &Value) -> String {
    pair["access_token"].as_str().unwrap().to_owned()
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// `service` running as `server` on 127.0.0.1 (with the embedded defaults: the bus handlers
/// and the beat in the same process), until the returned sender is dropped or sent to.
pub async fn all_in_one(
    service: jararaca::Microservice,
) -> (
    jararaca::App,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), jararaca::BoxError>>,
) {
    let port = free_port();
    let matches = jararaca::cli::command(&service, &[])
        .try_get_matches_from([
            "tasks",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .unwrap();
    let (name, server) = matches.subcommand().unwrap();
    let role = jararaca::Role::with_matches(name, server.clone());
    let app = service.build_for(role.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let app = app.clone();
        tokio::spawn(async move {
            app.run(&role, async move {
                let _ = stopped.await;
            })
            .await
        })
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (app, addr, stop, running);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the service did not listen on {addr}");
}

pub mod split;
