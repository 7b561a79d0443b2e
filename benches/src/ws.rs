//! The `ws` workload: `--clients` WebSocket clients (default 10,000) in one room, and
//! `--broadcasts` messages (default 20) sent to the room, each timed from the moment the
//! server sends it (a timestamp in the message) to its receipt at every client. Two servers,
//! each in its own process pinned to one core, the clients in this process on the other:
//!
//! * `raw` — the broadcaster a careful engineer writes with axum alone: a
//!   `tokio::sync::broadcast` channel, one task per socket forwarding it, and the lean
//!   buffers (`read_buffer_size(4096)`, `write_buffer_size(0)`);
//! * `ours` — a `Microservice` with a `WebSocketController` endpoint joining the room, and
//!   an HTTP route whose unit of work stages the message (`TaskTick { … }.send(&["bench"])`),
//!   sent after the unit committed through the in-process manager, with its default limits.
//!
//! Both send the same bytes, `{"MESSAGE_ID":"bench.tick","message":{"seq":N,"sent_at_ns":T}}`
//! in binary frames. Each run prints p50/p99 latency over every client and broadcast, and
//! the server's memory per connection (RSS with the clients connected minus RSS before, over
//! the clients). The last lines are `KIB_PER_CONN <ours>` and `RATIO ws <raw p99 / our p99>`
//! (medians over `--runs`, default 3, raw and ours alternating).

use std::net::SocketAddr;
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use jararaca::prelude::*;
use jararaca::ws::{WebSocketController, WebSocketMessage, WebSocketSettings, WsUpgrade};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::harness::{self, BoxError, median};
use crate::pin;

/// Options of the `ws` workload.
#[derive(Debug)]
pub(crate) struct Options {
    runs: usize,
    clients: usize,
    broadcasts: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 3,
            clients: 10_000,
            broadcasts: 20,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            match flag {
                "--runs" => options.runs = (number as usize).max(1),
                "--clients" => options.clients = (number as usize).max(1),
                "--broadcasts" => options.broadcasts = (number as usize).max(1),
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(options)
    }
}

#[derive(Serialize, schemars::JsonSchema, ts_rs::TS)]
struct Tick {
    seq: u64,
    sent_at_ns: u64,
}

impl WebSocketMessage for Tick {
    const MESSAGE_ID: &'static str = "bench.tick";
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        sent_at_ns: now_ns(),
    }
}

async fn raw_ws(ws: WebSocketUpgrade, State(tx): State<broadcast::Sender<Bytes>>) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| raw_socket(socket, tx.subscribe()))
}

async fn raw_socket(mut socket: WebSocket, mut rx: broadcast::Receiver<Bytes>) {
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(frame) => {
                    if socket.send(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

async fn raw_broadcast(
    State(tx): State<broadcast::Sender<Bytes>>,
    Path(seq): Path<u64>,
) -> Response {
    match jararaca::ws::encode_frame(&tick(seq)) {
        Ok(frame) => {
            let _ = tx.send(frame);
            http::StatusCode::OK.into_response()
        }
        Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn our_ws(upgrade: WsUpgrade) -> Response {
    match upgrade.join(&["bench"]) {
        Ok(upgrade) => upgrade.into_response(),
        Err(e) => (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn our_broadcast(
    jararaca::http::Path(seq): jararaca::http::Path<u64>,
) -> Result<(), jararaca::http::ApiError> {
    use jararaca::ws::WebSocketMessageExt;
    tick(seq)
        .send(&["bench"])
        .await
        .map_err(jararaca::http::ApiError::internal)
}

/// Serves `target` (`raw` or `ours`) on `127.0.0.1:port` until killed.
pub(crate) fn serve(target: &str, port: u16) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), BoxError> = runtime.block_on(async {
        let router = match target {
            "raw" => {
                let (tx, _) = broadcast::channel::<Bytes>(1024);
                axum::Router::new()
                    .route("/ws", get(raw_ws))
                    .route("/broadcast/{seq}", post(raw_broadcast))
                    .with_state(tx)
            }
            "ours" => jararaca::Microservice::new("bench")
                .controller(WebSocketController::new("Bench", "/").endpoint("/ws", our_ws))
                .controller(
                    jararaca::http::Controller::new("Broadcast", "/broadcast")
                        .post("/{seq}", our_broadcast),
                )
                .with(WebSocketSettings::in_process())
                .build()
                .await?
                .router(),
            other => return Err(format!("unknown target `{other}`").into()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, router).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-serve {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> Result<u64, BoxError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
    }
}

fn start(target: &str, pinned: bool) -> Result<(Server, SocketAddr), BoxError> {
    let exe = std::env::current_exe()?;
    let exe = exe.to_string_lossy().into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let port_text = port.to_string();
    let child = pin::command(
        pinned.then_some(pin::SERVER_CORE),
        &exe,
        &["ws-serve", target, &port_text],
    )
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()?;
    let server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..400 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok((server, addr));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("the {target} server did not start listening").into())
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    min_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    kib_per_conn: f64,
    lost: usize,
}

/// A minimal HTTP/1.1 POST, so that the trigger costs the same for both servers.
async fn trigger(addr: SocketAddr, seq: u64) -> Result<(), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST /broadcast/{seq} HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "the broadcast trigger answered {}",
            String::from_utf8_lossy(&response[..response.len().min(40)])
        )
        .into());
    }
    Ok(())
}

fn sent_at(frame: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(frame).ok()?;
    let start = text.find("\"sent_at_ns\":")? + "\"sent_at_ns\":".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn measure(target: &str, options: &Options, pinned: bool) -> Result<Measured, BoxError> {
    let (server, addr) = start(target, pinned)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib()?;

    let received = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(options.clients);
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let mut handshakes = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        let permit = Arc::clone(&connecting);
        handshakes.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await?;
            let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
            Ok::<_, BoxError>(client)
        }));
    }
    for handshake in handshakes {
        let mut client = handshake.await??;
        let received = Arc::clone(&received);
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while let Some(Ok(message)) = client.next().await {
                if let tokio_tungstenite::tungstenite::Message::Binary(frame) = message {
                    let at = now_ns();
                    if let Some(sent) = sent_at(&frame) {
                        latencies.push(at.saturating_sub(sent));
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    // Joined (ours) or subscribed (raw) once the server has answered the upgrade; a warm-up
    // broadcast makes sure every socket task is running before memory is read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clients_n = options.clients;
    let wait_all = |expected: usize, received: Arc<AtomicUsize>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    trigger(addr, 0).await?;
    wait_all(clients_n, Arc::clone(&received)).await;
    let after = server.rss_kib()?;
    for seq in 1..=options.broadcasts as u64 {
        trigger(addr, seq).await?;
        wait_all(clients_n * (seq as usize + 1), Arc::clone(&received)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    drop(server);
    let mut latencies = Vec::with_capacity(clients_n * options.broadcasts);
    for client in clients {
        let mut own = client.await?;
        // The warm-up broadcast is not timed.
        if !own.is_empty() {
            own.remove(0);
        }
        latencies.extend(own.into_iter().map(|ns| ns as f64 / 1e6));
    }
    if latencies.is_empty() {
        return Err(format!("no {target} client received a broadcast").into());
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(Measured {
        min_ms: latencies[0],
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        kib_per_conn: after.saturating_sub(before) as f64 / clients_n as f64,
        lost: (clients_n * (options.broadcasts + 1)).saturating_sub(delivered),
    })
}

async fn bench(options: &Options, pinned: bool) -> Result<f64, BoxError> {
    let (mut raw_p99, mut our_p99, mut our_kib) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "ws: {} clients in one room, {} broadcasts per run, {} run(s)",
        options.clients, options.broadcasts, options.runs
    );
    for run in 1..=options.runs {
        for target in ["raw", "ours"] {
            let m = measure(target, options, pinned).await?;
            println!(
                "run {run} {target:>4}: min {:.1} ms  p50 {:.1} ms  p99 {:.1} ms  {:.1} KiB/conn  lost {}",
                m.min_ms, m.p50_ms, m.p99_ms, m.kib_per_conn, m.lost
            );
            if target == "raw" {
                raw_p99.push(m.p99_ms);
            } else {
                our_p99.push(m.p99_ms);
                our_kib.push(m.kib_per_conn);
            }
            // Let the closed sockets of this run go before the next server starts.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let (raw, ours) = (median(&mut raw_p99), median(&mut our_p99));
    println!("median p99: raw {raw:.1} ms, ours {ours:.1} ms");
    println!("KIB_PER_CONN {:.1}", median(&mut our_kib));
    Ok(raw / ours)
}

pub(crate) fn run(options: &Options) -> ExitCode {
    let pinned = pin::available() && pin::pin_self(pin::LOAD_CORE);
    if !pinned {
        eprintln!(
            "note: cannot pin to separate cores (taskset missing or one core); numbers are noisier"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build();
    harness::report("ws", runtime, bench(options, pinned))
}
