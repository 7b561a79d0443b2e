//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections, each sending
//! the next request as soon as the previous answer is read, for a fixed time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// What one load run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) requests_per_second: f64,
    pub(crate) p99: Duration,
    pub(crate) errors: u64,
}

/// Loads `GET path` on `addr` from `connections` connections for `duration`.
pub(crate) async fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> Measured {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            connection(addr, &path, deadline).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((mut l, e)) => {
                latencies.append(&mut l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    Measured {
        requests_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99,
        errors,
    }
}

async fn connection(addr: SocketAddr, path: &str, deadline: Instant) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return (latencies, 1);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return (latencies, 1);
    };
    tokio::spawn(conn);
    while Instant::now() < deadline {
        let request = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new());
        let Ok(request) = request else {
            return (latencies, errors + 1);
        };
        let sent = Instant::now();
        match sender.send_request(request).await {
            Ok(response) if response.status().is_success() => {
                if response.into_body().collect().await.is_err() {
                    errors += 1;
                    break;
                }
                latencies.push(sent.elapsed());
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (latencies, errors)
}

/// Sends `requests` requests for `GET path` to `addr` one after another on a single keep-alive
/// connection, reading each answer in full before sending the next; fails on the first
/// request that does not succeed. The sequence is the same on every call, so a server's cost
/// for it can be compared between calls with different `requests`.
pub(crate) async fn sequential(addr: SocketAddr, path: &str, requests: u64) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let conn = tokio::spawn(conn);
    for sent in 0..requests {
        let request = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request {} of {requests}: {e}", sent + 1))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("request {} of {requests}: {status}", sent + 1));
        }
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("request {} of {requests}: {e}", sent + 1))?;
    }
    // Close the connection before the server is stopped, as every run does the same.
    drop(sender);
    let _ = conn.await;
    Ok(())
}
