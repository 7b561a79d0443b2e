//! Fault tests: the quick start's `server` and `worker` run as separate processes on real
//! PostgreSQL, RabbitMQ and Redis under a steady stream of `POST /tasks`, and a fault is
//! injected: the worker killed with SIGKILL, RabbitMQ restarted, Redis restarted, the server
//! killed repeatedly, the delayed-message pump killed mid-batch. Afterwards every task
//! committed in the database must have been handled at least once (the handler records each
//! task it handled in `handled_tasks`), nothing may be in the dead-letter queue, and both
//! processes must have recovered by themselves.
//!
//! They restart shared services, so they are ignored by `cargo test` and run alone:
//!
//! ```text
//! cargo test -p quickstart --test faults -- --ignored --test-threads=1 --nocapture
//! ```
//!
//! Each scenario has its own PostgreSQL database, its own RabbitMQ virtual host (so the
//! `dlq` it checks is its own) and its own Redis database number, and removes them after.
//! The processes' logs are kept (and their last lines printed) when a scenario fails, and
//! always with `FAULTS_KEEP_LOGS=1`.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jararaca::bus::{DelayedMessage, DelayedStore, MessageBus, RedisStore};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use quickstart::TaskCreated;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

/// The service name the quick start declares its queues under.
const SERVICE: &str = "tasks";
/// The pause between two `POST /tasks` of the load.
const LOAD_INTERVAL: Duration = Duration::from_millis(20);
/// How long a scenario waits for every committed task to be handled, at most.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// Runs a command to completion; panics with its output if it fails.
async fn run_command(program: &str, args: &[&str]) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `check` holds, polling every 100 ms; false if `within` passed first.
async fn eventually<F: Future<Output = bool>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Brings every service back when dropped, even when the scenario panics: `rabbitmqctl
/// start_app` (a stopped app keeps its node running, so `services.sh` would not restart it),
/// then `scripts/services.sh`.
struct RestoreServices;

impl Drop for RestoreServices {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        restore_services();
    }
}

fn restore_services() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("faults: scripts/services.sh could not bring every service back: {status:?}");
    }
}

/// One HTTP/1.1 request with `connection: close`: the status and the whole response.
async fn http(port: u16, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not an HTTP response: {response:?}")))?;
        Ok((status, response))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| io::Error::other("timed out"))?
}

/// What the load sent and what the server answered.
#[derive(Debug, Default)]
struct LoadStats {
    posts: u64,
    /// The ids of the tasks answered with 201.
    created: Vec<Uuid>,
    /// No connection, or no complete response (the server was down or killed).
    unanswered: u64,
    /// Answered with another status.
    refused: u64,
}

/// `POST /tasks` every [`LOAD_INTERVAL`] until stopped.
struct Load {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<LoadStats>,
}

impl Load {
    fn start(port: u16) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut stats = LoadStats::default();
            while !*stopped.borrow() {
                stats.posts += 1;
                let body = format!(r#"{{"title": "load {}"}}"#, stats.posts);
                match http(port, "POST", "/tasks", &body).await {
                    Ok((201, response)) => {
                        let id = response
                            .split("\"id\":\"")
                            .nth(1)
                            .and_then(|rest| rest.split('"').next())
                            .and_then(|id| id.parse().ok())
                            .unwrap_or_else(|| panic!("a 201 without a task id: {response}"));
                        stats.created.push(id);
                    }
                    Ok(_) => stats.refused += 1,
                    Err(_) => stats.unanswered += 1,
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(LOAD_INTERVAL) => {}
                }
            }
            stats
        });
        Self { stop, task }
    }

    async fn stop(self) -> LoadStats {
        let _ = self.stop.send(true);
        self.task.await.expect("the load task")
    }
}

/// A `server` or `worker` process of the quick start.
struct Process {
    role: &'static str,
    child: tokio::process::Child,
}

impl Process {
    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, and waits until it is gone.
    async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    /// SIGTERM; the process must finish its work and exit 0.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("a running process").to_string();
        run_command("kill", &["-TERM", &pid]).await;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the {} did not exit within 30 s of SIGTERM", self.role))
            .expect("its exit status");
        assert!(status.success(), "the {} exited with {status:?}", self.role);
    }
}

/// What the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Task rows: the committed tasks.
    committed: i64,
    /// Distinct task ids the handler recorded.
    handled: i64,
    /// Every handling it recorded (at least once: more than `handled` after redeliveries).
    handlings: i64,
    /// Committed tasks with no handling recorded.
    unhandled: i64,
    /// Messages in the outbox not yet relayed.
    outbox: i64,
}

/// A scenario's own database, virtual host and Redis database, and its processes' settings.
struct Scenario {
    name: &'static str,
    started: Instant,
    admin: sqlx::PgPool,
    pool: sqlx::PgPool,
    database: String,
    database_url: String,
    vhost: String,
    amqp_url: String,
    broker_url: String,
    backend_url: String,
    port: u16,
    logs: PathBuf,
    handler_queue: String,
}

impl Scenario {
    async fn new(name: &'static str, redis_db: u8) -> Option<Self> {
        let (Some(postgres), Some(amqp), Some(redis)) = (
            jararaca_testing::postgres(),
            jararaca_testing::rabbitmq(),
            jararaca_testing::redis(),
        ) else {
            return None;
        };
        let started = Instant::now();
        let unique = jararaca_testing::unique_name(&format!("faults_{name}"));

        let admin = sqlx::PgPool::connect(&postgres).await.expect("PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}")))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        let (base, _) = postgres.split_once('?').unwrap_or((&postgres, ""));
        let (server, _) = base
            .rsplit_once('/')
            .expect("a database in the PostgreSQL URL");
        let database_url = format!("{server}/{unique}");
        let pool = sqlx::PgPool::connect(&database_url)
            .await
            .expect("the scenario's database");

        run_command("rabbitmqctl", &["add_vhost", &unique]).await;
        run_command(
            "rabbitmqctl",
            &["set_permissions", "-p", &unique, "guest", ".*", ".*", ".*"],
        )
        .await;
        let (authority, _) = amqp
            .rsplit_once('/')
            .expect("a virtual host in the AMQP URL");
        let amqp_url = format!("{authority}/{unique}");
        let broker_url = format!("{amqp_url}?exchange={SERVICE}&prefetch_count=16");

        let backend_url = format!("{}/{redis_db}", redis.trim_end_matches('/'));
        flush_redis(&backend_url).await;

        let logs = std::env::temp_dir().join(&unique);
        std::fs::create_dir_all(&logs).expect("a log directory");
        let handler_queue = quickstart::service()
            .get_capability::<MessageBus>()
            .expect("the quick start has a bus")
            .topology(SERVICE)
            .queues
            .into_iter()
            .map(|q| q.name)
            .next()
            .expect("the quick start has a handler queue");

        let scenario = Self {
            name,
            started,
            admin,
            pool,
            database: unique.clone(),
            database_url,
            vhost: unique,
            amqp_url,
            broker_url,
            backend_url,
            port: free_port(),
            logs,
            handler_queue,
        };
        let declared = scenario
            .command("declare")
            .status()
            .await
            .expect("quickstart declare");
        assert!(declared.success(), "quickstart declare failed");
        Some(scenario)
    }

    fn command(&self, role: &str) -> tokio::process::Command {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{role}.log")))
            .expect("a log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_quickstart"));
        command.arg(role);
        if role == "server" {
            command.args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
        }
        command
            .env("DATABASE_URL", &self.database_url)
            .env("BROKER_URL", &self.broker_url)
            .env("BACKEND_URL", &self.backend_url)
            .env("MAX_TASKS", "1000000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        command
    }

    fn spawn(&self, role: &'static str) -> Process {
        let child = self
            .command(role)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {role}: {e}"));
        Process { role, child }
    }

    /// Starts the server and waits until it is ready (database, RabbitMQ and Redis checked).
    async fn start_server(&self) -> Process {
        let server = self.spawn("server");
        assert!(
            self.server_ready(Duration::from_secs(30)).await,
            "{}: the server did not become ready",
            self.name
        );
        server
    }

    /// Starts the server and a worker at the same time, as a deployment does (both migrate
    /// the new database at once), and waits until both are up.
    async fn start_both(&self) -> (Process, Process) {
        let server = self.spawn("server");
        let worker = self.spawn("worker");
        assert!(
            self.server_ready(Duration::from_secs(30)).await,
            "{}: the server did not become ready",
            self.name
        );
        assert!(
            self.consumers_become(1, Duration::from_secs(30)).await,
            "{}: the worker did not start consuming",
            self.name
        );
        (server, worker)
    }

    /// Starts a worker and waits until it consumes.
    async fn start_worker(&self) -> Process {
        let worker = self.spawn("worker");
        assert!(
            self.consumers_become(1, Duration::from_secs(30)).await,
            "{}: the worker did not start consuming",
            self.name
        );
        worker
    }

    async fn server_ready(&self, within: Duration) -> bool {
        eventually(within, || async {
            matches!(
                http(self.port, "GET", "/health/ready", "").await,
                Ok((200, _))
            )
        })
        .await
    }

    /// `(messages, consumers)` of `queue` in the scenario's virtual host.
    async fn queue(&self, queue: &str) -> Option<(u32, u32)> {
        let connection = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .ok()?;
        let channel = connection.create_channel().await.ok()?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await;
        let _ = connection.close(200, "checked".into()).await;
        declared
            .ok()
            .map(|q| (q.message_count(), q.consumer_count()))
    }

    async fn consumers_become(&self, consumers: u32, within: Duration) -> bool {
        eventually(within, || async {
            self.queue(&self.handler_queue)
                .await
                .is_some_and(|(_, c)| c == consumers)
        })
        .await
    }

    /// The counts, from one statement: one snapshot of the database.
    async fn counts(&self) -> Counts {
        let (committed, handled, handlings, unhandled, outbox) =
            sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
                "SELECT (SELECT count(*) FROM tasks), \
                        (SELECT count(DISTINCT task_id) FROM handled_tasks), \
                        (SELECT count(*) FROM handled_tasks), \
                        (SELECT count(*) FROM tasks t WHERE NOT EXISTS \
                            (SELECT 1 FROM handled_tasks h WHERE h.task_id = t.id)), \
                        (SELECT count(*) FROM jararaca_outbox)",
            )
            .fetch_one(&self.pool)
            .await
            .expect("counting tasks and handlings");
        Counts {
            committed,
            handled,
            handlings,
            unhandled,
            outbox,
        }
    }

    /// Inserts `n` tasks straight into the database (not through the server) and stores a
    /// `task.created` for each in the scenario's Redis, due now.
    async fn delayed_tasks(&self, n: usize) -> Vec<Uuid> {
        let store = RedisStore::connect(&self.backend_url)
            .await
            .expect("the scenario's Redis");
        let now = chrono::Utc::now();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = Uuid::new_v4();
            let title = format!("delayed {i}");
            sqlx::query(
                "INSERT INTO tasks (id, title, done, created_at, updated_at) \
                 VALUES ($1, $2, false, $3, $3)",
            )
            .bind(id)
            .bind(&title)
            .bind(now)
            .execute(&self.pool)
            .await
            .expect("inserting a task");
            let message = DelayedMessage::of(&TaskCreated { id, title }, SystemTime::now())
                .expect("a delayed task.created");
            store.enqueue(message).await.expect("storing it in Redis");
            ids.push(id);
        }
        ids
    }

    /// Stops the load, waits until every committed task was handled and the outbox is
    /// empty, checks that every 201 is a committed task and that the dead-letter queue is
    /// empty, and prints what it counted.
    async fn settle(&self, load: Load, within: Duration, fault: &str) -> Counts {
        let stats = load.stop().await;
        let mut counts = self.counts().await;
        let deadline = Instant::now() + within;
        while (counts.unhandled > 0 || counts.outbox > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            counts = self.counts().await;
        }
        let created: HashSet<Uuid> = stats.created.iter().copied().collect();
        let ids: Vec<Uuid> = created.iter().copied().collect();
        let created_committed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tasks WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_one(&self.pool)
                .await
                .expect("looking up the created tasks");
        let (dlq, _) = self
            .queue("dlq")
            .await
            .expect("the scenario's dead-letter queue exists");
        let (queued, _) = self
            .queue(&self.handler_queue)
            .await
            .expect("the handler queue exists");
        println!(
            "faults {}: committed={} handled={} handlings={} dlq={dlq} unhandled={} outbox={} \
             queued={queued} posts={} created_201={} unanswered={} refused={} {fault} took={:.1}s",
            self.name,
            counts.committed,
            counts.handled,
            counts.handlings,
            counts.unhandled,
            counts.outbox,
            stats.posts,
            stats.created.len(),
            stats.unanswered,
            stats.refused,
            self.started.elapsed().as_secs_f64(),
        );
        assert!(
            !stats.created.is_empty(),
            "{}: the load created no task at all",
            self.name
        );
        assert_eq!(
            created_committed,
            i64::try_from(created.len()).expect("a count"),
            "{}: a task answered 201 is not in the database",
            self.name
        );
        assert_eq!(
            counts.unhandled, 0,
            "{}: committed tasks were never handled within {within:?}",
            self.name
        );
        assert_eq!(
            counts.handled, counts.committed,
            "{}: handled != committed",
            self.name
        );
        assert_eq!(
            counts.outbox, 0,
            "{}: outbox rows were never relayed",
            self.name
        );
        assert_eq!(dlq, 0, "{}: messages were dead-lettered", self.name);
        counts
    }

    fn print_logs(&self) {
        for role in ["server", "worker"] {
            let path = self.logs.join(format!("{role}.log"));
            let Ok(log) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- {} {role} log, last lines ({}) ----",
                self.name,
                path.display()
            );
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }

    async fn cleanup(self, keep_logs: bool) {
        self.pool.close().await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        )))
        .execute(&self.admin)
        .await;
        self.admin.close().await;
        let _ = tokio::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output()
            .await;
        flush_redis(&self.backend_url).await;
        if !keep_logs {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis")
}

async fn flush_redis(url: &str) {
    let mut connection = redis_connection(url).await;
    let () = redis::cmd("FLUSHDB")
        .query_async(&mut connection)
        .await
        .expect("FLUSHDB");
}

/// Runs `body` in a fresh scenario, then removes the scenario (printing the processes' logs
/// if it failed) and makes sure every service is up again.
async fn scenario<F, Fut>(name: &'static str, redis_db: u8, body: F)
where
    F: FnOnce(Arc<Scenario>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(scenario) = Scenario::new(name, redis_db).await else {
        return;
    };
    let scenario = Arc::new(scenario);
    eprintln!("faults {name}: logs in {}", scenario.logs.display());
    let outcome = tokio::spawn(body(Arc::clone(&scenario))).await;
    restore_services();
    let scenario = Arc::into_inner(scenario).expect("the scenario body is done");
    if outcome.is_err() {
        scenario.print_logs();
    }
    let keep_logs = outcome.is_err() || std::env::var_os("FAULTS_KEEP_LOGS").is_some();
    scenario.cleanup(keep_logs).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Asserts the processes are still running: they recovered by themselves.
fn assert_alive(name: &str, processes: &mut [&mut Process]) {
    for process in processes {
        assert!(
            process.is_alive(),
            "{name}: the {} exited: {:?}",
            process.role,
            process.child.try_wait()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills processes and restarts shared services: run alone, with --ignored"]
async fn a_worker_killed_mid_stream_loses_nothing() {
    scenario("worker_killed", 10, |s| async move {
        let (mut server, mut worker) = s.start_both().await;
        let load = Load::start(s.port);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let kills = 2;
        for _ in 0..kills {
            worker.kill9().await;
            assert!(
                s.consumers_become(0, Duration::from_secs(10)).await,
                "the killed worker's consumer is gone"
            );
            // Messages pile up in the queue while no worker runs.
            tokio::time::sleep(Duration::from_secs(2)).await;
            worker = s.start_worker().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        s.settle(load, SETTLE_WITHIN, &format!("worker_kills={kills}"))
            .await;
        assert_alive(s.name, &mut [&mut server]);
        assert_alive(s.name, &mut [&mut worker]);
        server.terminate().await;
        worker.terminate().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills processes and restarts shared services: run alone, with --ignored"]
async fn both_processes_recover_from_a_rabbitmq_restart() {
    scenario("rabbitmq_restarted", 11, |s| async move {
        let (mut server, mut worker) = s.start_both().await;
        let load = Load::start(s.port);
        tokio::time::sleep(Duration::from_secs(3)).await;

        let restore = RestoreServices;
        run_command("rabbitmqctl", &["stop_app"]).await;
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        run_command("rabbitmqctl", &["start_app"]).await;
        assert!(
            eventually(Duration::from_secs(60), || async { port_open(5672) }).await,
            "RabbitMQ came back"
        );
        let outage = down.elapsed();
        let back = Instant::now();
        drop(restore);

        // Neither process is restarted: the worker consumes again, the server publishes again.
        assert!(
            s.consumers_become(1, Duration::from_secs(60)).await,
            "the worker consumes again after RabbitMQ came back"
        );
        let worker_back = back.elapsed();
        assert!(
            s.server_ready(Duration::from_secs(60)).await,
            "the server is ready again after RabbitMQ came back"
        );
        let server_back = back.elapsed();
        tokio::time::sleep(Duration::from_secs(4)).await;
        s.settle(
            load,
            SETTLE_WITHIN,
            &format!(
                "broker_outage={:.1}s worker_consuming_after={:.1}s server_ready_after={:.1}s",
                outage.as_secs_f64(),
                worker_back.as_secs_f64(),
                server_back.as_secs_f64()
            ),
        )
        .await;
        assert_alive(s.name, &mut [&mut server, &mut worker]);
        server.terminate().await;
        worker.terminate().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills processes and restarts shared services: run alone, with --ignored"]
async fn both_processes_recover_from_a_redis_restart() {
    scenario("redis_restarted", 12, |s| async move {
        let (mut server, mut worker) = s.start_both().await;
        let load = Load::start(s.port);
        tokio::time::sleep(Duration::from_secs(3)).await;

        let restore = RestoreServices;
        // Without persistence: whatever Redis held is gone when it comes back.
        let _ = tokio::process::Command::new("redis-cli")
            .args(["-p", "6379", "shutdown", "nosave"])
            .output()
            .await;
        let down = Instant::now();
        assert!(
            eventually(Duration::from_secs(10), || async { !port_open(6379) }).await,
            "Redis stopped"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        run_command(
            "redis-server",
            &[
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ],
        )
        .await;
        assert!(
            eventually(Duration::from_secs(30), || async { port_open(6379) }).await,
            "Redis came back"
        );
        let outage = down.elapsed();
        let back = Instant::now();
        drop(restore);

        assert!(
            s.server_ready(Duration::from_secs(60)).await,
            "the server is ready again after Redis came back"
        );
        let server_back = back.elapsed();
        // Delayed messages stored now are pumped by the worker: its Redis connection is back.
        let delayed = s.delayed_tasks(50).await.len();
        tokio::time::sleep(Duration::from_secs(4)).await;
        s.settle(
            load,
            SETTLE_WITHIN,
            &format!(
                "redis_outage={:.1}s server_ready_after={:.1}s delayed_after_restart={delayed}",
                outage.as_secs_f64(),
                server_back.as_secs_f64()
            ),
        )
        .await;
        assert_alive(s.name, &mut [&mut server, &mut worker]);
        server.terminate().await;
        worker.terminate().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills processes and restarts shared services: run alone, with --ignored"]
async fn a_server_killed_repeatedly_under_load_loses_nothing() {
    scenario("server_killed", 13, |s| async move {
        let (mut server, mut worker) = s.start_both().await;
        let load = Load::start(s.port);
        let kills = 4;
        for _ in 0..kills {
            tokio::time::sleep(Duration::from_secs(2)).await;
            server.kill9().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            server = s.start_server().await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        s.settle(load, SETTLE_WITHIN, &format!("server_kills={kills}"))
            .await;
        assert_alive(s.name, &mut [&mut server, &mut worker]);
        server.terminate().await;
        worker.terminate().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills processes and restarts shared services: run alone, with --ignored"]
async fn a_pump_killed_mid_batch_loses_no_delayed_message() {
    // More than one pump batch (500), so the kill lands while a batch is being published.
    const DELAYED: usize = 2000;
    scenario("pump_killed", 14, |s| async move {
        let mut server = s.start_server().await;
        let load = Load::start(s.port);
        s.delayed_tasks(DELAYED).await;

        let mut redis = redis_connection(&s.backend_url).await;
        let mut worker = s.spawn("worker");
        // Leased (claimed by the pump) but not yet published and deleted: mid-batch once part
        // of a claimed batch has been published.
        let mut leased: u64 = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            leased = redis::cmd("ZCARD")
                .arg(jararaca::bus::delayed::IN_FLIGHT_KEY)
                .query_async(&mut redis)
                .await
                .expect("ZCARD");
            if (1..450).contains(&leased) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        worker.kill9().await;
        let left_leased: u64 = redis::cmd("ZCARD")
            .arg(jararaca::bus::delayed::IN_FLIGHT_KEY)
            .query_async(&mut redis)
            .await
            .expect("ZCARD");
        let left_waiting: u64 = redis::cmd("ZCARD")
            .arg(jararaca::bus::delayed::DELAYED_MESSAGES_KEY)
            .query_async(&mut redis)
            .await
            .expect("ZCARD");
        assert!(
            left_leased > 0,
            "the pump was killed mid-batch (leased when seen: {leased}, after the kill: {left_leased})"
        );

        let mut worker = s.start_worker().await;
        // The dead pump's leases end after CLAIM_LEASE_SECS: then the new worker sends them.
        s.settle(
            load,
            SETTLE_WITHIN + Duration::from_secs(60),
            &format!(
                "delayed={DELAYED} pumped_before_kill={} leased_at_kill={left_leased} \
                 waiting_at_kill={left_waiting}",
                DELAYED as u64 - left_leased - left_waiting
            ),
        )
        .await;
        assert_alive(s.name, &mut [&mut server, &mut worker]);
        server.terminate().await;
        worker.terminate().await;
    })
    .await;
}
