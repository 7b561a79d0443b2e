//! A minimal host for the capabilities (what the facade's `Microservice` does), real
//! servers on 127.0.0.1:0 and tokio-tungstenite clients.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jararaca_api::{ApiDescription, ApiInfo};
use jararaca_di::{
    App, BuildContext, Capabilities, Container, Envelope, Interceptors, ReadinessChecks,
    SetupContext, Unit, UnitOutcome,
};
use jararaca_http::HttpApp;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Builds a service from contributions, as `Microservice::build` does.
pub async fn build(contribute: impl FnOnce(&mut Capabilities), interceptors: Interceptors) -> App {
    let mut capabilities = Capabilities::default();
    contribute(&mut capabilities);
    let mut api = ApiDescription::new(ApiInfo::new("ws-test"));
    for capability in capabilities.iter() {
        capability.describe(&mut api);
    }
    let mut container = Some(Container::builder());
    let mut readiness = ReadinessChecks::default();
    for capability in capabilities.iter_mut() {
        let mut cx = SetupContext::new("ws-test", None, &mut container, &mut readiness);
        capability.setup(&mut cx).unwrap();
    }
    let container = container.unwrap().build().await.unwrap();
    let description = Arc::new(api);
    let mut parts = Vec::new();
    for capability in capabilities.into_vec() {
        let name = capability.name();
        let part = capability
            .build(BuildContext {
                service: Arc::from("ws-test"),
                container: container.clone(),
                interceptors: interceptors.clone(),
                role: None,
                readiness: readiness.clone(),
                description: Arc::clone(&description),
            })
            .await
            .unwrap();
        parts.push((name, part));
    }
    App::new("ws-test", container, description, None, parts)
}

/// Serves `app`'s router on 127.0.0.1:0.
pub async fn serve(app: &App) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    client
}

/// The next data frame (binary or text), skipping pings; `None` on close or after 10 s.
pub async fn next_data(client: &mut Client) -> Option<Message> {
    let wait = async {
        while let Some(message) = client.next().await {
            match message.ok()? {
                data @ (Message::Binary(_) | Message::Text(_)) => return Some(data),
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .ok()
        .flatten()
}

pub async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

/// A unit of work over HTTP, through the app's router without a socket.
pub async fn post(app: &App, path: &str) -> http::StatusCode {
    use tower::ServiceExt;
    app.router()
        .oneshot(
            http::Request::post(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

/// Waits until `check` holds (up to 10 s).
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// An interceptor that refuses every unit without `authorization: Bearer good`: HTTP units
/// (the upgrade request) with a 401, others as failed units.
#[derive(Clone)]
pub struct RequireToken<S> {
    pub inner: S,
}

impl<S> Service<Unit> for RequireToken<S>
where
    S: tower::Service<Unit, Response = UnitOutcome, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = UnitOutcome;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<UnitOutcome, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, unit: Unit) -> Self::Future {
        if unit.header("authorization").as_deref() == Some("Bearer good") {
            return Box::pin(self.inner.call(unit));
        }
        // The upgrade request is an HTTP request (of kind WebSocket); frames are `WsFrame`s.
        let outcome = if unit.type_name() == std::any::type_name::<jararaca_ws::WsFrame>() {
            UnitOutcome::failed("unauthorized")
        } else {
            http_denied()
        };
        Box::pin(async move { Ok(outcome) })
    }
}

use tower::Service;

fn http_denied() -> UnitOutcome {
    let response = http::Response::builder()
        .status(http::StatusCode::UNAUTHORIZED)
        .body(axum::body::Body::from(r#"{"detail":"Unauthorized"}"#))
        .unwrap();
    UnitOutcome::new(Ok::<axum::response::Response, Infallible>(response))
}
