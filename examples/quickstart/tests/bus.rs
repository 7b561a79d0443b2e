//! Creating a task publishes `task.created` after the commit, and `TasksWorker` handles it:
//! on the in-process broker, and on RabbitMQ + Redis.

use jararaca::prelude::*;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jararaca::UnitKind;
use jararaca::bus::{BrokerUrl, BusSettings, MessageBus, declare};
use quickstart::{CreatedTasks, UnitsSeen};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

async fn create(router: &axum::Router, title: &str) -> Uuid {
    let request = Request::post("/tasks")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "title": title }).to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

/// Runs the service's worker while `check` creates tasks, then stops it.
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
async fn a_created_task_is_handled_in_process_without_a_broker() {
    let app = quickstart::service()
        .with(BusSettings::default())
        .build()
        .await
        .unwrap();
    assert!(app.bus_in_memory());
    with_worker(app, async |app| {
        let id = create(&app.router(), "in process").await;
        let created = app.container().get::<CreatedTasks>().unwrap();
        tokio::time::timeout(Duration::from_secs(10), created.wait_for(id))
            .await
            .expect("the handler sees the task");
        assert_eq!(created.seen(), [id]);
        // One interceptor, written once, saw both kinds of unit of work.
        let seen = app.container().get::<UnitsSeen>().unwrap();
        assert_eq!(seen.count(UnitKind::Http), 1);
        assert_eq!(seen.count(UnitKind::Message), 1);
    })
    .await;
}

#[tokio::test]
async fn a_created_task_is_handled_through_rabbitmq_and_redis() {
    let (Some(amqp), Some(redis)) = (jararaca_testing::rabbitmq(), jararaca_testing::redis())
    else {
        return;
    };
    let namespace = jararaca_testing::RabbitNamespace::new(&amqp, "quickstart").await;
    let broker_url = namespace.broker_url();
    let service = quickstart::service().with(BusSettings {
        broker_url: Some(broker_url.clone()),
        backend_url: Some(redis),
    });
    let topology = service
        .get_capability::<MessageBus>()
        .unwrap()
        .topology(service.name());
    let url = BrokerUrl::parse(&broker_url).unwrap();
    declare(&url, &topology, false).await.unwrap();
    let app = service.build().await.unwrap();
    assert!(!app.bus_in_memory());
    let ready = app
        .router()
        .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let checks: Value =
        serde_json::from_slice(&ready.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(checks["checks"]["rabbitmq"]["status"], "ok", "{checks}");
    assert_eq!(checks["checks"]["redis"]["status"], "ok", "{checks}");

    let outcome = tokio::spawn(with_worker(app, async |app| {
        let id = create(&app.router(), "through rabbitmq").await;
        let created = app.container().get::<CreatedTasks>().unwrap();
        tokio::time::timeout(Duration::from_secs(20), created.wait_for(id))
            .await
            .expect("the worker handles the message from RabbitMQ");
    }))
    .await;

    namespace
        .cleanup(topology.queues.iter().map(|q| q.name.clone()))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
