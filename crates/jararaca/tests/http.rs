//! The HTTP microservice through its router (oneshot) and over a real socket.

use jararaca::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::http::{ApiError, Controller, Http, Json, Path, Query, RouterFactory};
use jararaca::{Envelope, Microservice, Unit, UnitOfWork};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;
use ts_rs::TS;

#[derive(Debug, Serialize, Deserialize, JsonSchema, TS)]
struct Item {
    name: String,
    quantity: u32,
}

#[derive(Debug, Deserialize, JsonSchema, TS)]
struct Paging {
    page: u32,
    size: Option<u32>,
}

async fn echo(Json(item): Json<Item>) -> Json<Item> {
    Json(item)
}

async fn by_id(Path(id): Path<u32>, Query(paging): Query<Paging>) -> Result<Json<Value>, ApiError> {
    if id == 404 {
        return Err(ApiError::not_found("no such item"));
    }
    Ok(Json(
        json!({ "id": id, "page": paging.page, "size": paging.size }),
    ))
}

async fn boom() -> Json<Item> {
    panic!("handler bug")
}

async fn fails() -> Result<Json<Item>, ApiError> {
    Err(std::io::Error::other("database password is hunter2"))?
}

fn items() -> Controller {
    Controller::new("ItemsController", "/items")
        .post("/", echo)
        .get("/{id}", by_id)
        .get("/boom", boom)
        .get("/fails", fails)
}

async fn app(service: Microservice) -> axum::Router {
    service.build().await.unwrap().router()
}

async fn call(
    router: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, http::HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn bad_input_is_a_422_naming_each_field() {
    let router = app(Microservice::new("t").controller(items())).await;

    let (status, _, body) = call(
        &router,
        post_json("/items", r#"{"name": "pen", "quantity": 2}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"name": "pen", "quantity": 2}));

    let (status, _, body) = call(&router, post_json("/items", r#"{"quantity": "two"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"detail": [
            {"loc": ["body", "name"], "msg": "Field required", "type": "missing"},
            {"loc": ["body", "quantity"], "msg": "Input should be a valid integer", "type": "integer_type"},
        ]})
    );

    let (status, _, body) = call(&router, post_json("/items", "{not json")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let (status, _, body) = call(&router, get("/items/abc?page=1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "id"]));

    let (status, _, body) = call(&router, get("/items/7")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "page"]));

    let (status, _, body) = call(&router, get("/items/7?page=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 7, "page": 2, "size": null}));
}

#[tokio::test]
async fn errors_have_their_status_and_leak_nothing_and_panics_do_not_kill_the_server() {
    let router = app(Microservice::new("t").controller(items())).await;

    let (status, _, body) = call(&router, get("/items/404?page=0")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "no such item"}));

    let (status, _, body) = call(&router, get("/items/fails")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"detail": "Internal Server Error"}));

    let (status, _, body) = call(&router, get("/items/boom")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"detail": "Internal Server Error"}));
    let (status, _, _) = call(&router, get("/items/1?page=0")).await;
    assert_eq!(status, StatusCode::OK, "still serving after a panic");
}

/// An interceptor: counts units, and checks it runs inside the unit of work.
fn count_layer(
    count: Arc<AtomicUsize>,
) -> tower::util::MapRequestLayer<impl Fn(Unit) -> Unit + Clone> {
    tower::util::MapRequestLayer::new(move |unit: Unit| {
        assert!(unit.extensions().get::<UnitOfWork>().is_some());
        count.fetch_add(1, Ordering::SeqCst);
        unit
    })
}

async fn first() -> &'static str {
    "first"
}

async fn second() -> &'static str {
    "second"
}

#[tokio::test]
async fn interceptors_apply_to_every_controller_and_the_router_factory_customises() {
    let count = Arc::new(AtomicUsize::new(0));
    let router = app(Microservice::new("t")
        .controller(Controller::new("First", "/first").get("/", first))
        .controller(Controller::new("Second", "/second").get("/", second))
        .interceptor(count_layer(Arc::clone(&count)))
        .with(RouterFactory::new(|router| {
            axum::Router::new().nest("/api", router)
        })))
    .await;
    for uri in ["/api/first", "/api/second"] {
        let response = router.clone().oneshot(get(uri)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the first controller is intercepted too"
    );
    assert_eq!(
        router
            .clone()
            .oneshot(get("/first"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        router
            .oneshot(get("/api/health/live"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn readiness_reports_the_failing_check() {
    // A service without controllers serves health and docs once it has the HTTP capability.
    let router = app(Microservice::new("t")
        .capability(Http::default())
        .readiness_check("database", |_| async { Ok(()) })
        .readiness_check("broker", |_| async { Err("connection refused".into()) }))
    .await;
    let (status, _, body) = call(&router, get("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "unavailable", "checks": {
            "database": {"status": "ok"},
            "broker": {"status": "error", "error": "connection refused"},
        }})
    );
    let (status, _, body) = call(&router, get("/health/live")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn requests_continue_the_callers_trace_and_get_a_request_id() {
    let router = app(Microservice::new("t").controller(items())).await;
    let request = Request::get("/items/1?page=0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "abc")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&router, request).await;
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert_eq!(headers["x-request-id"], "abc");

    let (_, headers, _) = call(&router, get("/items/1?page=0")).await;
    assert_eq!(headers["traceparent"].to_str().unwrap().len(), 55);
    assert_eq!(headers["x-request-id"].to_str().unwrap().len(), 32);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_from_its_registration() {
    let router = app(Microservice::new("inventory")
        .version("2.0.0")
        .controller(items()))
    .await;
    let (status, _, doc) = call(&router, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["info"],
        json!({"title": "inventory", "version": "2.0.0"})
    );
    let post = &doc["paths"]["/items"]["post"];
    assert_eq!(post["operationId"], "echo");
    assert_eq!(post["tags"], json!(["ItemsController"]));
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    assert_eq!(
        post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    assert!(post["responses"]["422"].is_object());
    let by_id = &doc["paths"]["/items/{id}"]["get"];
    let params = by_id["parameters"].as_array().unwrap();
    let names: Vec<(&str, &str, bool)> = params
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["in"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("id", "path", true),
            ("page", "query", true),
            ("size", "query", false)
        ]
    );
    assert!(
        by_id["responses"]["default"].is_object(),
        "the ApiError response"
    );
    assert_eq!(
        doc["components"]["schemas"]["Item"]["required"],
        json!(["name", "quantity"])
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let router = app(Microservice::new("t").capability(Http::default())).await;
    let response = router.clone().oneshot(get("/docs")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains(r#"src="docs/swagger-ui-bundle.js""#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let response = router.clone().oneshot(get(asset)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let len = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len();
        assert!(len > 10_000, "{asset} is {len} bytes");
    }
}

/// One HTTP/1.1 request over a real socket: status line and body.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(300)).await;
    "finished"
}

#[tokio::test]
async fn a_real_socket_serves_and_shutdown_lets_in_flight_requests_finish() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let stopped_hook = Arc::clone(&stopped);
    let app = Microservice::new("t")
        .controller(items())
        .controller(Controller::new("Slow", "/slow").get("/", slow))
        .on_shutdown("flag", move |_| {
            let stopped = Arc::clone(&stopped_hook);
            async move {
                stopped.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jararaca::server::serve_with(
        app,
        listener,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    let (status, body) = raw_request(
        addr,
        "POST /items HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"name\":\"cup\",\"quantity\":1}\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let in_flight = tokio::spawn(raw_request(
        addr,
        "GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "finished"));
    server.await.unwrap().unwrap();
    assert_eq!(stopped.load(Ordering::SeqCst), 1, "shutdown hooks ran");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn two_controllers_answering_one_route_fail_the_build_naming_both() {
    let error = Microservice::new("t")
        .controller(Controller::new("First", "/same").get("/", first))
        .controller(Controller::new("Second", "/same").get("/", second))
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "http: GET /same is answered by both First.first and Second.second: give one of them another path or method"
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_unit_of_work_and_an_unknown_path_is_not() {
    let count = Arc::new(AtomicUsize::new(0));
    let router = app(Microservice::new("t")
        .controller(items())
        .interceptor(count_layer(Arc::clone(&count))))
    .await;
    let wrong_method = Request::delete("/items/1").body(Body::empty()).unwrap();
    let (status, headers, body) = call(&router, wrong_method).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET,HEAD");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, serde_json::json!({"detail": "Method Not Allowed"}));
    assert_eq!(headers["x-request-id"].len(), 32);
    assert_eq!(headers["traceparent"].len(), 55);
    assert_eq!(count.load(Ordering::SeqCst), 1, "the 405 is intercepted");

    let (status, headers, body) = call(&router, get("/nowhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, serde_json::json!({"detail": "Not Found"}));
    assert!(!headers.contains_key("x-request-id"), "{headers:?}");
    assert!(!headers.contains_key("traceparent"), "{headers:?}");
    let (status, _, _) = call(&router, get("/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "404s and health are not units"
    );

    let head = Request::head("/items/1?page=0")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&router, head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"].len(), 32);
    assert_eq!(count.load(Ordering::SeqCst), 2, "HEAD runs the GET route");
}
