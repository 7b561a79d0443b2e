//! `/ws/tasks`: the upgrade needs a valid access token (from the query string, as browsers
//! send it), and each connection gets its own user's pushes only — from the HTTP handlers,
//! the bus handlers and the scheduled summary.

mod common;

use std::time::Duration;

use common::{access, call, login};
use futures_util::StreamExt;
use http::StatusCode;
use jararaca::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame on `socket` (binary, as `@jararaca/core` wants them), within `wait`.
async fn next_frame(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(frame))) => return serde_json::from_slice(&frame).unwrap(),
                Some(Ok(Message::Text(text))) => panic!("a text frame: {text}"),
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

/// The next frame whose `MESSAGE_ID` is `id`, skipping the others (the summary comes every
/// 15 seconds, whenever it is due).
async fn next_of(socket: &mut Socket, id: &str) -> Value {
    loop {
        let frame = next_frame(socket, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("a {id} within 30 s"));
        if frame["MESSAGE_ID"] == id {
            return frame["message"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_hears_their_own_changes_from_http_the_bus_and_the_beat() {
    let (app, addr, stop, running) = common::all_in_one(tasks_service::service_on(
        tasks_service::Deployment::embedded(),
    ))
    .await;
    let router = app.router();

    let alice = access(&login(&router, "alice").await);
    let bob = access(&login(&router, "bob").await);
    let url = |token: &str| format!("ws://{addr}/ws/tasks?access_token={token}");

    // Without a token, or with a bad one, the upgrade is refused before it happens.
    for bad in [format!("ws://{addr}/ws/tasks"), url("not-a-jwt")] {
        match tokio_tungstenite::connect_async(bad.as_str()).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let (mut alice_socket, _) = tokio_tungstenite::connect_async(url(&alice)).await.unwrap();
    let (mut bob_socket, _) = tokio_tungstenite::connect_async(url(&bob)).await.unwrap();
    let manager = app.ws_manager().unwrap();
    for _ in 0..500 {
        if manager.room_size("user:alice") == 1 && manager.room_size("user:bob") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (status, task) = call(
        &router,
        "POST",
        "/tasks",
        Some(&alice),
        Some(json!({"title": "write docs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = task["id"].clone();

    // From the HTTP handler.
    let changed = next_of(&mut alice_socket, "task.changed").await;
    assert_eq!(
        (&changed["change"], &changed["task"]),
        (&json!("created"), &task)
    );
    // From the bus handler, once it handled task.created.
    let notice = next_of(&mut alice_socket, "task.notice").await;
    assert_eq!(
        (&notice["task_id"], &notice["event"]),
        (&id, &json!("task.created"))
    );
    assert!(
        notice["handled_by"]
            .as_str()
            .unwrap()
            .starts_with("worker pid ")
    );

    let (status, _) = call(
        &router,
        "POST",
        &format!("/tasks/{}/complete", id.as_str().unwrap()),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let changed = next_of(&mut alice_socket, "task.changed").await;
    assert_eq!(
        (&changed["change"], &changed["task"]["done"]),
        (&json!("completed"), &json!(true))
    );
    let notice = next_of(&mut alice_socket, "task.notice").await;
    assert_eq!(notice["event"], "task.completed");

    // From the scheduled action: alice has one task, done.
    let summary = next_of(&mut alice_socket, "tasks.summary").await;
    assert_eq!((&summary["open"], &summary["done"]), (&json!(0), &json!(1)));

    // Bob has no task: nothing of alice's reached him (no summary either).
    assert_eq!(
        next_frame(&mut bob_socket, Duration::from_millis(500)).await,
        None
    );

    // A revoked token can open no new connection.
    let (status, _) = call(
        &router,
        "POST",
        "/auth/logout",
        Some(&alice),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    match tokio_tungstenite::connect_async(url(&alice)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("a revoked token connected: {other:?}"),
    }

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
