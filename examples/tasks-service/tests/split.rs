//! The split deployment (`scripts/split-deployment.sh`): two servers, two workers and a beat
//! on PostgreSQL, RabbitMQ and Redis, one user's changes crossing between the servers
//! through the broker and Redis, and a stop that leaves no process, queue, key or schema.

mod common;

use std::time::Duration;

use common::split::{Split, alive};
use futures_util::StreamExt;
use http::StatusCode;
use jararaca::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

/// The Redis database of this test's deployment (the browser test uses 8).
const REDIS_DB: u32 = 9;

/// One JSON request over HTTP/1.1 on a fresh connection (the test needs no HTTP client
/// crate for so little).
async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = StatusCode::from_bytes(&response[9..12]).unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

async fn post(url: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    send("POST", url, token, Some(body)).await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_of(socket: &mut Socket, id: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(frame))) => {
                    let frame: Value = serde_json::from_slice(&frame).unwrap();
                    if frame["MESSAGE_ID"] == id {
                        return frame["message"].clone();
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a {id} within 40 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_two_workers_and_a_beat_share_one_users_changes_and_leave_nothing() {
    // The notifier the workers tell, served by this test.
    let notifier = notifier::service().build().await.unwrap();
    let inbox = notifier.container().get::<notifier::Inbox>().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notifier_url = format!("http://{}", listener.local_addr().unwrap());
    let notifier_router = notifier.router();
    tokio::spawn(async move { axum::serve(listener, notifier_router).await });

    let Some(mut split) = Split::start("tasks_split_test", REDIS_DB, "skip", Some(&notifier_url))
    else {
        return;
    };
    let pids = split.pids();
    assert_eq!(
        pids.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["server1", "server2", "worker1", "worker2", "beat"]
    );
    let worker_pids: Vec<String> = pids
        .iter()
        .filter(|(n, _)| n.starts_with("worker"))
        .map(|(_, p)| format!("worker pid {p}"))
        .collect();

    // The handler queues exist in the deployment's own virtual host.
    let topology = tasks_service::service_on(tasks_service::Deployment::embedded())
        .get_capability::<jararaca::bus::MessageBus>()
        .expect("the service has a bus")
        .topology("tasks");
    let queues: Vec<String> = topology.queues.iter().map(|q| q.name.clone()).collect();
    assert!(queues.len() >= 3, "{queues:?}");
    {
        let connection = lapin::Connection::connect(&split.amqp_url(), Default::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        for queue in &queues {
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.as_str().into(), passive, Default::default())
                .await
                .unwrap_or_else(|e| panic!("queue {queue} is missing: {e}"));
        }
        let _ = connection.close(0, "checked".into()).await;
    }

    let (status, pair) = post(
        &format!("{}/auth/login", split.url(0)),
        None,
        json!({"username": "alice", "password": "alice-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let ws = |i: usize, token: &str| {
        format!(
            "ws://127.0.0.1:{}/ws/tasks?access_token={token}",
            split.ports[i]
        )
    };
    let (mut on_server2, _) = tokio_tungstenite::connect_async(ws(1, &token))
        .await
        .unwrap();
    // The connection joins its room just after the upgrade is answered.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Created through server 1: pushed to server 2's client by server 1 (over Redis) and by
    // whichever worker handled task.created (over RabbitMQ, then Redis).
    let (status, task) = post(
        &format!("{}/tasks", split.url(0)),
        Some(&token),
        json!({"title": "cross the fleet"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let changed = next_of(&mut on_server2, "task.changed").await;
    assert_eq!(
        (&changed["change"], &changed["task"]),
        (&json!("created"), &task)
    );
    let notice = next_of(&mut on_server2, "task.notice").await;
    assert_eq!(
        (&notice["task_id"], &notice["event"]),
        (&task["id"], &json!("task.created"))
    );
    let handler = notice["handled_by"].as_str().unwrap().to_owned();
    assert!(
        worker_pids.contains(&handler),
        "{handler} is not one of {worker_pids:?}"
    );
    println!("task.created handled by {handler}, pushed to server 2's client");

    // Completed through server 2.
    let id = task["id"].as_str().unwrap();
    let (status, done) = post(
        &format!("{}/tasks/{id}/complete", split.url(1)),
        Some(&token),
        json!(null),
    )
    .await;
    assert_eq!(
        (status, &done["done"]),
        (StatusCode::OK, &json!(true)),
        "{done}"
    );
    let changed = next_of(&mut on_server2, "task.changed").await;
    assert_eq!(changed["change"], "completed");
    let notice = next_of(&mut on_server2, "task.notice").await;
    assert_eq!(notice["event"], "task.completed");

    // The beat dispatched the summary, a worker ran it.
    let summary = next_of(&mut on_server2, "tasks.summary").await;
    assert_eq!((&summary["open"], &summary["done"]), (&json!(0), &json!(1)));
    println!("tasks.summary from the beat: {summary}");

    // A logout on server 2 holds on server 1 (the revoked list is in Redis).
    let (status, _) = post(
        &format!("{}/auth/logout", split.url(1)),
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(
        "GET",
        &format!("{}/tasks", split.url(0)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the token was revoked"))
    );
    match tokio_tungstenite::connect_async(ws(0, &token)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("a revoked token connected: {other:?}"),
    }
    println!("the logged-out token is refused by the other server, over HTTP and WebSocket");
    drop(on_server2);

    // The workers told the notifier through its REST client, once per event.
    let told: Vec<String> = inbox.notifications().into_iter().map(|n| n.key).collect();
    assert_eq!(
        told,
        [format!("task-{id}-created"), format!("task-{id}-completed")]
    );
    println!("the notifier was told: {told:?}");

    let workers_handled: usize = ["worker1", "worker2"]
        .iter()
        .map(|w| split.log(w).matches("handled task.").count())
        .sum();
    assert_eq!(workers_handled, 2, "each event handled once");

    // Stop: nothing left behind.
    assert!(
        split.stop(),
        "split-deployment.sh stop reported what it left"
    );
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs");
    }
    let vhost_gone = lapin::Connection::connect(&split.amqp_url(), Default::default()).await;
    assert!(
        vhost_gone.is_err(),
        "the virtual host {} is still there",
        split.name
    );
    let redis = redis::Client::open(format!("{}/{REDIS_DB}", split.redis)).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys, 0, "keys left in Redis db {REDIS_DB}");
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{}:*", split.name))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(channels.is_empty(), "{channels:?}");
    let pg = sqlx::PgPool::connect(&split.postgres).await.unwrap();
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&split.name)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(schemas, 0, "the schema {} is still there", split.name);
    println!(
        "stopped: {} processes gone, vhost {} gone ({} queues with it), Redis db {REDIS_DB} empty, schema gone",
        pids.len(),
        split.name,
        queues.len()
    );
}
