//! The client and its stack against a real axum server on 127.0.0.1:0, and the same client
//! against the same app in process.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Hits, app, serve};
use http::{HeaderValue, StatusCode};
use jararaca_di::{TraceContext, UnitKind, UnitOfWork};
use jararaca_retry::RetryPolicy;
use jararaca_rpc::{
    AuthLayer, Body, BoxError, CacheLayer, FilePart, HyperTransport, RestClient, RestRequest,
    RouterTransport, RpcError, TimeoutLayer, TokenAuthLayer, TraceContextLayer,
};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder};

#[derive(Debug, PartialEq, thiserror::Error)]
enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("teapot")]
    Teapot,
    #[error("route says gone")]
    RouteGone,
}

/// What a user of either transport relies on: every parameter kind, encoding, the base path,
/// success statuses and error mapping.
async fn exercise<S, B>(service: S, base: &str)
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let client = RestClient::new(service, base)
        .unwrap()
        .errors::<ApiError>()
        .on_status(StatusCode::NOT_FOUND, |r| ApiError::NotFound(r.text()))
        .on_status(StatusCode::IM_A_TEAPOT, |_| ApiError::Teapot);

    // Path, query, header and JSON body.
    let echo: Value = client
        .json(
            RestRequest::post("/echo/{a}")
                .path("a", "x y")
                .query("q", "a&b=c#d")
                .query("n", 5)
                .header("x-tenant", "acme")
                .json(&json!({ "name": "jararaca" })),
        )
        .await
        .unwrap();
    assert_eq!(echo["a"], "x y");
    assert_eq!(echo["query"], json!({ "q": "a&b=c#d", "n": "5" }));
    assert_eq!(echo["headers"]["x-tenant"], "acme");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["body"], json!({ "name": "jararaca" }));

    // Form body.
    let form: Value = client
        .json(RestRequest::post("/form").form("a", "1 & 2").form("b", "ç"))
        .await
        .unwrap();
    assert_eq!(form, json!({ "a": "1 & 2", "b": "ç" }));

    // Multipart: a text field and two files.
    let parts: Value = client
        .json(
            RestRequest::post("/upload")
                .form("title", "report")
                .file(
                    "doc",
                    FilePart::new("a \"b\".txt", "hello").content_type("text/plain"),
                )
                .file("blob", FilePart::new("b.bin", vec![1u8, 2, 3])),
        )
        .await
        .unwrap();
    assert_eq!(
        parts[0],
        json!({ "name": "title", "file": null, "type": null, "data": "report" })
    );
    assert_eq!(parts[1]["name"], "doc");
    assert_eq!(parts[1]["file"], "a %22b%22.txt");
    assert_eq!(parts[1]["type"], "text/plain");
    assert_eq!(parts[1]["data"], "hello");
    assert_eq!(parts[2]["type"], "application/octet-stream");
    assert_eq!(parts[2]["data"], "\u{1}\u{2}\u{3}");

    // Hostile path values stay one segment, decoded intact by the server.
    for hostile in ["../admin", "a?b=1", "x#frag", "a b", "ç/ñ/日本", "..", "."] {
        let item: Value = client
            .json(RestRequest::get("/items/{id}").path("id", hostile))
            .await
            .unwrap_or_else(|e| panic!("{hostile}: {e}"));
        assert_eq!(item["id"], hostile);
        let raw = item["raw_path"].as_str().unwrap();
        assert!(raw.starts_with("/api/items/"), "{raw}");
        assert!(!raw["/api/items/".len()..].contains('/'), "{raw}");
    }

    // Raw bytes, the whole response, nothing.
    let bytes = client.bytes(RestRequest::get("/status/201")).await.unwrap();
    assert_eq!(bytes, "status 201");
    let response = client.send(RestRequest::get("/status/202")).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.url().path(), "/api/status/202");
    client
        .execute(RestRequest::get("/status/204"))
        .await
        .unwrap();

    // A request the builder refuses is an error when its future is awaited.
    let unbuilt = client.json::<Value>(RestRequest::get("/items/{id}"));
    assert!(
        matches!(unbuilt.await, Err(RpcError::Build(m)) if m.contains("`id`")),
        "a missing path value"
    );

    // Success is any 2xx unless the route narrows it.
    let narrowed = client
        .execute(RestRequest::get("/status/201").success_statuses([StatusCode::OK]))
        .await;
    assert_eq!(narrowed.unwrap_err().status(), Some(StatusCode::CREATED));
    client
        .execute(RestRequest::get("/status/304").success_when(|s| s.as_u16() == 304))
        .await
        .unwrap();

    // Error mapping: the route's mappers first, then the client's, else Status.
    let missing = client.execute(RestRequest::get("/status/404")).await;
    assert_eq!(
        missing.unwrap_err().into_mapped(),
        Some(ApiError::NotFound("status 404".into()))
    );
    let teapot = client.execute(RestRequest::get("/status/418")).await;
    assert_eq!(teapot.unwrap_err().into_mapped(), Some(ApiError::Teapot));
    let route_first = client
        .execute(
            RestRequest::get("/status/404")
                .on_status(StatusCode::NOT_FOUND, |_| ApiError::RouteGone),
        )
        .await;
    assert_eq!(
        route_first.unwrap_err().into_mapped(),
        Some(ApiError::RouteGone)
    );
    match client.execute(RestRequest::get("/status/500")).await {
        Err(RpcError::Status(response)) => assert_eq!(response.text(), "status 500"),
        other => panic!("expected Status, got {other:?}"),
    }

    // A body that is not what the route returns.
    let decode = client
        .json::<Vec<u32>>(RestRequest::get("/status/200"))
        .await;
    assert!(matches!(decode, Err(RpcError::Decode { .. })), "{decode:?}");
}

#[tokio::test]
async fn every_parameter_kind_and_error_mapping_over_a_socket_with_the_base_path_kept() {
    let addr = serve(Hits::default()).await;
    exercise(HyperTransport::new(), &format!("http://{addr}/api")).await;
}

#[tokio::test]
async fn the_same_client_runs_in_process_against_the_router() {
    exercise(
        RouterTransport::new(app(Hits::default())),
        "http://in-process/api",
    )
    .await;
}

#[tokio::test]
async fn network_errors_are_reported_as_such() {
    // Bind then drop: nothing listens on that port any more.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = RestClient::new(HyperTransport::new(), &format!("http://{addr}")).unwrap();
    let result = client.execute(RestRequest::get("/x")).await;
    assert!(
        matches!(result, Err(RpcError::Network { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn bearer_basic_and_api_key_auth() {
    let addr = serve(Hits::default()).await;
    let base = format!("http://{addr}/api");
    let who = async |layer: AuthLayer| -> Value {
        let stack = ServiceBuilder::new()
            .layer(layer)
            .service(HyperTransport::new());
        RestClient::new(stack, &base)
            .unwrap()
            .json(RestRequest::get("/whoami"))
            .await
            .unwrap()
    };
    assert_eq!(
        who(AuthLayer::bearer("abc").unwrap()).await["authorization"],
        "Bearer abc"
    );
    assert_eq!(
        who(AuthLayer::basic("aladdin", "opensesame").unwrap()).await["authorization"],
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
    );
    assert_eq!(
        who(AuthLayer::api_key("k-1").unwrap()).await["api_key"],
        "k-1"
    );
    assert!(AuthLayer::bearer("bad\ntoken").is_err());
}

#[tokio::test]
async fn the_token_provider_refreshes_once_on_401_and_replays_the_body() {
    let hits = Hits::default();
    let addr = serve(hits.clone()).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    // The first token is stale; the server accepts only "fresh".
    let provider = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(if n == 0 { "stale" } else { "fresh" }.to_owned()) }
    };
    let stack = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(provider))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();

    let body = client
        .bytes(RestRequest::post("/secure").body("payload", Some("text/plain")))
        .await
        .unwrap();
    assert_eq!(body, "payload", "the replayed POST kept its body");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(hits.get("secure"), 2);

    // The fresh token is kept: no more fetches.
    client.execute(RestRequest::get("/secure")).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(hits.get("secure"), 3);

    // A provider that keeps giving rejected tokens: one refresh, then the 401 is returned.
    let always_stale = || async { Ok::<_, BoxError>("stale".to_owned()) };
    let stack = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(always_stale))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();
    let denied = client.execute(RestRequest::get("/secure")).await;
    assert_eq!(denied.unwrap_err().status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(hits.get("secure"), 5, "one replay, not a loop");
}

#[tokio::test]
async fn the_cache_hits_misses_expires_and_never_keeps_errors() {
    let hits = Hits::default();
    let addr = serve(hits.clone()).await;
    let cache = CacheLayer::new(Duration::from_millis(300), 16);
    let base = format!("http://{addr}/api");
    let client_as = |token: &str| {
        let stack = ServiceBuilder::new()
            .layer(AuthLayer::bearer(token).unwrap())
            .layer(cache.clone())
            .service(HyperTransport::new());
        RestClient::new(stack, &base).unwrap()
    };
    let alice = client_as("alice");
    let n = async |client: &RestClient<_>, query: &str| -> u64 {
        let v: Value = client
            .json(RestRequest::get("/counted").query("q", query))
            .await
            .unwrap();
        v["n"].as_u64().unwrap()
    };
    assert_eq!(n(&alice, "a").await, 1, "miss");
    assert_eq!(n(&alice, "a").await, 1, "hit");
    assert_eq!(n(&alice, "b").await, 2, "another URL is another key");
    let bob = client_as("bob");
    assert_eq!(
        n(&bob, "a").await,
        3,
        "another Authorization is another key"
    );
    assert_eq!(hits.get("counted"), 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(n(&alice, "a").await, 4, "expired");

    // Errors are never kept; nor are non-GET requests.
    for _ in 0..2 {
        let _ = alice.execute(RestRequest::get("/fails")).await;
    }
    assert_eq!(hits.get("fails"), 2);

    // The size is bounded.
    let small = CacheLayer::new(Duration::from_secs(60), 2);
    let stack = ServiceBuilder::new()
        .layer(small.clone())
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &base).unwrap();
    for q in ["x", "y", "z"] {
        client
            .execute(RestRequest::get("/counted").query("q", q))
            .await
            .unwrap();
    }
    assert_eq!(small.len(), 2);
}

#[tokio::test]
async fn retry_on_503_waits_what_retry_after_asks() {
    let hits = Hits::default();
    let addr = serve(hits.clone()).await;
    // The policy alone would wait 10 ms; the server asks for 1 s.
    let policy = RetryPolicy::default()
        .initial_delay(Duration::from_millis(10))
        .jitter(false)
        .max_retries(3);
    let stack = ServiceBuilder::new()
        .layer(jararaca_rpc::retry(policy))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();
    let started = Instant::now();
    let body = client.bytes(RestRequest::get("/flaky")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(body, "ok");
    assert_eq!(hits.get("flaky"), 2);
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    // A POST is not retried by default...
    let result = client
        .execute(RestRequest::post("/unavailable").json(&1))
        .await;
    assert_eq!(
        result.unwrap_err().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(hits.get("unavailable"), 1);
    // ...unless its route says it may be; a GET is, up to the budget.
    let _ = client
        .execute(RestRequest::post("/unavailable").json(&1).retryable(true))
        .await;
    assert_eq!(hits.get("unavailable"), 5);
    let _ = client.execute(RestRequest::get("/unavailable")).await;
    assert_eq!(hits.get("unavailable"), 9);
}

#[tokio::test]
async fn timeouts_per_client_and_per_route() {
    let addr = serve(Hits::default()).await;
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();
    let started = Instant::now();
    let result = client.execute(RestRequest::get("/slow")).await;
    assert!(
        result.as_ref().is_err_and(RpcError::is_timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // A route may allow less (or more) than the client's default.
    let started = Instant::now();
    let result = client
        .execute(RestRequest::get("/slow").timeout(Duration::from_millis(50)))
        .await;
    assert!(
        result.as_ref().is_err_and(RpcError::is_timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(190));
    client
        .execute(RestRequest::get("/status/200").timeout(Duration::from_secs(5)))
        .await
        .unwrap();
}

#[tokio::test]
async fn traceparent_continues_the_units_trace() {
    let addr = serve(Hits::default()).await;
    let stack = ServiceBuilder::new()
        .layer(TraceContextLayer::new())
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();

    let outside: Value = client.json(RestRequest::get("/traced")).await.unwrap();
    assert_eq!(outside["traceparent"], Value::Null, "no trace, no header");

    let unit_trace = TraceContext::continue_from(None);
    let unit = UnitOfWork::traced(UnitKind::Http, Some(unit_trace));
    let inside: Value = unit
        .scope(client.json(RestRequest::get("/traced")))
        .await
        .unwrap();
    let sent = inside["traceparent"].as_str().unwrap();
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(fields.len(), 4, "{sent}");
    assert_eq!(fields[0], "00");
    assert_eq!(
        u128::from_str_radix(fields[1], 16).unwrap(),
        unit_trace.trace_id,
        "same trace"
    );
    let span = u64::from_str_radix(fields[2], 16).unwrap();
    assert_ne!(span, unit_trace.span_id, "a child span");
    assert_ne!(span, 0);
    assert_eq!(fields[3], "01");
    assert_eq!(inside["baggage"], Value::Null);

    // A traceparent the caller set is kept.
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let kept: Value = unit
        .scope(client.json(RestRequest::get("/traced").header("traceparent", given)))
        .await
        .unwrap();
    assert_eq!(kept["traceparent"], given);
}

#[tokio::test]
async fn each_retried_attempt_is_its_own_child_span() {
    // Retry outside the trace layer, as the README recommends: every attempt is a new client
    // span of the unit's trace, and the retry's copy carries no header of a former attempt.
    let hits = Hits::default();
    let addr = serve(hits.clone()).await;
    let stack = ServiceBuilder::new()
        .layer(jararaca_rpc::retry(
            RetryPolicy::default()
                .max_retries(2)
                .initial_delay(Duration::from_millis(5)),
        ))
        .layer(TraceContextLayer::new())
        .layer(AuthLayer::bearer("t").unwrap())
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();
    let unit_trace = TraceContext::continue_from(None);
    let unit = UnitOfWork::traced(UnitKind::Http, Some(unit_trace));
    let body = unit
        .scope(client.bytes(RestRequest::get("/traced-flaky")))
        .await
        .unwrap();
    assert_eq!(body, "ok");
    let sent = hits.recorded("traced-flaky");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let fields: Vec<Vec<&str>> = sent.iter().map(|t| t.split('-').collect()).collect();
    for attempt in &fields {
        assert_eq!(attempt.len(), 4, "{sent:?}");
        assert_eq!(
            u128::from_str_radix(attempt[1], 16).unwrap(),
            unit_trace.trace_id,
            "same trace: {sent:?}"
        );
        assert_ne!(
            u64::from_str_radix(attempt[2], 16).unwrap(),
            unit_trace.span_id
        );
    }
    assert_ne!(fields[0][2], fields[1][2], "one span per attempt: {sent:?}");
}

#[tokio::test]
async fn tower_http_client_layers_stack_with_ours() {
    use tower_http::decompression::DecompressionLayer;
    use tower_http::follow_redirect::FollowRedirectLayer;
    use tower_http::set_header::SetRequestHeaderLayer;

    let addr = serve(Hits::default()).await;
    let stack = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer set-by-tower-http"),
        ))
        .layer(DecompressionLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, &format!("http://{addr}/api")).unwrap();
    let who: Value = client.json(RestRequest::get("/moved")).await.unwrap();
    assert_eq!(who["authorization"], "Bearer set-by-tower-http");
    let big = client.send(RestRequest::get("/big")).await.unwrap();
    assert_eq!(big.body().len(), 10_000, "decompressed");
    assert_eq!(big.headers().get("content-encoding"), None);
}
