//! WebSocket through the facade: the derive and the controller macro, a service serving an
//! endpoint on a real socket, and a send staged by an HTTP route reaching the client.

use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use jararaca::http::{ApiError, Controller, HttpApp, Path};
use jararaca::prelude::*;
use jararaca::ws::WebSocketMessage as _;
use jararaca::ws::{WebSocketManager, WsUpgrade};
use jararaca::{Microservice, WebSocketMessage, websocket_controller};
use schemars::JsonSchema;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use ts_rs::TS;

#[derive(Debug, Serialize, JsonSchema, TS, WebSocketMessage)]
#[websocket_message(id = "task.updated")]
struct TaskUpdated {
    task_id: u32,
    title: String,
}

struct TasksSocket;

#[websocket_controller("/ws", messages(TaskUpdated))]
impl TasksSocket {
    #[websocket("/tasks/{project}")]
    async fn tasks(upgrade: WsUpgrade, Path(project): Path<String>) -> Result<Response, ApiError> {
        let upgrade = upgrade
            .join(&[format!("project:{project}")])
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(upgrade.into_response())
    }
}

async fn rename(Path((project, id)): Path<(String, u32)>) -> Result<(), ApiError> {
    TaskUpdated {
        task_id: id,
        title: "renamed".into(),
    }
    .send(&[format!("project:{project}")])
    .await
    .map_err(ApiError::internal)
}

#[test]
fn the_derive_gives_the_message_id() {
    assert_eq!(TaskUpdated::MESSAGE_ID, "task.updated");
    let controller = TasksSocket::websocket_controller();
    assert_eq!(controller.name(), "TasksSocket");
    assert_eq!(controller.messages()[0].id, "task.updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_pushes_to_the_room_of_a_connected_client() {
    let service = Microservice::new("tasks")
        .controller(TasksSocket::websocket_controller())
        .controller(Controller::new("TasksController", "/tasks").post("/{project}/{id}", rename))
        .with(jararaca::ws::WebSocketSettings::in_process());
    let api = service.api();
    assert_eq!(api.websocket_messages[0].id, "task.updated");
    assert!(api.routes.iter().all(|r| !r.path.starts_with("/ws")));
    let app = service.build().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/tasks/p1"))
        .await
        .unwrap();
    let manager: WebSocketManager = app.ws_manager().unwrap();
    for _ in 0..500 {
        if manager.room_size("project:p1") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    use tower::ServiceExt;
    let response = app
        .router()
        .oneshot(
            http::Request::post("/tasks/p1/7")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        frame,
        Message::Binary(bytes::Bytes::from_static(
            br#"{"MESSAGE_ID":"task.updated","message":{"task_id":7,"title":"renamed"}}"#
        ))
    );
}
