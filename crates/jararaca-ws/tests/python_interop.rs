//! Python jararaca 0.5.13 and this crate on one Redis: a message a Python service sends
//! through its `RedisWebSocketConnectionBackend` reaches a client connected to our server,
//! and one we send reaches a client connected to a Python server (its
//! `WebSocketConnectionManagerImpl` over that backend, served by uvicorn); the frames are
//! compared byte for byte.
//!
//! The Python side runs the real package, installed into a virtual environment under the
//! target directory by `interop/setup.sh` (once; later runs reuse it). Without python3 or the
//! package index the tests skip with the reason; with `JARARACA_REQUIRE_SERVICES=1` they fail
//! instead. Every wait is bounded and every Python process is killed when its test ends.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use jararaca_di::Interceptors;
use jararaca_ws::{
    RedisChannels, WebSocketApp, WebSocketController, WebSocketManager, WebSocketMessage,
    WebSocketSettings, WsConfig, WsUpgrade, encode_frame,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

/// `OrderUpdated` of `interop/ws_interop.py`, field for field.
#[derive(Debug, Serialize)]
struct OrderUpdated {
    order_id: String,
    new_status: String,
    amount_cents: i64,
    tags: Vec<String>,
    note: Option<String>,
}

impl WebSocketMessage for OrderUpdated {
    const MESSAGE_ID: &'static str = "order.updated";
}

fn order() -> OrderUpdated {
    OrderUpdated {
        order_id: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b".into(),
        new_status: "créé \"now\"".into(),
        amount_cents: 1299,
        tags: vec!["gift".into(), "ünïcode".into()],
        note: None,
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// The virtual environment with Python jararaca, built once (and reused across processes).
fn venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let venv = tmp.join("python-jararaca-ws-0.5.13");
        let log = venv.with_extension("setup.log");
        let out = File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("bash")
            .arg(interop_dir().join("setup.sh"))
            .arg(&venv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(venv),
                Ok(Some(status)) => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!(
                        "installing Python jararaca 0.5.13 failed ({status}): {text}"
                    ));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    return Err("installing Python jararaca 0.5.13 took over 10 minutes".into());
                }
            }
        }
    })
    .clone()
}

async fn python() -> Option<PathBuf> {
    let found = tokio::task::spawn_blocking(venv)
        .await
        .unwrap_or_else(|e| Err(format!("the setup task failed: {e}")));
    match found {
        Ok(venv) => Some(venv),
        Err(reason) if jararaca_testing::services_required() => panic!(
            "{reason}; {} is set, so this test cannot skip",
            jararaca_testing::REQUIRE_SERVICES
        ),
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

fn script(venv: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(venv.join("bin").join("python"));
    command
        .arg(interop_dir().join("ws_interop.py"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    command
}

/// A Python process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn room(upgrade: WsUpgrade) -> axum::response::Response {
    use axum::response::IntoResponse;
    match upgrade.join(&["orders"]) {
        Ok(upgrade) => upgrade.into_response(),
        Err(e) => (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_send_reaches_a_client_of_our_server() {
    let Some(url) = jararaca_testing::redis() else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let prefix = jararaca_testing::unique_name("ws_py_to_rs");
    let settings = WebSocketSettings::redis(&url).channels(RedisChannels::prefixed(&prefix));
    let app = build(
        move |capabilities| {
            use jararaca_di::Contribution;
            WebSocketController::new("Orders", "/ws")
                .endpoint("/orders", room)
                .contribute(capabilities);
            settings.contribute(capabilities);
        },
        Interceptors::new(),
    )
    .await;
    let mut client = connect(serve(&app).await, "/ws/orders").await;
    let manager = app.ws_manager().unwrap();
    assert!(eventually(|| manager.room_size("orders") == 1).await);

    let output = tokio::task::spawn_blocking(move || {
        script(&venv, &["send", &url, &prefix, "orders"])
            .stdin(Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .expect("run the Python sender");
    assert!(
        output.status.success(),
        "the Python sender failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python_wrapper = output.stdout;
    let received = next_data(&mut client).await.expect("the Python message");
    let Message::Binary(frame) = received else {
        panic!("expected a binary frame, got {received:?}")
    };
    println!("python sent:  {}", String::from_utf8_lossy(&python_wrapper));
    println!("client got:   {}", String::from_utf8_lossy(&frame));
    assert_eq!(
        &frame[..],
        &python_wrapper[..],
        "the frame is Python's wrapper, byte for byte"
    );
    assert_eq!(
        frame,
        encode_frame(&order()).unwrap(),
        "and what we encode ourselves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_send_reaches_a_client_of_a_python_server() {
    let Some(url) = jararaca_testing::redis() else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let prefix = jararaca_testing::unique_name("ws_rs_to_py");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut child = script(
        &venv,
        &["serve", &url, &prefix, "orders", &port.to_string()],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start the Python server");
    let stdout = child.stdout.take().unwrap();
    let _server = Killed(child);
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l == "ready")
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .unwrap()
            .unwrap(),
        "the Python server did not get ready"
    );
    let mut client = None;
    for _ in 0..200 {
        match tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await {
            Ok((c, _)) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut client = client.expect("a client of the Python server");

    let manager =
        WebSocketManager::redis(&url, RedisChannels::prefixed(&prefix), WsConfig::default())
            .await
            .unwrap();
    // The Python endpoint joins the room just after accepting: send until it arrives.
    let expected = encode_frame(&order()).unwrap();
    let mut frame: Option<Bytes> = None;
    for _ in 0..50 {
        manager.send(&["orders"], &order()).await.unwrap();
        if let Ok(Some(Ok(Message::Binary(got)))) = tokio::time::timeout(
            Duration::from_millis(200),
            futures_util::StreamExt::next(&mut client),
        )
        .await
        {
            frame = Some(got);
            break;
        }
    }
    let frame = frame.expect("the Python server delivered our message in a binary frame");
    println!("we sent:     {}", String::from_utf8_lossy(&expected));
    println!("client got:  {}", String::from_utf8_lossy(&frame));
    assert_eq!(frame, expected, "byte for byte");
}
