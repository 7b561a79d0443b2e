//! Real servers on 127.0.0.1:0, real tokio-tungstenite clients, and (for fan-out) the real
//! Redis on loopback with channels of each test's own.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use jararaca_di::{BoxError, Interceptors};
use jararaca_http::{ApiError, Controller, Path};
use jararaca_ws::{
    CLOSE_TOO_SLOW, RedisChannels, WebSocketApp, WebSocketController, WebSocketMessage,
    WebSocketMessageExt, WebSocketSettings, WsConfig, WsFrame, WsUpgrade,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Serialize, schemars::JsonSchema, ts_rs::TS)]
struct Said {
    room: String,
    text: String,
}

impl WebSocketMessage for Said {
    const MESSAGE_ID: &'static str = "chat.said";
}

fn said(room: &str, text: &str) -> Message {
    Message::Binary(Bytes::from(format!(
        r#"{{"MESSAGE_ID":"chat.said","message":{{"room":"{room}","text":"{text}"}}}}"#
    )))
}

/// `/ws/chat/{room}`: joins the room; each frame says its text to the room, and a frame
/// saying "fail" stages its send and then fails.
async fn chat(upgrade: WsUpgrade, Path(room): Path<String>) -> Result<Response, ApiError> {
    let upgrade = upgrade
        .join(&[&room])
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(upgrade
        .on_frame(move |frame: WsFrame| {
            let room = room.clone();
            async move {
                let text = frame.text().unwrap_or_default().to_owned();
                Said {
                    room: room.clone(),
                    text: text.clone(),
                }
                .send(&[&room])
                .await?;
                if text == "fail" {
                    return Err::<(), BoxError>("the frame's handler failed".into());
                }
                Ok(())
            }
        })
        .into_response())
}

/// `POST /say/{room}/{text}`: an HTTP unit of work staging a send; `fail` answers 500.
async fn say_over_http(Path((room, text)): Path<(String, String)>) -> Result<(), ApiError> {
    Said {
        room: room.clone(),
        text: text.clone(),
    }
    .send(&[&room])
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if text == "fail" {
        return Err(ApiError::internal("failed after staging"));
    }
    Ok(())
}

fn chat_service(settings: WebSocketSettings) -> impl FnOnce(&mut jararaca_di::Capabilities) {
    move |capabilities| {
        use jararaca_di::Contribution;
        WebSocketController::new("ChatSocket", "/ws")
            .endpoint("/chat/{room}", chat)
            .message::<Said>()
            .contribute(capabilities);
        Controller::new("ChatHttp", "/say")
            .post("/{room}/{text}", say_over_http)
            .contribute(capabilities);
        settings.contribute(capabilities);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_one_instance_reaches_the_room_on_both_over_redis() {
    let Some(url) = jararaca_testing::redis() else {
        return;
    };
    let channels = RedisChannels::prefixed(&jararaca_testing::unique_name("ws_two"));
    let settings = WebSocketSettings::redis(&url).channels(channels);
    let one = build(chat_service(settings.clone()), Interceptors::new()).await;
    let two = build(chat_service(settings), Interceptors::new()).await;
    let (addr_one, addr_two) = (serve(&one).await, serve(&two).await);

    let mut alice = connect(addr_one, "/ws/chat/lobby").await;
    let mut bob = connect(addr_two, "/ws/chat/lobby").await;
    let mut carol = connect(addr_two, "/ws/chat/kitchen").await;
    let (m1, m2) = (one.ws_manager().unwrap(), two.ws_manager().unwrap());
    assert!(eventually(|| m1.room_size("lobby") == 1 && m2.room_size("lobby") == 1).await);

    // From an HTTP unit of work on instance one: both lobby clients, the sender's instance
    // included, get the reference's frame, in a binary frame.
    assert_eq!(post(&one, "/say/lobby/hello").await, 200);
    assert_eq!(next_data(&mut alice).await, Some(said("lobby", "hello")));
    assert_eq!(next_data(&mut bob).await, Some(said("lobby", "hello")));

    // From a frame's unit of work on instance two.
    say(&mut bob, "hi").await;
    assert_eq!(next_data(&mut alice).await, Some(said("lobby", "hi")));
    assert_eq!(next_data(&mut bob).await, Some(said("lobby", "hi")));

    // Carol, in another room, got neither: her first frame is the kitchen's.
    assert_eq!(post(&one, "/say/kitchen/soup").await, 200);
    assert_eq!(next_data(&mut carol).await, Some(said("kitchen", "soup")));

    // Instance one hears the kitchen's message from Redis too, though none of its clients is
    // in that room; it may hear it after Carol did.
    assert!(
        eventually(|| m1.stats().received >= 3).await,
        "{:?}",
        m1.stats()
    );
    let stats = m1.stats();
    assert_eq!(stats.publish_failures, 0);
    assert!(stats.published >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_unit_sends_nothing() {
    let app = build(
        chat_service(WebSocketSettings::in_process()),
        Interceptors::new(),
    )
    .await;
    let addr = serve(&app).await;
    let mut client = connect(addr, "/ws/chat/r").await;
    let manager = app.ws_manager().unwrap();
    assert!(eventually(|| manager.room_size("r") == 1).await);

    // An HTTP unit that staged a send and then failed: nothing; the next one arrives first.
    assert_eq!(post(&app, "/say/r/fail").await, 500);
    assert_eq!(post(&app, "/say/r/after-http").await, 200);
    assert_eq!(next_data(&mut client).await, Some(said("r", "after-http")));

    // A frame's unit likewise.
    say(&mut client, "fail").await;
    say(&mut client, "after-frame").await;
    assert_eq!(next_data(&mut client).await, Some(said("r", "after-frame")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_interceptor_refuses_the_upgrade_with_401() {
    let upgrades = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&upgrades);
    let interceptors = Interceptors::new().layer(tower::layer::layer_fn(move |inner| {
        seen.fetch_add(1, Ordering::Relaxed);
        RequireToken { inner }
    }));
    let app = build(chat_service(WebSocketSettings::in_process()), interceptors).await;
    let addr = serve(&app).await;

    let denied = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat/r")).await;
    match denied {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    assert_eq!(app.ws_manager().unwrap().connections(), 0);

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws/chat/r")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer good".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    // Frames carry the upgrade's headers, so the same interceptor lets them through.
    say(&mut client, "authorized").await;
    assert_eq!(next_data(&mut client).await, Some(said("r", "authorized")));
    assert!(upgrades.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_while_a_fast_one_keeps_receiving() {
    let config = WsConfig {
        close_timeout: Duration::from_secs(30),
        ..WsConfig::default().queue_capacity(8)
    };
    let app = build(
        chat_service(WebSocketSettings::in_process().config(config)),
        Interceptors::new(),
    )
    .await;
    let addr = serve(&app).await;
    let manager = app.ws_manager().unwrap();

    // The slow client reads nothing, through a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws/chat/feed"), stream)
            .await
            .unwrap();
    let mut fast = connect(addr, "/ws/chat/feed").await;
    assert!(eventually(|| manager.room_size("feed") == 2).await);

    let frame = Bytes::from(vec![b'x'; 16 * 1024]);
    let total = 2_000;
    let mut received = 0;
    for sent in 1..=total {
        manager.send_raw(&["feed"], frame.clone()).await.unwrap();
        // Paced by the fast client: it is never behind by more than a few frames.
        if sent % 4 == 0 {
            while received < sent {
                match next_data(&mut fast).await {
                    Some(Message::Binary(b)) => {
                        assert_eq!(b.len(), frame.len());
                        received += 1;
                    }
                    other => panic!("the fast client lost its stream after {received}: {other:?}"),
                }
            }
        }
    }
    assert_eq!(received, total, "the fast client got every frame");
    let stats = manager.stats();
    assert_eq!(stats.slow_clients, 1, "{stats:?}");
    assert!(eventually(|| manager.room_size("feed") == 1).await);
    println!(
        "fast client: {received}/{total} frames; slow clients cut off: {}",
        stats.slow_clients
    );

    // The slow client, reading at last, finds the close code after what was in flight.
    let close = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = slow.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    assert_eq!(close, Some(CLOSE_TOO_SLOW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_the_wire_cannot_carry_are_refused() {
    let app = build(
        chat_service(WebSocketSettings::in_process()),
        Interceptors::new(),
    )
    .await;
    let addr = serve(&app).await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat/a,b")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400),
        "{refused:?}"
    );
    let manager = app.ws_manager().unwrap();
    let error = manager
        .send(
            &["a,b"],
            &Said {
                room: "x".into(),
                text: "y".into(),
            },
        )
        .await;
    assert!(error.unwrap_err().to_string().contains("`,`"));
}

#[tokio::test]
async fn registered_messages_are_in_the_api_description() {
    let app = build(
        chat_service(WebSocketSettings::in_process()),
        Interceptors::new(),
    )
    .await;
    let api = app.description();
    assert_eq!(api.websocket_messages.len(), 1);
    assert_eq!(api.websocket_messages[0].id, "chat.said");
    assert_eq!(api.websocket_messages[0].controller, "ChatSocket");
    // The endpoint is served but is not an HTTP route of the API.
    assert!(
        api.routes.iter().all(|r| !r.path.starts_with("/ws")),
        "{:?}",
        api.routes
    );
    assert!(api.routes.iter().any(|r| r.path == "/say/{room}/{text}"));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_answering_pings_is_dropped_from_its_rooms() {
    let config = WsConfig::default().keepalive(Duration::from_secs(30), Duration::from_secs(10));
    let app = build(
        chat_service(WebSocketSettings::in_process().config(config)),
        Interceptors::new(),
    )
    .await;
    let addr = serve(&app).await;
    let manager = app.ws_manager().unwrap();
    // Connected, then never read again: pings go unanswered.
    let _silent = connect(addr, "/ws/chat/quiet").await;
    let mut waited = 0;
    while manager.room_size("quiet") == 1 || manager.connections() > 0 {
        assert!(waited < 1000, "the silent client is still connected");
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
    }
    assert_eq!(manager.stats().dead_connections, 1);
    assert_eq!(manager.room_size("quiet"), 0);
}
