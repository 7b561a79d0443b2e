//! A client declared with `#[rest_client]`, against a real axum server on 127.0.0.1:0 and the
//! same app in process: every parameter kind, every return kind, error mapping, a per-route
//! timeout and the trait's base path.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Hits, app, serve};
use http::StatusCode;
use jararaca_macros::rest_client;
use jararaca_retry::RetryPolicy;
use jararaca_rpc::{
    Body, BoxError, FilePart, HyperTransport, RestClient, RouterTransport, RpcError, RpcResponse,
    TimeoutLayer,
};
use serde::Serialize;
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder};

#[derive(Debug, PartialEq, thiserror::Error)]
enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
}

#[derive(Serialize)]
struct NewThing<'a> {
    name: &'a str,
}

#[rest_client("/api")]
trait Api {
    #[post("/echo/{a}")]
    async fn echo(
        &self,
        #[path] a: &str,
        #[query("q")] search: &str,
        #[query] n: Option<u32>,
        #[header("X-Tenant")] tenant: &str,
        #[header] x_request_id: u64,
        #[body] thing: &NewThing<'_>,
    ) -> Result<Value, RpcError<ApiError>>;

    #[post("/form")]
    async fn form(
        &self,
        #[form] a: &str,
        #[form("b")] second: char,
    ) -> Result<Value, RpcError<ApiError>>;

    #[post("/upload")]
    async fn upload(
        &self,
        #[form] title: &str,
        #[file] doc: FilePart,
        #[file("blob")] other: FilePart,
    ) -> Result<Value, RpcError<ApiError>>;

    #[get("/items/{id}")]
    async fn item(&self, #[path("id")] item_id: &str) -> Result<Value, RpcError<ApiError>>;

    #[get("/status/{code}")]
    async fn status_bytes(&self, #[path] code: u16) -> Result<Bytes, RpcError<ApiError>>;

    #[get("/status/{code}")]
    async fn status_response(&self, #[path] code: u16) -> Result<RpcResponse, RpcError<ApiError>>;

    #[delete("/status/{code}")]
    async fn status_unit(&self, #[path] code: u16) -> Result<(), RpcError<ApiError>>;

    #[put("/status/{code}")]
    async fn put_status(&self, #[path] code: u16) -> Result<RpcResponse, RpcError<ApiError>>;

    #[patch("/status/{code}")]
    async fn patch_status(&self, #[path] code: u16) -> Result<RpcResponse, RpcError<ApiError>>;

    #[get("/slow")]
    #[timeout(50)]
    async fn slow(&self) -> Result<(), RpcError<ApiError>>;

    /// Not a route: a default method is left as written.
    async fn ok(&self) -> bool {
        self.status_unit(204).await.is_ok()
    }
}

async fn exercise<S, B>(service: S, base: &str)
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let rest = RestClient::new(service, base)
        .unwrap()
        .errors::<ApiError>()
        .on_status(StatusCode::NOT_FOUND, |r| ApiError::NotFound(r.text()));
    let api = ApiClient::new(rest);
    assert!(api.rest_client().base_url().ends_with("/api"));

    // Path, query (an `Option` left out when `None`), headers and the JSON body.
    let thing = NewThing { name: "jararaca" };
    let echo = api
        .echo("x y", "a&b=c#d", Some(5), "acme", 42, &thing)
        .await
        .unwrap();
    assert_eq!(echo["a"], "x y");
    assert_eq!(echo["query"], json!({ "q": "a&b=c#d", "n": "5" }));
    assert_eq!(echo["headers"]["x-tenant"], "acme");
    assert_eq!(echo["headers"]["x-request-id"], "42");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["body"], json!({ "name": "jararaca" }));
    let echo = api.echo("b", "", None, "t", 1, &thing).await.unwrap();
    assert_eq!(echo["query"], json!({ "q": "" }));

    // Form fields.
    let form = api.form("1 & 2", 'ç').await.unwrap();
    assert_eq!(form, json!({ "a": "1 & 2", "b": "ç" }));

    // Multipart: a text field and two files.
    let parts = api
        .upload(
            "report",
            FilePart::new("a.txt", "hello").content_type("text/plain"),
            FilePart::new("b.bin", vec![1u8, 2, 3]),
        )
        .await
        .unwrap();
    assert_eq!(
        parts[0],
        json!({ "name": "title", "file": null, "type": null, "data": "report" })
    );
    assert_eq!(
        parts[1],
        json!({ "name": "doc", "file": "a.txt", "type": "text/plain", "data": "hello" })
    );
    assert_eq!(parts[2]["name"], "blob");
    assert_eq!(parts[2]["data"], "\u{1}\u{2}\u{3}");

    // Hostile path values stay one segment.
    for hostile in ["../admin", "a?b=1", "x#frag", "ç/日本", ".."] {
        let item = api.item(hostile).await.unwrap();
        assert_eq!(item["id"], hostile);
        let raw = item["raw_path"].as_str().unwrap();
        assert!(!raw["/api/items/".len()..].contains('/'), "{raw}");
    }

    // Bytes, the whole response, nothing; a mapped error.
    assert_eq!(api.status_bytes(201).await.unwrap(), "status 201");
    let response = api.status_response(202).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.url().path(), "/api/status/202");
    api.status_unit(204).await.unwrap();
    let put = api.put_status(200).await.unwrap();
    assert_eq!(
        (put.method(), put.text().as_str()),
        (&http::Method::PUT, "status 200")
    );
    let patch = api.patch_status(200).await.unwrap();
    assert_eq!(patch.method(), http::Method::PATCH);
    assert!(api.ok().await);
    assert_eq!(
        api.status_unit(404).await.unwrap_err().into_mapped(),
        Some(ApiError::NotFound("status 404".into()))
    );
    assert_eq!(
        api.status_bytes(500).await.unwrap_err().status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );

    // The per-route timeout.
    let started = Instant::now();
    let slow = api.slow().await;
    assert!(slow.as_ref().is_err_and(RpcError::is_timeout), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // The futures are `Send`: code generic over the trait can spawn them.
    async fn spawned(api: impl Api + Send + Sync + 'static) -> bool {
        tokio::spawn(async move { api.status_unit(200).await.is_ok() })
            .await
            .unwrap()
    }
    assert!(spawned(api.clone()).await);
}

#[tokio::test]
async fn a_declared_client_over_a_socket() {
    let addr = serve(Hits::default()).await;
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(HyperTransport::new());
    exercise(stack, &format!("http://{addr}")).await;
}

#[tokio::test]
async fn a_declared_client_in_process() {
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(RouterTransport::new(app(Hits::default())));
    exercise(stack, "http://in-process").await;
}

#[rest_client("/api")]
trait Options {
    #[post("/unavailable")]
    async fn post_once(&self) -> Result<(), RpcError>;

    #[post("/unavailable")]
    #[retryable]
    async fn post_idempotent(&self) -> Result<(), RpcError>;

    #[get("/unavailable")]
    #[retryable(false)]
    async fn get_once(&self) -> Result<(), RpcError>;

    #[get("/status/{code}")]
    #[success(202, 404)]
    async fn accepted(&self, #[path] code: u16) -> Result<RpcResponse, RpcError>;
}

#[tokio::test]
async fn route_attributes_choose_retries_and_success_statuses() {
    let hits = Hits::default();
    let policy = RetryPolicy::default()
        .max_retries(2)
        .initial_delay(Duration::from_millis(1))
        .jitter(false);
    let stack = ServiceBuilder::new()
        .layer(jararaca_rpc::retry(policy))
        .service(RouterTransport::new(app(hits.clone())));
    let api = OptionsClient::new(RestClient::new(stack, "http://in-process").unwrap());

    // A POST is sent once unless the route says it may be repeated; a GET marked
    // `#[retryable(false)]` is sent once too.
    let once = api.post_once().await.unwrap_err();
    assert_eq!(once.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(hits.get("unavailable"), 1);
    api.post_idempotent().await.unwrap_err();
    assert_eq!(hits.get("unavailable"), 1 + 3);
    api.get_once().await.unwrap_err();
    assert_eq!(hits.get("unavailable"), 1 + 3 + 1);

    // `#[success(202, 404)]`: exactly those statuses succeed, a 200 does not.
    assert_eq!(
        api.accepted(202).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        api.accepted(404).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let ok = api.accepted(200).await.unwrap_err();
    assert_eq!(ok.status(), Some(StatusCode::OK));
}

/// The configuration a service reads its client's base URL from.
#[derive(serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct ClientsConfig {
    orders_url: String,
}

#[tokio::test]
async fn a_declared_client_is_a_provider_with_its_base_url_from_config() {
    use jararaca_di::Container;
    use jararaca_rpc::BoxService;
    use std::sync::Arc;

    let addr = serve(Hits::default()).await;
    let transport = HyperTransport::new();
    let container = Container::builder()
        .env([("ORDERS_URL", format!("http://{addr}"))])
        .config::<ClientsConfig>()
        .value(transport)
        .factory(
            |config: Arc<ClientsConfig>, transport: Arc<HyperTransport>| async move {
                let stack = ServiceBuilder::new()
                    .layer(TimeoutLayer::new(Duration::from_secs(5)))
                    .service((*transport).clone());
                let rest = RestClient::new(stack, &config.orders_url)?
                    .errors::<ApiError>()
                    .boxed();
                Ok::<_, BoxError>(ApiClient::new(rest))
            },
        )
        .build()
        .await
        .unwrap();

    // The client's type names no layer and no transport.
    let api: Arc<ApiClient<BoxService>> = container.get().unwrap();
    assert_eq!(api.rest_client().base_url(), format!("http://{addr}/api"));
    assert_eq!(api.status_bytes(201).await.unwrap(), "status 201");

    // A base URL the configuration gets wrong fails the container's build, naming it.
    let error = Container::builder()
        .env([("ORDERS_URL", "orders.internal")])
        .config::<ClientsConfig>()
        .factory(|config: Arc<ClientsConfig>| async move {
            let rest = RestClient::new(HyperTransport::new(), &config.orders_url)?.boxed();
            Ok::<_, BoxError>(OptionsClient::new(rest))
        })
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid base URL `orders.internal`"),
        "{error}"
    );
}
