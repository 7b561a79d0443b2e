//! Faults against the real RabbitMQ and Redis: lost and unreachable brokers, refused logins,
//! unroutable delayed messages, binary bodies on the retry path.
//!
//! Outages are made with a TCP proxy each test runs on loopback in front of RabbitMQ, so a
//! test cuts only its own connections and the shared broker never goes down. Each test uses
//! its own exchange, dead-letter names, queues and Redis key prefix, and deletes them.

mod common;

use common::Namespace;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jararaca_bus::headers::{DEAD_LETTER_QUEUE, DEAD_LETTER_REASON, LAST_ERROR};
use jararaca_bus::{
    AmqpPublisher, BrokerUrl, BusError, BusSettings, DelayedMessage, DelayedStore, Delivery,
    Handler, HeaderValue, Message, MessageBus, MessageKind, Outgoing, PayloadPolicy, Publisher,
    QueueSpec, RedisStore, TimePolicy, Topology, UNROUTABLE_REASON, UNROUTABLE_RETRIES, Worker,
    declare, dlq_list, pump_due,
};
use jararaca_di::{BoxError, Capabilities, Contribution, ReadinessChecks, Role, SetupContext};
use jararaca_retry::RetryPolicy;
use lapin::options::BasicGetOptions;
use lapin::types::ShortString;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u32,
}

impl Message for Job {
    const TOPIC: &'static str = "job.run";
    const KIND: MessageKind = MessageKind::Task;
}

// ---------------------------------------------------------------------------------------
// A TCP proxy that can cut, refuse or swallow connections.

const FORWARD: u8 = 0;
/// Accepts connections and closes them at once.
const REFUSE: u8 = 1;
/// Accepts connections and never answers.
const BLACKHOLE: u8 = 2;

struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped to close every connection open now.
    cut: tokio::sync::watch::Sender<u64>,
    connections: Arc<AtomicUsize>,
    /// When set, the first chunk from a client containing it is held for a moment (answers
    /// from the broker still flow) and then the connection is cut; once only.
    cut_on: Arc<Mutex<Option<Vec<u8>>>>,
    /// Bytes forwarded from clients before that cut.
    before_cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let connections = Arc::new(AtomicUsize::new(0));
        let cut_on = Arc::new(Mutex::new(None::<Vec<u8>>));
        let before_cut = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let task = {
            let (mode, cut, connections) =
                (Arc::clone(&mode), cut.clone(), Arc::clone(&connections));
            let (cut_on, before_cut) = (Arc::clone(&cut_on), Arc::clone(&before_cut));
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    match mode.load(Ordering::SeqCst) {
                        REFUSE => drop(client),
                        BLACKHOLE => {
                            let mut cut = cut.subscribe();
                            tokio::spawn(async move {
                                let _ = cut.changed().await;
                                drop(client);
                            });
                        }
                        _ => {
                            let upstream = upstream.clone();
                            let cut = cut.subscribe();
                            let (cut_on, before_cut) =
                                (Arc::clone(&cut_on), Arc::clone(&before_cut));
                            tokio::spawn(relay(client, upstream, cut, cut_on, before_cut));
                        }
                    }
                }
            })
        };
        Self {
            port,
            mode,
            cut,
            connections,
            cut_on,
            before_cut,
            task,
        }
    }

    /// `url` pointed at the proxy.
    fn url(&self, url: &BrokerUrl) -> BrokerUrl {
        let mut proxied = url.clone();
        proxied.connection_url = url
            .connection_url
            .replace("127.0.0.1:5672", &format!("127.0.0.1:{}", self.port))
            .replace("localhost:5672", &format!("127.0.0.1:{}", self.port));
        assert_ne!(
            proxied.connection_url, url.connection_url,
            "the proxy is in the URL"
        );
        proxied
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Closes every connection open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: String,
    mut cut: tokio::sync::watch::Receiver<u64>,
    cut_on: Arc<Mutex<Option<Vec<u8>>>>,
    before_cut: Arc<AtomicUsize>,
) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut forwarded = 0usize;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let marker = cut_on.lock().unwrap().clone();
            if let Some(marker) = marker
                && buf[..n]
                    .windows(marker.len())
                    .any(|w| w == marker.as_slice())
            {
                *cut_on.lock().unwrap() = None;
                before_cut.store(forwarded, Ordering::SeqCst);
                // Let the broker's confirms for what went before reach the client.
                tokio::time::sleep(Duration::from_millis(700)).await;
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            forwarded += n;
        }
    };
    let down = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        () = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}

// ---------------------------------------------------------------------------------------
// The test's corner of the broker.

impl Namespace {
    fn new(query: &str) -> Option<Self> {
        Self::with("jres", &format!("&prefetch_count=4{query}"))
    }

    fn upstream(&self) -> String {
        let rest = self.url.connection_url.split_once('@').unwrap().1;
        rest.split(['/', '?']).next().unwrap().to_string()
    }

    async fn handler_queue(&mut self, suffix: &str) -> String {
        let queue = format!("job.run.{}.{suffix}", self.name);
        self.queues.push(queue.clone());
        declare(
            &self.url,
            &Topology::new().queue(QueueSpec::handler(&queue, "job.run")),
            false,
        )
        .await
        .unwrap();
        queue
    }

    /// Takes every message off `queue`: (message id, body).
    async fn drain(&self, queue: &str) -> Vec<(Option<String>, Vec<u8>)> {
        let (connection, channel) = self.channel().await;
        let mut out = Vec::new();
        while let Some(got) = channel
            .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let delivery = got.delivery;
            out.push((
                delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string()),
                delivery.data,
            ));
        }
        let _ = connection.close(200, "done".into()).await;
        out
    }
}

async fn redis_store(prefix: &str) -> Option<RedisStore> {
    let url = jararaca_testing::redis()?;
    Some(
        RedisStore::connect(&url)
            .await
            .unwrap()
            .with_prefix(format!("{prefix}:")),
    )
}

fn job(n: u32) -> Outgoing {
    Outgoing::message(&Job { n }).unwrap()
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    async fn start(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!task.is_finished(), "the worker stopped at start");
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker stopped within 30 s")
            .unwrap()
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The publisher.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_while_the_broker_does_not_answer_fail_within_the_publish_timeout() {
    let Some(mut ns) = Namespace::new("") else {
        return;
    };
    let queue = ns.handler_queue("Jobs.run").await;
    let proxy = Proxy::start(&ns.upstream()).await;
    proxy.set(BLACKHOLE);
    let timeout = Duration::from_millis(1500);
    let publisher =
        Arc::new(AmqpPublisher::lazy(&proxy.url(&ns.url)).with_publish_timeout(timeout));

    // Four publishers at once, while the one connection attempt hangs (its own limit is
    // 10 s): none waits behind it, each fails after the publish timeout.
    let started = Instant::now();
    let mut publishes = tokio::task::JoinSet::new();
    for n in 0..4 {
        let publisher = Arc::clone(&publisher);
        publishes.spawn(async move { (publisher.publish(job(n)).await, Instant::now()) });
    }
    while let Some(joined) = publishes.join_next().await {
        let (result, at) = joined.unwrap();
        let waited = at - started;
        match result {
            Err(BusError::NotConnected { waited: w, .. }) => assert_eq!(w, timeout),
            other => panic!("expected NotConnected, got {other:?}"),
        }
        assert!(
            waited >= timeout && waited < timeout + Duration::from_secs(1),
            "a publish waited {waited:?}"
        );
    }
    assert_eq!(proxy.connections(), 1, "one reconnect at a time");
    let message = publisher.publish(job(9)).await.unwrap_err().to_string();
    assert!(message.contains("BROKER_URL"), "{message}");

    // The broker answers again: publishing resumes once the hung attempt has given up.
    proxy.set(FORWARD);
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match publisher.publish(job(10)).await {
            Ok(()) => break,
            Err(error) => assert!(
                Instant::now() < deadline,
                "publishing did not resume: {error}"
            ),
        }
    }
    let arrived = ns.drain(&queue).await;
    assert_eq!(
        arrived.len(),
        1,
        "only the message published after the outage"
    );
    assert_eq!(arrived[0].1, br#"{"n":10}"#);
    drop(proxy);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_connection_only_unconfirmed_messages_are_sent_again() {
    let Some(mut ns) = Namespace::new("") else {
        return;
    };
    let queue = ns.handler_queue("Jobs.run").await;
    let proxy = Proxy::start(&ns.upstream()).await;
    let publisher = AmqpPublisher::connect(&proxy.url(&ns.url)).await.unwrap();

    // Large bodies, so the messages before the marker reach the broker (and are confirmed)
    // before the connection is cut under the marker.
    let marker = format!("cut-here-{}", ns.name);
    let filler = "x".repeat(32 * 1024);
    let batch: Vec<Outgoing> = (0..60)
        .map(|n| {
            let mut out = job(n);
            out.body = if n == 40 {
                format!(r#"{{"n":{n},"marker":"{marker}"}}"#).into_bytes()
            } else {
                format!(r#"{{"n":{n},"filler":"{filler}"}}"#).into_bytes()
            };
            out
        })
        .collect();
    let ids: Vec<String> = batch
        .iter()
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    *proxy.cut_on.lock().unwrap() = Some(marker.into_bytes());
    publisher.publish_all(batch).await.unwrap();

    let forwarded = proxy.before_cut.load(Ordering::SeqCst);
    println!(
        "forwarded {forwarded} bytes before the cut; {} connections",
        proxy.connections()
    );
    assert_eq!(
        proxy.connections(),
        2,
        "the batch finished on a second connection"
    );
    assert!(
        forwarded > 20 * 32 * 1024,
        "most messages before the marker went out on the first connection ({forwarded} bytes)"
    );
    let arrived = ns.drain(&queue).await;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (id, _) in &arrived {
        *counts
            .entry(id.clone().expect("every message has an id"))
            .or_default() += 1;
    }
    println!(
        "sent 60, arrived {} ({} distinct)",
        arrived.len(),
        counts.len()
    );
    for id in &ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "message {id} arrived exactly once"
        );
    }
    assert_eq!(arrived.len(), 60);
    drop(proxy);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_fails_at_once_and_is_not_retried_for_30_s() {
    let Some(ns) = Namespace::new("&connection_retry_delay=0.2") else {
        return;
    };
    let mut wrong = ns.url.clone();
    wrong.connection_url = wrong
        .connection_url
        .replacen(":guest@", ":wrong-password@", 1);
    assert_ne!(wrong.connection_url, ns.url.connection_url);
    let proxy = Proxy::start(&ns.upstream()).await;
    let wrong = proxy.url(&wrong);

    // At startup: an error naming the cause, without the connection retries.
    let started = Instant::now();
    match AmqpPublisher::connect(&wrong).await {
        Err(BusError::AccessRefused { detail }) => {
            assert!(detail.contains("ACCESS_REFUSED"), "{detail}")
        }
        other => panic!("expected AccessRefused, got {other:?}"),
    }
    assert_eq!(proxy.connections(), 1, "not retried");
    let service = tower::service_fn(|_d: Delivery| async { Ok::<(), BoxError>(()) });
    let worker =
        Worker::amqp(wrong.clone()).handler(Handler::new::<Job, _>("job.run.nowhere", service));
    match tokio::time::timeout(Duration::from_secs(20), worker.run(std::future::pending())).await {
        Ok(Err(BusError::AccessRefused { .. })) => {}
        other => panic!("expected the worker to stop with AccessRefused, got {other:?}"),
    }
    assert_eq!(proxy.connections(), 2, "the worker did not retry either");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A lazy publisher: the first publish is refused, and so is the next, without another
    // login attempt.
    let publisher = AmqpPublisher::lazy(&wrong);
    for _ in 0..3 {
        let started = Instant::now();
        let error = publisher.publish(job(1)).await.unwrap_err();
        assert!(matches!(error, BusError::AccessRefused { .. }), "{error:?}");
        assert!(error.to_string().contains("BROKER_URL"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        proxy.connections(),
        3,
        "one login attempt for the three publishes"
    );
    drop(proxy);
}

// ---------------------------------------------------------------------------------------
// The worker.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_consumes_again_soon_after_an_outage_ends() {
    // Without a cap on the resume delay this backoff would wait 12.8 s after the fourth
    // failed attempt, long after the broker came back.
    let Some(mut ns) = Namespace::new("&connection_retry_delay=0.2&connection_retry_backoff=4")
    else {
        return;
    };
    let queue = ns.handler_queue("Jobs.run").await;
    let proxy = Proxy::start(&ns.upstream()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = tower::service_fn(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.body().to_vec())?;
            Ok::<(), BoxError>(())
        }
    });
    let running = Running::start(
        Worker::amqp(proxy.url(&ns.url)).handler(Handler::new::<Job, _>(&queue, service)),
    )
    .await;
    let publisher = AmqpPublisher::connect(&ns.url).await.unwrap();
    publisher.publish(job(1)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(first.unwrap().unwrap(), br#"{"n":1}"#);

    proxy.set(REFUSE);
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let attempts = proxy.connections();
    publisher.publish(job(2)).await.unwrap();
    proxy.set(FORWARD);
    let back = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the worker resumed")
        .unwrap();
    let resumed = back.elapsed();
    println!(
        "{attempts} connection attempts during the outage; consuming again {resumed:?} after it"
    );
    assert_eq!(second, br#"{"n":2}"#);
    assert!(
        resumed < Duration::from_secs(7),
        "resumed after {resumed:?}"
    );
    running.stop().await;
    drop(proxy);
    ns.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Delayed messages and retries.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_body_whose_handler_fails_is_redelivered_byte_for_byte() {
    let Some(mut ns) = Namespace::new("") else {
        return;
    };
    let Some(store) = redis_store(&ns.name).await else {
        return;
    };
    let queue = ns.handler_queue("Jobs.binary").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = tower::service_fn(move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((
                d.body().to_vec(),
                d.retry_count(),
                d.message_id().map(str::to_string),
            ))?;
            if d.retry_count() == 0 {
                return Err::<(), BoxError>("the first attempt fails".into());
            }
            Ok(())
        }
    });
    let policy = RetryPolicy::default()
        .max_retries(2)
        .initial_delay(Duration::from_secs(1))
        .jitter(false);
    let worker = Worker::amqp(ns.url.clone())
        .store(Arc::new(store.clone()))
        .pump(Duration::from_millis(100))
        .handler(Handler::new::<Job, _>(&queue, service).retry_policy(policy));
    let running = Running::start(worker).await;

    // Every byte value, and sequences that are not UTF-8.
    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(&[0xc3, 0x28, 0xff, 0xfe, 0x00, 0xed, 0xa0, 0x80]);
    let mut out = job(0);
    out.body = body.clone();
    out.content_type = Some("application/octet-stream".into());
    let id = out.message_id.clone();
    AmqpPublisher::connect(&ns.url)
        .await
        .unwrap()
        .publish(out)
        .await
        .unwrap();

    let mut recv = async |what: &str| {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap()
    };
    let first = recv("the first attempt").await;
    assert_eq!((first.0.as_slice(), first.1), (body.as_slice(), 0));
    let retried = recv("the retry").await;
    assert_eq!(retried.1, 1, "the retry");
    assert_eq!(retried.0, body, "redelivered byte for byte");
    assert_eq!(retried.2, id, "with its message id");
    running.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_delayed_message_is_put_back_then_dead_lettered() {
    let Some(ns) = Namespace::new("") else {
        return;
    };
    let Some(store) = redis_store(&ns.name).await else {
        return;
    };
    declare(&ns.url, &Topology::new(), false).await.unwrap();
    let publisher = AmqpPublisher::connect(&ns.url).await.unwrap();
    let gone = format!("job.run.{}.Deleted.handler", ns.name);
    let now = jararaca_bus_now();
    let mut message = DelayedMessage::of(&Job { n: 5 }, SystemTime::now() - Duration::from_secs(1))
        .unwrap()
        .idempotent("retry-1", PayloadPolicy::Replace, TimePolicy::Replace);
    message.target_queue = Some(gone.clone());
    store.enqueue(message.clone()).await.unwrap();

    // The queue is gone: the pump says so and keeps the message, due 10 s later.
    let result = pump_due(&store, &publisher, 10).await;
    assert!(
        matches!(result, Err(BusError::Unroutable { .. })),
        "{result:?}"
    );
    let client = redis::Client::open(jararaca_testing::redis().unwrap().as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(store.delayed_messages_key())
        .arg("retry-1")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        (score as i64 - (now + 10)).abs() <= 1,
        "due again at {score}, now {now}"
    );
    let json: String = redis::cmd("GET")
        .arg(store.metadata_key("retry-1"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(json.ends_with(r#","unroutable_attempts":1}"#), "{json}");

    // Its put-backs spent: dead-lettered with the reason, and gone from Redis.
    message.unroutable_attempts = Some(UNROUTABLE_RETRIES);
    store.enqueue(message).await.unwrap();
    pump_due(&store, &publisher, 10).await.unwrap_err();
    let dead = dlq_list(&ns.url, 10, None).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(letter.body, br#"{"n":5}"#);
    assert_eq!(letter.reason.as_deref(), Some(UNROUTABLE_REASON));
    assert_eq!(
        letter.headers.get(DEAD_LETTER_QUEUE),
        Some(&HeaderValue::from(gone.as_str()))
    );
    assert_eq!(
        letter.headers.get(DEAD_LETTER_REASON),
        Some(&HeaderValue::from(UNROUTABLE_REASON))
    );
    assert!(
        matches!(letter.headers.get(LAST_ERROR), Some(HeaderValue::String(e)) if e.contains(&gone)),
        "{:?}",
        letter.headers
    );
    let left: i64 = redis::cmd("EXISTS")
        .arg(store.delayed_messages_key())
        .arg(store.in_flight_key())
        .arg(store.metadata_key("retry-1"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(left, 0);
    ns.cleanup().await;
}

fn jararaca_bus_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------
// Every role that can delay a message can deliver it.

#[test]
fn a_broker_without_a_backend_is_refused_in_every_role_naming_backend_url() {
    let broker = "amqp://guest:guest@127.0.0.1:5672/%2f?exchange=x".to_string();
    // Roles that read the settings (the server, all-in-one): the build fails.
    for role in [Some(Role::new(Role::SERVER)), None] {
        let mut capabilities = Capabilities::default();
        BusSettings {
            broker_url: Some(broker.clone()),
            backend_url: None,
        }
        .contribute(&mut capabilities);
        let mut bus = capabilities.into_vec().pop().expect("the bus capability");
        let mut container = Some(jararaca_di::Container::builder());
        let mut readiness = ReadinessChecks::default();
        let mut cx = SetupContext::new("svc", role.as_ref(), &mut container, &mut readiness);
        let error = bus.setup(&mut cx).unwrap_err().to_string();
        assert!(error.contains("BACKEND_URL"), "{error}");
    }
    // The worker: its command line requires it.
    let worker = MessageBus::default()
        .commands_for_test()
        .into_iter()
        .find(|c| c.get_name() == Role::WORKER)
        .expect("a worker command");
    let error = worker
        .try_get_matches_from(["worker", "--broker-url", &broker])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("BACKEND_URL") || error.contains("backend-url"),
        "{error}"
    );
}

trait CommandsForTest {
    fn commands_for_test(&self) -> Vec<clap::Command>;
}

impl CommandsForTest for MessageBus {
    fn commands_for_test(&self) -> Vec<clap::Command> {
        use jararaca_di::Capability;
        self.commands()
            .into_iter()
            .map(|spec| spec.command)
            .collect()
    }
}
