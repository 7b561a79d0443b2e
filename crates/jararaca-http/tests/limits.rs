//! `ServerLimits` on a real socket: slow headers and bodies are cut off, a declared body above
//! the limit is refused before it is sent, and the connection cap holds new connections back.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use jararaca_http::ServerLimits;
use jararaca_http::server::serve_router_with_limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Longer than any limit below: a test that waits this long has seen a limit fail.
const PATIENCE: Duration = Duration::from_secs(10);

async fn start(limits: ServerLimits) -> (SocketAddr, oneshot::Sender<()>) {
    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/echo", post(|body: Bytes| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_router_with_limits(
        router,
        listener,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        limits,
    ));
    (addr, stop)
}

/// Reads until the server closes the connection; what it sent before that.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response head and body of `Content-Length` bytes.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {out:?}");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_half_its_headers_is_disconnected() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits).await;

    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    read_to_close(&mut partial).await;

    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    read_to_close(&mut silent).await;

    // A client that sends whole requests is served, and stays connected between them.
    let mut fine = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        fine.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut fine).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello"), "{response}");
    }
}

#[tokio::test]
async fn a_declared_body_above_the_limit_is_refused_before_it_is_sent() {
    let limits = ServerLimits {
        max_body_size: 1024,
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    // 1 GB declared, not one byte of it sent.
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        .await
        .unwrap();
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("content-type: application/json"),
        "{response}"
    );
    assert!(
        response.ends_with(
            r#"{"detail":"the request body is larger than the 1024 bytes this server accepts"}"#
        ),
        "{response}"
    );

    // Within the limit, the body is read; a chunked body above it is cut off with 413 too.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let response = read_response(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    let chunk = "x".repeat(2000);
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    client.write_all(chunked.as_bytes()).await.unwrap();
    let response = read_response(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off() {
    let limits = ServerLimits {
        body_read_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let response = read_to_close(&mut client).await;
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn the_connection_cap_holds_new_connections_until_one_closes() {
    let limits = ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    };
    let (addr, _stop) = start(limits).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut client).await.starts_with("HTTP/1.1 200"));
        open.push(client);
    }

    // The third connects (the listener's backlog takes it) but is not served...
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "served above the cap: {early:?}");

    // ...until one of the two closes.
    drop(open.pop());
    let response = read_response(&mut third).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// hyper refuses a head too large for its buffer, and a target too long, by itself: the
/// answers still carry the documented JSON body, and the connection still answers whatever
/// came before on it.
#[tokio::test]
async fn heads_too_large_are_answered_with_the_error_body() {
    let (addr, _stop) = start(ServerLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.contains("hello"));
    let big = "a".repeat(600 * 1024);
    let head = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    // The server may stop reading (and close) before all of it is sent.
    let _ = stream.write_all(head.as_bytes()).await;
    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("headers"),
        "{body}"
    );

    let mut stream = TcpStream::connect(addr).await.unwrap();
    let target = "/".repeat(70 * 1024);
    let _ = stream
        .write_all(format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await;
    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 414 "), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(body["detail"].is_string(), "{body}");
}
