//! The quick start as a process: `server` serves on a real socket, and SIGTERM lets the
//! request in flight finish before the process exits 0.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

async fn connect(port: u16) -> TcpStream {
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the quick start did not start listening on {port}");
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_complete_and_exits_zero() {
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut stream = connect(port).await;
    let body = r#"{"title": "finish me"}"#;
    let head = format!(
        "POST /tasks HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // The request is in flight: headers and half the body are sent, the handler waits.
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..8]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    stream.write_all(&body.as_bytes()[8..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("finish me"), "{response}");

    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

/// Reads `child`'s standard error line by line until `wanted` appears (or the time is up),
/// and returns that line.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    wanted: &str,
) -> Option<String> {
    let search = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(wanted) {
                return Some(line);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(30), search)
        .await
        .ok()
        .flatten()
}

fn quickstart(args: &[&str], envs: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_quickstart"));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The tests that run processes on RabbitMQ share the fixed `dlx`/`dlq`, which a
/// namespace deletes afterwards when it created them: they run one at a time.
static ON_RABBITMQ: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_server_and_a_worker_process_share_rabbitmq_and_redis() {
    use tokio::io::AsyncBufReadExt;

    let _one_at_a_time = ON_RABBITMQ.lock().await;

    let (Some(amqp), Some(redis)) = (jararaca_testing::rabbitmq(), jararaca_testing::redis())
    else {
        return;
    };
    let namespace = jararaca_testing::RabbitNamespace::new(&amqp, "quickstart_processes").await;
    let broker_url = namespace.broker_url();
    let env = [
        ("BROKER_URL", broker_url.as_str()),
        ("BACKEND_URL", redis.as_str()),
    ];

    let declared = quickstart(&["declare"], &env).output().await.unwrap();
    assert!(declared.status.success(), "declare failed");
    let declare_log = String::from_utf8_lossy(&declared.stderr).into_owned();

    // The handler chosen by the method name a user sees in the code.
    let mut worker = quickstart(&["worker", "--handlers", "on_task_created"], &env)
        .spawn()
        .unwrap();
    let mut worker_log = tokio::io::BufReader::new(worker.stderr.take().unwrap()).lines();
    let port = free_port();
    let mut server = quickstart(
        &["server", "--host", "127.0.0.1", "--port", &port.to_string()],
        &env,
    )
    .spawn()
    .unwrap();

    let mut stream = connect(port).await;
    // A title that would forge a second log line and colour the terminal if logged raw.
    let body = r#"{"title": "cross the broker\n2026-01-01T00:00:00Z ERROR forged \u001b[31mred"}"#;
    let request = format!(
        "POST /tasks HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let id = response
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    let handled = wait_for_line(&mut worker_log, &id).await;
    let handled_line = handled.clone().unwrap_or_default();

    for child in [&mut server, &mut worker] {
        let pid = child.id().unwrap().to_string();
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
    }
    let server_status = tokio::time::timeout(Duration::from_secs(30), server.wait()).await;
    let worker_status = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await;

    namespace
        .cleanup(
            quickstart::service()
                .get_capability::<jararaca::bus::MessageBus>()
                .expect("the quick start has a bus")
                .topology("tasks")
                .queues
                .into_iter()
                .map(|q| q.name),
        )
        .await;

    let worker_rest = lines_until(&mut worker_log, "\0").await;
    let server_log = match server.stderr.take() {
        Some(stderr) => lines_until(&mut tokio::io::BufReader::new(stderr).lines(), "\0").await,
        None => String::new(),
    };

    assert!(handled.is_some(), "the worker process logged the task {id}");
    assert!(
        handled_line.contains(r"cross the broker\n2026-01-01T00:00:00Z ERROR forged \u{1b}[31mred"),
        "the title is logged escaped, on its line: {handled_line}"
    );
    assert!(!handled_line.contains('\u{1b}'), "{handled_line:?}");
    assert!(
        !worker_rest.lines().any(|line| line.contains("forged")),
        "the title forged no log line: {worker_rest}"
    );
    assert!(server_status.expect("the server exits").unwrap().success());
    assert!(worker_status.expect("the worker exits").unwrap().success());
    // A clean run logs no error, from the service or the libraries under it.
    for (who, log) in [
        ("declare", declare_log.as_str()),
        ("worker", worker_rest.as_str()),
        ("server", server_log.as_str()),
    ] {
        assert!(
            !log.lines().any(|line| line.contains(" ERROR ")),
            "{who} logged an error on a clean run:\n{log}"
        );
    }
}

/// Collects `child`'s log lines until one contains `until`, the stream ends, or a moment
/// passes with nothing new.
async fn lines_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<impl tokio::io::AsyncRead + Unpin>>,
    until: &str,
) -> String {
    let mut seen = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(until) {
            break;
        }
    }
    seen
}

/// The Redis database of the beat test: the beat's keys (`beat_lock`,
/// `last_dispatch_time:<id>`) have the reference's plain names, so they are kept apart there.
const BEAT_REDIS_DB: u32 = 10;

#[tokio::test]
async fn a_beat_process_dispatches_the_purge_and_a_worker_process_runs_it() {
    use tokio::io::AsyncBufReadExt;

    let _one_at_a_time = ON_RABBITMQ.lock().await;

    let (Some(amqp), Some(redis)) = (jararaca_testing::rabbitmq(), jararaca_testing::redis())
    else {
        return;
    };
    let backend = format!("{}/{BEAT_REDIS_DB}", redis.trim_end_matches('/'));
    let client = redis::Client::open(backend.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    // Never dispatched before: the beat dispatches it at once.
    let _: () = redis::cmd("DEL")
        .arg("last_dispatch_time:tasks.TasksJobs.purge_done_tasks")
        .query_async(&mut connection)
        .await
        .unwrap();
    let namespace = jararaca_testing::RabbitNamespace::new(&amqp, "quickstart_beat").await;
    let broker_url = namespace.broker_url();
    let env = [
        ("BROKER_URL", broker_url.as_str()),
        ("BACKEND_URL", backend.as_str()),
    ];
    let declared = quickstart(&["declare"], &env).status().await.unwrap();
    assert!(declared.success(), "declare failed");

    let mut worker = quickstart(&["worker"], &env).spawn().unwrap();
    let mut worker_log = tokio::io::BufReader::new(worker.stderr.take().unwrap()).lines();
    let mut beat = quickstart(&["beat", "--interval", "1"], &env)
        .spawn()
        .unwrap();

    let purged = wait_for_line(&mut worker_log, "purged the tasks done more than a day ago")
        .await
        .is_some();

    for child in [&mut beat, &mut worker] {
        let pid = child.id().unwrap().to_string();
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
    }
    let beat_status = tokio::time::timeout(Duration::from_secs(30), beat.wait()).await;
    let worker_status = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await;
    let _: () = redis::cmd("DEL")
        .arg("last_dispatch_time:tasks.TasksJobs.purge_done_tasks")
        .query_async(&mut connection)
        .await
        .unwrap();
    namespace
        .cleanup(
            quickstart::service()
                .get_capability::<jararaca::bus::MessageBus>()
                .expect("the quick start has a bus")
                .topology("tasks")
                .queues
                .into_iter()
                .map(|q| q.name),
        )
        .await;

    assert!(purged, "the worker ran the purge the beat dispatched");
    assert!(beat_status.expect("the beat exits").unwrap().success());
    assert!(worker_status.expect("the worker exits").unwrap().success());
}
