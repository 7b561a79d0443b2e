//! The bus handlers tell the notifier (the `notifier` example, on a real socket) about each
//! created and completed task through the declared REST client; without `NOTIFIER_URL`
//! nobody is told and the handlers still succeed.

mod common;

use std::time::Duration;

use common::{access, call, login};
use http::StatusCode;
use jararaca::prelude::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_and_completed_tasks_reach_the_notifier() {
    let notifier = notifier::service().build().await.unwrap();
    let inbox = notifier.container().get::<notifier::Inbox>().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = notifier.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let service = tasks_service::service_on(tasks_service::Deployment::embedded())
        .providers(move |c| c.env([("NOTIFIER_URL", format!("http://{addr}"))]));
    let (app, _addr, stop, running) = common::all_in_one(service).await;
    let router = app.router();
    let token = access(&login(&router, "bob").await);
    let (status, task) = call(
        &router,
        "POST",
        "/tasks",
        Some(&token),
        Some(json!({"title": "call mum"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = task["id"].as_str().unwrap();
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        inbox.wait_for(&format!("task-{id}-created")),
    )
    .await
    .expect("the notifier hears of the new task");
    assert_eq!(created.text, "bob created \"call mum\"");

    let (status, _) = call(
        &router,
        "POST",
        &format!("/tasks/{id}/complete"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let completed = tokio::time::timeout(
        Duration::from_secs(10),
        inbox.wait_for(&format!("task-{id}-completed")),
    )
    .await
    .expect("the notifier hears of the completion");
    assert_eq!(completed.text, "bob completed \"call mum\"");
    assert_eq!(inbox.notifications().len(), 2);

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
