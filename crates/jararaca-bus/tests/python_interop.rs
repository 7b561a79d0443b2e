//! Python `jararaca` 0.5.13 and this crate on one RabbitMQ and one Redis: a message a Python
//! service publishes is handled by a Rust worker, and a message Rust publishes is handled by
//! a Python worker, with the same body, headers, message id and topology on both sides.
//!
//! The Python side runs the real package, installed into a virtual environment under the
//! target directory by `interop/setup.sh` (once; later runs reuse it). Without python3 or
//! the package index the tests skip with the reason; with `JARARACA_REQUIRE_SERVICES=1`
//! they fail instead. Every wait is bounded, every Python process is killed if a test
//! fails, and each test deletes the exchange and queues it made.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use jararaca_bus::headers::RETRY_COUNT;
use jararaca_bus::{
    AmqpPublisher, BrokerUrl, Bus, DeadLetterNames, DelayedMessage, DelayedStore, Delivery,
    Handler, HeaderValue, Headers, Message, MessageKind, Outgoing, PayloadPolicy, QueueSpec,
    RedisStore, TimePolicy, Topology, Worker, declare, handler_queue_name,
    provide_implicit_headers, typed,
};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The message of `interop/interop_messages.py`, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer_name: String,
    amount_cents: i64,
    tags: Vec<String>,
    note: Option<String>,
    placed_at: String,
}

impl Message for OrderPlaced {
    const TOPIC: &'static str = "interop.order.placed";
    const KIND: MessageKind = MessageKind::Task;
}

fn order(n: u32) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a{n:02x}"),
        customer_name: "Zoë \"Z\" O'Neil".to_string(),
        amount_cents: 1299 + i64::from(n),
        tags: vec!["gift".to_string(), "ünïcode".to_string()],
        note: n.is_multiple_of(2).then(|| format!("note {n}")),
        placed_at: "2026-01-02T03:04:05Z".to_string(),
    }
}

const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// The virtual environment with Python jararaca, built once per test process (and reused
/// across processes: `setup.sh` keeps a marker and a lock).
fn venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-jararaca-0.5.13");
        let log = venv.with_extension("setup.log");
        std::fs::create_dir_all(Path::new(env!("CARGO_TARGET_TMPDIR")))
            .map_err(|e| format!("cannot create the target tmp dir: {e}"))?;
        let mut command = Command::new("bash");
        command.arg(interop_dir().join("setup.sh")).arg(&venv);
        let status = run_logged(&mut command, &log, SETUP_TIMEOUT)?;
        if status.success() {
            Ok(venv)
        } else {
            Err(format!(
                "installing Python jararaca 0.5.13 failed ({status}): {}",
                tail(&log)
            ))
        }
    })
    .clone()
}

/// The Python side, or `None` (after printing why) when it cannot be installed here.
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

/// Runs `command` with its output in `log`, killing it after `timeout`.
fn run_logged(command: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus, String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{:?} did not finish within {timeout:?}: {}",
                    command.get_program(),
                    tail(log)
                ));
            }
            Err(e) => return Err(format!("waiting for {:?}: {e}", command.get_program())),
        }
    }
}

/// The last lines of a log, for failure messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A command running a program of the virtual environment in `dir`, with the interop
/// scripts importable and no bytecode written next to them.
fn python_command(venv: &Path, program: &str, dir: &Path) -> Command {
    let mut command = Command::new(venv.join("bin").join(program));
    let path = std::env::join_paths([dir.to_path_buf(), interop_dir()])
        .expect("the paths contain no separator");
    command
        .current_dir(dir)
        .env("PYTHONPATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("BROKER_URL")
        .env_remove("BACKEND_URL");
    command
}

/// A running Python process, killed when dropped (a failing test leaves none behind).
struct PythonProcess {
    child: Child,
    log: PathBuf,
}

impl PythonProcess {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the Python worker");
        Self { child, log }
    }

    fn log(&self) -> String {
        tail(&self.log)
    }

    /// Sends SIGTERM and waits for the process to exit.
    async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM could not be sent");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the Python worker did not stop within {timeout:?} of SIGTERM: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A channel of its own for one broker operation (a failed passive declare closes it).
async fn with_channel<T>(url: &BrokerUrl, op: impl AsyncFnOnce(&lapin::Channel) -> T) -> T {
    let connection =
        lapin::Connection::connect(&url.connection_url, lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("open a channel");
    let result = op(&channel).await;
    let _ = connection.close(200, "done".into()).await;
    result
}

/// The message and consumer counts of a queue, or `None` if it does not exist.
async fn queue_counts(url: &BrokerUrl, queue: &str) -> Option<(u32, u32)> {
    with_channel(url, async |channel| {
        channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()
            .map(|q| (q.message_count(), q.consumer_count()))
    })
    .await
}

async fn exchange_exists(url: &BrokerUrl, exchange: &str) -> bool {
    with_channel(url, async |channel| {
        channel
            .exchange_declare(
                ShortString::from(exchange),
                lapin::ExchangeKind::Direct,
                lapin::options::ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .is_ok()
    })
    .await
}

/// Deletes queues, then exchanges. `only_if_unused` queues and exchanges (the shared
/// `dlq`/`dlx`) go only while empty and unbound, so nothing another service relies on is lost.
async fn delete(url: &BrokerUrl, queues: &[(&str, bool)], exchanges: &[(&str, bool)]) {
    with_channel(url, async |channel| {
        for (queue, only_if_unused) in queues {
            let _ = channel
                .queue_delete(
                    ShortString::from(*queue),
                    QueueDeleteOptions {
                        if_unused: *only_if_unused,
                        if_empty: *only_if_unused,
                        ..QueueDeleteOptions::default()
                    },
                )
                .await;
        }
        for (exchange, only_if_unused) in exchanges {
            let _ = channel
                .exchange_delete(
                    ShortString::from(*exchange),
                    ExchangeDeleteOptions {
                        if_unused: *only_if_unused,
                        ..ExchangeDeleteOptions::default()
                    },
                )
                .await;
        }
    })
    .await;
}

/// Runs `body`, then `cleanup` even if `body` panicked, then re-raises the panic.
async fn with_cleanup(body: impl Future<Output = ()>, cleanup: impl Future<Output = ()>) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// What the Rust handler saw of one delivery.
#[derive(Debug)]
struct Seen {
    order: OrderPlaced,
    body: Vec<u8>,
    headers: Headers,
    message_id: Option<String>,
    routing_key: String,
    retry_count: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_publisher_reaches_a_rust_worker() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let Some(redis) = jararaca_testing::redis() else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let name = jararaca_testing::unique_name("interop_rs");
    let url = BrokerUrl::parse(&format!("{amqp}?exchange={name}&prefetch_count=4"))
        .unwrap()
        .dead_letter(DeadLetterNames::prefixed(&name));
    let queue = handler_queue_name(OrderPlaced::TOPIC, &name, "RustOrders.on_order_placed");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
    std::fs::create_dir_all(&dir).unwrap();

    let body = async {
        declare(
            &url,
            &Topology::new().queue(QueueSpec::handler(&queue, OrderPlaced::TOPIC)),
            false,
        )
        .await
        .unwrap();

        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let handler = typed(move |order: OrderPlaced, delivery: Delivery| {
            let seen_tx = seen_tx.clone();
            async move {
                seen_tx.send(Seen {
                    order,
                    body: delivery.body().to_vec(),
                    headers: delivery.headers().clone(),
                    message_id: delivery.message_id().map(str::to_string),
                    routing_key: delivery.routing_key().to_string(),
                    retry_count: delivery.retry_count(),
                })?;
                Ok(())
            }
        });
        let store = RedisStore::connect(&redis)
            .await
            .unwrap()
            .with_prefix(format!("{name}:"));
        let worker = Worker::amqp(url.clone())
            .handler(Handler::new::<OrderPlaced, _>(&queue, handler))
            .store(Arc::new(store));
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));

        // Two messages from Python: the second as a worker publishes it while handling a
        // retried message, so it carries primitive headers of every type.
        let implicit = [
            serde_json::json!({
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "baggage": "flow.id=0af7651916cd43dd8448eb211c80319c",
            }),
            serde_json::json!({
                "x-tenant": "acme",
                "x-retry-count": 1,
                "x-flag": true,
                "x-ratio": 0.5,
                "x-big": 5_000_000_000_i64,
            }),
        ];
        for (n, headers) in implicit.iter().enumerate() {
            let payload = serde_json::to_string(&order(n as u32)).unwrap();
            let mut command = python_command(&venv, "python", &dir);
            command
                .arg(interop_dir().join("publish.py"))
                .arg(&amqp)
                .arg(&name)
                .arg(payload)
                .arg(headers.to_string());
            let log = dir.join(format!("publish-{n}.log"));
            let status = tokio::task::spawn_blocking(move || {
                run_logged(&mut command, &log, STEP_TIMEOUT).map(|s| (s, tail(&log)))
            })
            .await
            .unwrap();
            let (status, output) = status.unwrap_or_else(|e| panic!("{e}"));
            assert!(status.success(), "publish.py failed ({status}): {output}");
        }

        let mut seen = Vec::new();
        for n in 0..2 {
            let next = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
                .await
                .unwrap_or_else(|_| panic!("the Rust worker got {n} of 2 messages in 30 s"))
                .expect("the handler is alive");
            seen.push(next);
        }
        seen.sort_by_key(|s| s.order.amount_cents);
        for (n, seen) in seen.iter().enumerate() {
            let expected = order(n as u32);
            assert_eq!(seen.order, expected);
            // pydantic's compact JSON and serde_json's are the same bytes.
            assert_eq!(
                String::from_utf8_lossy(&seen.body),
                serde_json::to_string(&expected).unwrap()
            );
            assert_eq!(seen.routing_key, "interop.order.placed.#");
            let id = seen
                .message_id
                .as_deref()
                .expect("aio-pika sets a message id");
            assert!(
                id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
        }
        let text = |s: &str| HeaderValue::from(s);
        assert_eq!(
            seen[0].headers,
            Headers::from([
                (
                    "traceparent".to_string(),
                    text("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                ),
                (
                    "baggage".to_string(),
                    text("flow.id=0af7651916cd43dd8448eb211c80319c")
                ),
            ])
        );
        assert_eq!(seen[0].retry_count, 0);
        assert_eq!(
            seen[1].headers,
            Headers::from([
                ("x-tenant".to_string(), text("acme")),
                (RETRY_COUNT.to_string(), HeaderValue::Int(1)),
                ("x-flag".to_string(), HeaderValue::Bool(true)),
                ("x-ratio".to_string(), HeaderValue::Float(0.5)),
                ("x-big".to_string(), HeaderValue::Int(5_000_000_000)),
            ])
        );
        assert_eq!(seen[1].retry_count, 1);

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .expect("the worker stops within 30 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            queue_counts(&url, &queue).await,
            Some((0, 0)),
            "both messages were acknowledged"
        );
    };
    let dl = url.dead_letter.clone();
    with_cleanup(body, async {
        delete(
            &url,
            &[(&queue, false), (&dl.queue, false)],
            &[(&name, false), (&dl.exchange, false)],
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// One line the Python worker wrote.
#[derive(Debug, Deserialize)]
struct Received {
    payload: OrderPlaced,
    headers: serde_json::Map<String, serde_json::Value>,
    message_id: Option<String>,
    processing_attempt: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_publisher_reaches_a_python_worker() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let Some(redis) = jararaca_testing::redis() else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    // The module name is part of the Python handler's queue name, so a unique module makes
    // a unique queue.
    let name = jararaca_testing::unique_name("interop_py");
    let broker_url = format!("{amqp}?exchange={name}&prefetch_count=4");
    // The Python worker needs the reference's shared `dlx`/`dlq`.
    let url = BrokerUrl::parse(&broker_url).unwrap();
    let dl = url.dead_letter.clone();
    let queue = handler_queue_name(
        OrderPlaced::TOPIC,
        &name,
        "InteropController.on_order_placed",
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        interop_dir().join("interop_app.py"),
        dir.join(format!("{name}.py")),
    )
    .unwrap();
    let out = dir.join("received.jsonl");
    let dlx_existed = exchange_exists(&url, &dl.exchange).await;
    let dlq_existed = queue_counts(&url, &dl.queue).await.is_some();

    let body = async {
        // Python declares its topology; declaring the same from Rust must find every
        // object with the arguments it would give it (a difference is a conflict).
        let mut command = python_command(&venv, "jararaca", &dir);
        command
            .args(["declare", &format!("{name}:app"), "--broker-url"])
            .arg(&broker_url);
        let log = dir.join("declare.log");
        let declared = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || run_logged(&mut command, &log, STEP_TIMEOUT))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            declared.success() && !output.contains("Error"),
            "jararaca declare failed ({declared}): {output}"
        );
        assert!(
            output.contains(&format!("Declared message handler queue: {queue}")),
            "{output}"
        );
        let report = declare(
            &url,
            &Topology::new().queue(QueueSpec::handler(&queue, OrderPlaced::TOPIC)),
            false,
        )
        .await
        .unwrap();
        assert!(report.declared.contains(&queue) && report.recreated.is_empty());

        let mut command = python_command(&venv, "jararaca", &dir);
        command
            .args(["worker", &format!("{name}:app"), "--broker-url"])
            .arg(&broker_url)
            .args(["--backend-url", &redis, "--src-dir", "."])
            .env("INTEROP_OUT", &out);
        let mut worker = PythonProcess::spawn(command, dir.join("worker.log"));
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !matches!(queue_counts(&url, &queue).await, Some((_, n)) if n > 0) {
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("the Python worker exited ({status}): {}", worker.log());
            }
            assert!(
                Instant::now() < deadline,
                "the Python worker did not consume {queue} within {STEP_TIMEOUT:?}: {}",
                worker.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // One message through `Bus`, published while handling a traced message; one built
        // by hand with the headers of a retried message.
        let publisher = AmqpPublisher::connect(&url).await.unwrap();
        let bus = Bus::new(publisher);
        let trace = Headers::from([
            (
                "traceparent".to_string(),
                HeaderValue::from("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            ("baggage".to_string(), HeaderValue::from("flow.id=4bf92f")),
        ]);
        provide_implicit_headers(trace, bus.publish(&order(0)))
            .await
            .unwrap();
        let mut retried = Outgoing::message(&order(1)).unwrap();
        retried
            .headers
            .insert(RETRY_COUNT.to_string(), HeaderValue::Int(2));
        retried
            .headers
            .insert("x-tenant".to_string(), HeaderValue::from("acme"));
        retried
            .headers
            .insert("x-flag".to_string(), HeaderValue::Bool(false));
        retried
            .headers
            .insert("x-ratio".to_string(), HeaderValue::Float(0.25));
        let retried_id = retried.message_id.clone().unwrap();
        bus.publisher().publish(retried).await.unwrap();

        let deadline = Instant::now() + Duration::from_secs(30);
        let lines = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= 2 {
                break lines;
            }
            assert!(
                Instant::now() < deadline,
                "the Python worker handled {} of 2 messages in 30 s: {}",
                lines.len(),
                worker.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut received: Vec<Received> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        received.sort_by_key(|r| r.payload.amount_cents);
        assert_eq!(received.len(), 2, "each message is handled once: {lines:?}");
        assert_eq!(received[0].payload, order(0));
        assert_eq!(received[1].payload, order(1));

        assert_eq!(received[0].processing_attempt, 1);
        assert_eq!(
            received[0].headers,
            serde_json::json!({
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "baggage": "flow.id=4bf92f",
            })
            .as_object()
            .unwrap()
            .clone()
        );
        let id = received[0].message_id.as_deref().unwrap_or_default();
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        // Python reads the Rust integer header as an int: this is its third attempt.
        assert_eq!(received[1].processing_attempt, 3);
        assert_eq!(received[1].message_id.as_deref(), Some(retried_id.as_str()));
        assert_eq!(
            received[1].headers,
            serde_json::json!({
                "x-retry-count": 2,
                "x-tenant": "acme",
                "x-flag": false,
                "x-ratio": 0.25,
            })
            .as_object()
            .unwrap()
            .clone()
        );

        let status = worker.terminate(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "the Python worker exits cleanly on SIGTERM ({status}): {}",
            worker.log()
        );
        assert_eq!(
            queue_counts(&url, &queue).await,
            Some((0, 0)),
            "the Python worker acknowledged both messages"
        );
    };
    with_cleanup(body, async {
        delete(&url, &[(&queue, false)], &[(&name, false)]).await;
        // The shared dead-letter objects go only if this test made them, and only while
        // nothing uses them; `dlx` after `dlq`, which is bound to it.
        if !dlq_existed {
            delete(&url, &[(&dl.queue, true)], &[]).await;
        }
        if !dlx_existed {
            delete(&url, &[], &[(&dl.exchange, true)]).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// The Redis database the beat test keeps its delayed messages in: a Python beat pumps the
/// plain `delayed_messages` key, so the test keeps it apart from other keys that way.
const BEAT_REDIS_DB: u32 = 11;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_beat_pumps_delayed_messages_rust_stored() {
    let Some(amqp) = jararaca_testing::rabbitmq() else {
        return;
    };
    let Some(redis) = jararaca_testing::redis() else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let name = jararaca_testing::unique_name("interop_beat");
    let broker_url = format!("{amqp}?exchange={name}&prefetch_count=4");
    let url = BrokerUrl::parse(&broker_url)
        .unwrap()
        .dead_letter(DeadLetterNames::prefixed(&name));
    let backend = format!("{}/{BEAT_REDIS_DB}", redis.trim_end_matches('/'));
    let queue = handler_queue_name(OrderPlaced::TOPIC, &name, "RustOrders.on_order_placed");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        interop_dir().join("interop_app.py"),
        dir.join(format!("{name}.py")),
    )
    .unwrap();
    let store = RedisStore::connect(&backend).await.unwrap();
    let ids = [format!("{name}-retry"), format!("{name}-delayed")];

    let body = async {
        declare(
            &url,
            &Topology::new().queue(QueueSpec::handler(&queue, OrderPlaced::TOPIC)),
            false,
        )
        .await
        .unwrap();
        // A handler retry as the Rust worker stores it (to one queue, with retry headers),
        // and a delayed message that also carries a field of this crate's own.
        let due = std::time::SystemTime::now() - Duration::from_secs(1);
        let mut retry = DelayedMessage::of(&order(3), due).unwrap().idempotent(
            &ids[0],
            PayloadPolicy::Replace,
            TimePolicy::Replace,
        );
        retry.target_queue = Some(queue.clone());
        retry
            .headers
            .insert(RETRY_COUNT.to_string(), HeaderValue::Int(1));
        retry.headers.insert(
            "x-last-error".to_string(),
            HeaderValue::from("it failed once"),
        );
        let mut delayed = DelayedMessage::of(&order(4), due).unwrap().idempotent(
            &ids[1],
            PayloadPolicy::Replace,
            TimePolicy::Replace,
        );
        delayed.unroutable_attempts = Some(1);
        let expected_ids = [retry.message_id.clone(), delayed.message_id.clone()];
        store.enqueue(retry).await.unwrap();
        store.enqueue(delayed).await.unwrap();

        let mut command = python_command(&venv, "jararaca", &dir);
        command
            .args(["beat", &format!("{name}:app"), "--broker-url"])
            .arg(&broker_url)
            .args(["--backend-url", &backend, "--src-dir", "."]);
        let mut beat = PythonProcess::spawn(command, dir.join("beat.log"));
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !matches!(queue_counts(&url, &queue).await, Some((2, _))) {
            if let Ok(Some(status)) = beat.child.try_wait() {
                panic!("the Python beat exited ({status}): {}", beat.log());
            }
            assert!(
                Instant::now() < deadline,
                "the Python beat did not pump both messages within {STEP_TIMEOUT:?}: {:?}, {}",
                queue_counts(&url, &queue).await,
                beat.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        beat.terminate(Duration::from_secs(30)).await;

        let mut got = with_channel(&url, async |channel| {
            let mut got = Vec::new();
            while let Some(message) = channel
                .basic_get(
                    ShortString::from(queue.as_str()),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                got.push(message.delivery);
            }
            got
        })
        .await;
        got.sort_by_key(|d| d.data.clone());
        assert_eq!(got.len(), 2);
        for (delivery, (n, id)) in got
            .iter()
            .zip([(3, &expected_ids[0]), (4, &expected_ids[1])])
        {
            // Python publishes the stored payload as the body, byte for byte.
            assert_eq!(
                String::from_utf8_lossy(&delivery.data),
                serde_json::to_string(&order(n)).unwrap()
            );
            assert_eq!(
                delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string()),
                id.clone()
            );
        }
        // The retry went straight to its queue, with its headers.
        assert_eq!(got[0].exchange.as_str(), "");
        let headers = got[0].properties.headers().clone().unwrap_or_default();
        let header = |name: &str| headers.inner().get(name).cloned();
        assert!(
            matches!(
                header(RETRY_COUNT),
                Some(lapin::types::AMQPValue::ShortShortInt(1))
            ),
            "{headers:?}"
        );
        assert!(
            matches!(header("x-last-error"), Some(lapin::types::AMQPValue::LongString(s)) if s.as_bytes() == b"it failed once"),
            "{headers:?}"
        );
        assert_eq!(got[1].routing_key.as_str(), "interop.order.placed.#");
    };
    let dl = url.dead_letter.clone();
    with_cleanup(body, async {
        delete(
            &url,
            &[(&queue, false), (&dl.queue, false)],
            &[(&name, false), (&dl.exchange, false)],
        )
        .await;
        if let Ok(client) = redis::Client::open(backend.as_str())
            && let Ok(mut connection) = client.get_multiplexed_async_connection().await
        {
            for id in &ids {
                let _: Result<(), _> = redis::pipe()
                    .cmd("ZREM")
                    .arg(store.delayed_messages_key())
                    .arg(id)
                    .cmd("ZREM")
                    .arg(store.in_flight_key())
                    .arg(id)
                    .cmd("DEL")
                    .arg(store.metadata_key(id))
                    .query_async(&mut connection)
                    .await;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
