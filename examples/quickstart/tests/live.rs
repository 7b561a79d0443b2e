//! `task.updated` reaches a client of `/ws/tasks` from the bus handler (once the worker has
//! handled the task's creation) and from the HTTP handler that replaces the task.

use jararaca::prelude::*;
use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use quickstart::{TaskChange, TaskUpdated};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

async fn next_update(
    client: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.next().await {
                Some(Ok(Message::Binary(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a task.updated within 10 s");
    serde_json::from_slice(&frame).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_changes_are_pushed_to_the_tasks_room() {
    let service = quickstart::service();
    assert!(
        service
            .api()
            .websocket_messages
            .iter()
            .any(|m| m.id == "task.updated")
    );
    let app = service.build().await.unwrap();
    app.container().startup().await.unwrap();
    let router = app.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(app.worker().unwrap().run(async move {
        let _ = stopped.await;
    }));

    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/tasks"))
        .await
        .unwrap();
    let manager = app.ws_manager().unwrap();
    for _ in 0..500 {
        if manager.room_size(quickstart::TASKS_ROOM) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let created = router
        .clone()
        .oneshot(
            Request::post("/tasks")
                .header("content-type", "application/json")
                .body(Body::from(json!({ "title": "write docs" }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let task: Value =
        serde_json::from_slice(&created.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = task["id"].as_str().unwrap().to_owned();

    // From the bus handler, once it handled task.created.
    let handled = next_update(&mut client).await;
    assert_eq!(handled["MESSAGE_ID"], "task.updated");
    let handled: TaskUpdated = serde_json::from_value(handled["message"].clone()).unwrap();
    assert_eq!(
        (handled.id.to_string(), handled.change),
        (id.clone(), TaskChange::Handled)
    );

    // From the HTTP handler that replaces it.
    let updated = router
        .clone()
        .oneshot(
            Request::put(format!("/tasks/{id}"))
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "title": "write more docs", "done": true }).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let pushed = next_update(&mut client).await;
    let pushed: TaskUpdated = serde_json::from_value(pushed["message"].clone()).unwrap();
    assert_eq!(pushed.change, TaskChange::Updated);
    assert_eq!(
        (pushed.title.as_str(), pushed.done),
        ("write more docs", true)
    );

    // A replace that fails (no such task) pushes nothing: the next frame is the next change.
    let missing = router
        .clone()
        .oneshot(
            Request::put(format!("/tasks/{}", uuid::Uuid::new_v4()))
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "title": "x", "done": false }).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let again = router
        .oneshot(
            Request::put(format!("/tasks/{id}"))
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "title": "last", "done": true }).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let pushed = next_update(&mut client).await;
    assert_eq!(pushed["message"]["title"], "last");

    let _ = stop.send(());
    let _ = worker.await;
}
