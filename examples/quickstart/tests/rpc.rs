//! The quick start as a REST client and as a REST server: its `task.created` handler tells
//! the notifier (a second service on a real socket) through its declared client, retrying a
//! `503`; and one declared client of the tasks API runs the same calls against the quick
//! start's router in process and over a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use jararaca::BoxError;
use jararaca::bus::BusSettings;
use jararaca::prelude::*;
use jararaca::rest_client;
use jararaca::rpc::{
    Body, HyperTransport, RestClient, RouterTransport, RpcError, Service, TimeoutLayer,
};
use jararaca::rpc::{http, http_body};
use quickstart::{CreateTask, CreatedTasks, Task, UpdateTask};
use serde_json::Value;
use tower::ServiceBuilder;
use uuid::Uuid;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Runs the service's worker while `check` runs, then stops it.
async fn with_worker(app: jararaca::App, check: impl AsyncFnOnce(&jararaca::App)) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        app.worker()
            .expect("the service has a bus")
            .run(async move {
                let _ = stopped.await;
            }),
    );
    check(&app).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_created_task_reaches_the_notifier_through_the_declared_client() {
    // The notifier, behind a front that answers its first request with 503 and Retry-After.
    let notifier = notifier::service().build().await.unwrap();
    let inbox = notifier.container().get::<notifier::Inbox>().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let front = notifier.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let calls = Arc::clone(&counted);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let mut busy = StatusCode::SERVICE_UNAVAILABLE.into_response();
                    busy.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
                    return busy;
                }
                next.run(request).await
            }
        },
    ));
    let addr = serve(front).await;

    let app = quickstart::service()
        .providers(move |c| c.env([("NOTIFIER_URL", format!("http://{addr}"))]))
        .with(BusSettings::default())
        .build()
        .await
        .unwrap();
    with_worker(app, async |app| {
        let rest = RestClient::new(RouterTransport::new(app.router()), "http://tasks").unwrap();
        let task = TasksClient::new(rest)
            .create(&CreateTask {
                title: "tell someone".into(),
                description: None,
            })
            .await
            .unwrap();
        let notification = tokio::time::timeout(
            Duration::from_secs(10),
            inbox.wait_for(&format!("task-{}", task.id)),
        )
        .await
        .expect("the notifier is told");
        assert_eq!(notification.text, "new task: tell someone");
        let created = app.container().get::<CreatedTasks>().unwrap();
        tokio::time::timeout(Duration::from_secs(10), created.wait_for(task.id))
            .await
            .expect("the handler finishes");
        // Refused once, accepted on the retry, and nothing more.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(inbox.notifications().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_notifier_url_that_is_not_a_url_fails_startup() {
    let error = quickstart::service()
        .providers(|c| c.env([("NOTIFIER_URL", "notifier:8001")]))
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid base URL `notifier:8001`"),
        "{error}"
    );
}

/// The tasks API as another service would declare it.
#[rest_client("/tasks")]
trait Tasks {
    #[post("/")]
    async fn create(&self, #[body] task: &CreateTask) -> Result<Task, RpcError>;

    #[get("/")]
    async fn list(
        &self,
        #[query] page: u32,
        #[query] page_size: u32,
        #[query] filter_models: &str,
    ) -> Result<Value, RpcError>;

    #[get("/{id}")]
    async fn get(&self, #[path] id: Uuid) -> Result<Task, RpcError>;

    #[put("/{id}")]
    async fn update(&self, #[path] id: Uuid, #[body] task: &UpdateTask) -> Result<Task, RpcError>;

    #[delete("/{id}")]
    async fn delete(&self, #[path] id: Uuid) -> Result<(), RpcError>;
}

/// One round of calls through `service`, which reaches a fresh quick start at `base`.
async fn exercise<S, B>(service: S, base: &str)
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(service);
    let tasks = TasksClient::new(RestClient::new(stack, base).unwrap());

    let created = tasks
        .create(&CreateTask {
            title: "a/b? #1 ç".into(),
            description: Some("from a client".into()),
        })
        .await
        .unwrap();
    assert_eq!(created.title, "a/b? #1 ç");
    assert!(!created.done);
    tasks
        .create(&CreateTask {
            title: "another".into(),
            description: None,
        })
        .await
        .unwrap();

    // The filter is JSON in a query value: encoded by the client, decoded by the server.
    let filter = r##"[{"field":"title","operator":"contains","value":"#1 ç"}]"##;
    let page = tasks.list(0, 10, filter).await.unwrap();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["id"], created.id.to_string());

    assert_eq!(tasks.get(created.id).await.unwrap(), created);
    let updated = tasks
        .update(
            created.id,
            &UpdateTask {
                title: "done it".into(),
                description: None,
                done: true,
            },
        )
        .await
        .unwrap();
    assert!(updated.done);
    assert_eq!(updated.title, "done it");

    tasks.delete(created.id).await.unwrap();
    let gone = tasks.get(created.id).await.unwrap_err();
    assert_eq!(gone.status(), Some(StatusCode::NOT_FOUND));
    let invalid = tasks.list(0, 0, "[]").await.unwrap_err();
    assert_eq!(invalid.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
}

#[tokio::test]
async fn one_declared_client_runs_in_process_and_over_a_socket() {
    let in_process = quickstart::service().build().await.unwrap().router();
    exercise(RouterTransport::new(in_process), "http://tasks.internal").await;

    let served = quickstart::service().build().await.unwrap().router();
    let addr = serve(served).await;
    exercise(HyperTransport::new(), &format!("http://{addr}")).await;
}
