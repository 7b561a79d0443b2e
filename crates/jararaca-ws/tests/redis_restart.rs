//! Redis restarted under a stream of sends between two instances: the sends made while it
//! is down fail and are counted, both subscriptions come back by themselves and report
//! their gap, and delivery resumes.
//!
//! It runs a Redis server of its own (`redis-server` on a free port, killed and started
//! again), so the shared one is never touched; as a fault test it is still ignored by default
//! and run alone:
//!
//! `cargo test -p jararaca-ws --test redis_restart -- --ignored --test-threads=1 --nocapture`

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use jararaca_di::Interceptors;
use jararaca_ws::{RedisChannels, WebSocketApp, WebSocketController, WebSocketSettings, WsUpgrade};
use tokio_tungstenite::tungstenite::Message;

async fn feed(upgrade: WsUpgrade) -> axum::response::Response {
    use axum::response::IntoResponse;
    match upgrade.join(&["feed"]) {
        Ok(upgrade) => upgrade.into_response(),
        Err(e) => (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

async fn wait(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis server of the test's own, killed when dropped.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Some(Self { child }),
            Err(e) if jararaca_testing::services_required() => {
                panic!("cannot run redis-server: {e}")
            }
            Err(e) => {
                eprintln!("skipping: cannot run redis-server ({e})");
                None
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills and restarts a Redis server: run alone, with --ignored"]
async fn delivery_resumes_after_a_redis_restart_and_the_gap_is_reported() {
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        return;
    };
    wait("the private Redis", Duration::from_secs(10), || {
        port_open(port)
    })
    .await;
    let url = format!("redis://127.0.0.1:{port}");
    let channels = RedisChannels::prefixed(&jararaca_testing::unique_name("ws_restart"));
    let settings = WebSocketSettings::redis(&url).channels(channels);
    let service = |settings: WebSocketSettings| {
        move |capabilities: &mut jararaca_di::Capabilities| {
            use jararaca_di::Contribution;
            WebSocketController::new("Feed", "/ws")
                .endpoint("/feed", feed)
                .contribute(capabilities);
            settings.contribute(capabilities);
        }
    };
    let one = build(service(settings.clone()), Interceptors::new()).await;
    let two = build(service(settings), Interceptors::new()).await;
    let (m1, m2) = (one.ws_manager().unwrap(), two.ws_manager().unwrap());
    let a = connect(serve(&one).await, "/ws/feed").await;
    let b = connect(serve(&two).await, "/ws/feed").await;
    wait("both clients", Duration::from_secs(10), || {
        m1.room_size("feed") == 1 && m2.room_size("feed") == 1
    })
    .await;
    // Each client reads until 10 s pass without a frame.
    let receive = |mut client: Client| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Message::Binary(frame)) = next_data(&mut client).await {
                got.push(String::from_utf8_lossy(&frame).into_owned());
            }
            got
        })
    };
    let (ra, rb) = (receive(a), receive(b));

    let sender = m1.clone();
    let stream = tokio::spawn(async move {
        let (mut ok, mut failed) = (Vec::new(), 0u64);
        for n in 0..200u32 {
            let frame = bytes::Bytes::from(format!("{{\"n\":{n}}}"));
            match sender.send_raw(&["feed"], frame).await {
                Ok(()) => ok.push(n),
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (ok, failed)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill();
    wait("Redis to stop", Duration::from_secs(10), || {
        !port_open(port)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _redis = PrivateRedis::start(port).expect("redis-server ran a moment ago");
    wait("Redis to come back", Duration::from_secs(30), || {
        port_open(port)
    })
    .await;
    let (sent_ok, failed) = stream.await.unwrap();
    wait(
        "both instances to resubscribe",
        Duration::from_secs(30),
        || m1.stats().resubscriptions >= 1 && m2.stats().resubscriptions >= 1,
    )
    .await;
    // Delivery resumed: one more send reaches both clients.
    m1.send_raw(&["feed"], bytes::Bytes::from_static(b"{\"n\":\"after\"}"))
        .await
        .unwrap();
    let (got_a, got_b) = (ra.await.unwrap(), rb.await.unwrap());

    let (s1, s2) = (m1.stats(), m2.stats());
    println!(
        "sent {} ok and {failed} failed while Redis was down (counted: {}); received {} on \
         instance one and {} on two; subscription gaps {} ms and {} ms",
        sent_ok.len(),
        s1.publish_failures,
        got_a.len(),
        got_b.len(),
        s1.subscription_gap_ms,
        s2.subscription_gap_ms,
    );
    assert!(failed > 0, "some sends met the outage");
    assert_eq!(s1.publish_failures, failed, "every failed send was counted");
    assert!(s1.subscription_gap_ms > 0 && s2.subscription_gap_ms > 0);
    for got in [&got_a, &got_b] {
        assert_eq!(got.last().map(String::as_str), Some("{\"n\":\"after\"}"));
        // Nothing arrived that was not published successfully.
        assert!(got.len() <= sent_ok.len() + 1);
        // What was published before the outage arrived.
        assert!(got.contains(&format!("{{\"n\":{}}}", sent_ok[0])));
    }
}
