//! Against the real RabbitMQ and Redis: topology, publishing, the worker's retries, dead
//! letters, stop, reconnection and redelivery. Each test uses its own exchange, dead-letter
//! names, queues and Redis key prefix, and deletes them afterwards.

mod common;

use common::Namespace;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jararaca_bus::headers::{DEAD_LETTER_REASON, LAST_ERROR, RETRY_COUNT};
use jararaca_bus::{
    AmqpPublisher, Bus, BusError, DelayedStore, Delivery, Handler, HeaderValue, Message,
    MessageKind, Outgoing, PayloadPolicy, QueueSpec, RedisStore, TimePolicy, Topology, Worker,
    declare, dlq_list, dlq_purge, dlq_requeue, dlq_stats, typed,
};
use jararaca_di::BoxError;
use jararaca_retry::RetryPolicy;
use lapin::options::BasicGetOptions;
use lapin::types::ShortString;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u32,
}

impl Message for Job {
    const TOPIC: &'static str = "job.run";
    const KIND: MessageKind = MessageKind::Task;
}

#[derive(Debug, Serialize, Deserialize)]
struct Happened {
    n: u32,
}

impl Message for Happened {
    const TOPIC: &'static str = "thing.happened";
    const KIND: MessageKind = MessageKind::Event;
}

impl Namespace {
    fn new() -> Option<Self> {
        Self::with("jbus", "&prefetch_count=4")
    }

    fn queue(&mut self, suffix: &str) -> String {
        let queue = format!("job.run.{}.{suffix}", self.name);
        self.queues.push(queue.clone());
        queue
    }

    async fn declare(&self, topology: &Topology) {
        declare(&self.url, topology, false).await.unwrap();
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

fn rabbitmqctl(args: &[&str]) -> Option<String> {
    let output = Command::new("rabbitmqctl").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
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
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) -> Result<(), BusError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker stopped within 30 s")
            .unwrap()
    }
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_creates_the_reference_topology_and_reports_conflicts() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let handler_queue = ns.queue("Jobs.run");
    let action_queue = ns.queue("Cron.tick");
    let topology = Topology::new()
        .queue(QueueSpec::handler(&handler_queue, "job.run"))
        .queue(QueueSpec::action(&action_queue));
    let report = declare(&ns.url, &topology, false).await.unwrap();
    assert_eq!(report.declared.len(), 3);
    // Idempotent.
    declare(&ns.url, &topology, false).await.unwrap();

    if let Some(listing) = rabbitmqctl(&["list_queues", "-q", "name", "durable", "arguments"]) {
        let line = |queue: &str| {
            listing
                .lines()
                .find(|l| l.split_whitespace().next() == Some(queue))
                .unwrap_or_else(|| panic!("{queue} not listed in {listing}"))
                .to_string()
        };
        let dl = &ns.url.dead_letter;
        let handler = line(&handler_queue);
        assert!(handler.contains("true"), "durable: {handler}");
        assert!(
            handler.contains(&format!(
                "{{\"x-dead-letter-exchange\",\"{}\"}}",
                dl.exchange
            )),
            "{handler}"
        );
        assert!(
            handler.contains(&format!(
                "{{\"x-dead-letter-routing-key\",\"{}\"}}",
                dl.routing_key
            )),
            "{handler}"
        );
        let action = line(&action_queue);
        assert!(action.contains("{\"x-max-length\",1}"), "{action}");
        let dlq = line(&dl.queue);
        // rabbitmqctl prints the empty string as `[]`.
        assert!(
            dlq.contains("{\"x-dead-letter-exchange\",\"\"}")
                || dlq.contains("{\"x-dead-letter-exchange\",[]}"),
            "{dlq}"
        );
        assert!(
            dlq.contains(&format!(
                "{{\"x-dead-letter-routing-key\",\"{}\"}}",
                dl.routing_key
            )),
            "{dlq}"
        );
    } else if jararaca_testing::services_required() {
        panic!("rabbitmqctl is needed to compare queue arguments");
    }
    if let Some(bindings) = rabbitmqctl(&[
        "list_bindings",
        "-q",
        "source_name",
        "destination_name",
        "routing_key",
    ]) {
        let bound = |source: &str, dest: &str, key: &str| {
            bindings
                .lines()
                .any(|l| l.split('\t').collect::<Vec<_>>() == [source, dest, key])
        };
        assert!(bound(&ns.name, &handler_queue, "job.run.#"), "{bindings}");
        assert!(bound(&ns.name, &action_queue, &action_queue), "{bindings}");
        let dl = &ns.url.dead_letter;
        assert!(
            bound(&dl.exchange, &dl.queue, &dl.routing_key),
            "{bindings}"
        );
    }
    if let Some(exchanges) = rabbitmqctl(&["list_exchanges", "-q", "name", "type", "durable"]) {
        assert!(
            exchanges
                .lines()
                .any(|l| l == format!("{}\ttopic\ttrue", ns.name)),
            "{exchanges}"
        );
        assert!(
            exchanges
                .lines()
                .any(|l| l == format!("{}\tdirect\ttrue", ns.url.dead_letter.exchange))
        );
    }

    // The handler queue declared as an action queue: other arguments.
    let conflicting = Topology::new().queue(QueueSpec::action(&handler_queue));
    match declare(&ns.url, &conflicting, false).await {
        Err(BusError::TopologyConflict { name, .. }) => assert_eq!(name, handler_queue),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // `force` alone refuses to drop the messages the queue holds, and says how many.
    let bus = Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    bus.publish(&Job { n: 1 }).await.unwrap();
    bus.publish(&Job { n: 2 }).await.unwrap();
    match declare(&ns.url, &conflicting, true).await {
        Err(BusError::WouldLoseMessages { name, messages }) => {
            assert_eq!((name.as_str(), messages), (handler_queue.as_str(), 2));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let report = jararaca_bus::declare_discarding(&ns.url, &conflicting)
        .await
        .unwrap();
    assert_eq!(report.recreated, vec![handler_queue.clone()]);
    // An empty conflicting queue is recreated by `force` alone.
    let report = declare(&ns.url, &topology, true).await.unwrap();
    assert_eq!(report.recreated, vec![handler_queue.clone()]);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_have_the_reference_wire_form() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;
    let publisher = AmqpPublisher::connect(&ns.url).await.unwrap();
    let bus = Bus::new(publisher);
    let mut out = Outgoing::message(&Job { n: 3 }).unwrap();
    out.headers
        .insert("traceparent".into(), "00-abc-def-01".into());
    bus.publisher().publish(out).await.unwrap();

    // A task nobody handles is an error; an event is not.
    match bus.publish(&Job2 { n: 1 }).await {
        Err(BusError::Unroutable { routing_key, .. }) => assert_eq!(routing_key, "job.unhandled.#"),
        other => panic!("expected unroutable, got {other:?}"),
    }
    bus.publish(&Happened { n: 1 }).await.unwrap();

    let (_connection, channel) = ns.channel().await;
    let got = channel
        .basic_get(
            ShortString::from(queue.as_str()),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the message is in the queue");
    let delivery = got.delivery;
    assert_eq!(delivery.exchange.as_str(), ns.name);
    assert_eq!(delivery.routing_key.as_str(), "job.run.#");
    assert_eq!(delivery.data, br#"{"n":3}"#);
    let props = &delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2));
    let id = props.message_id().as_ref().unwrap().to_string();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let headers = jararaca_bus_headers(props);
    assert_eq!(
        headers.get("traceparent"),
        Some(&HeaderValue::from("00-abc-def-01"))
    );
    ns.cleanup().await;
}

#[derive(Debug, Serialize, Deserialize)]
struct Job2 {
    n: u32,
}

impl Message for Job2 {
    const TOPIC: &'static str = "job.unhandled";
    const KIND: MessageKind = MessageKind::Task;
}

fn jararaca_bus_headers(props: &lapin::BasicProperties) -> jararaca_bus::Headers {
    let mut out = jararaca_bus::Headers::new();
    if let Some(table) = props.headers() {
        for (k, v) in table.inner() {
            let value = match v {
                lapin::types::AMQPValue::LongString(s) => {
                    HeaderValue::String(String::from_utf8_lossy(s.as_bytes()).into())
                }
                lapin::types::AMQPValue::ShortShortInt(i) => HeaderValue::Int(i64::from(*i)),
                other => HeaderValue::String(format!("{other:?}")),
            };
            out.insert(k.to_string(), value);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_through_redis_with_growing_delays_then_dead_letter() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let Some(store) = redis_store(&ns.name).await else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((job.n, d.retry_count(), Instant::now())).unwrap();
            if job.n == 2 {
                return Err::<(), BoxError>(
                    format!("job 2 fails (attempt {})", d.attempt()).into(),
                );
            }
            Ok(())
        }
    });
    let policy = RetryPolicy::default()
        .max_retries(2)
        .initial_delay(Duration::from_secs(1))
        .backoff_factor(3.0)
        .jitter(false);
    let worker = Worker::amqp(ns.url.clone())
        .store(Arc::new(store.clone()))
        .pump(Duration::from_millis(100))
        .handler(Handler::new::<Job, _>(&queue, service).retry_policy(policy));
    let running = Running::start(worker).await;

    let bus = Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    bus.publish(&Job { n: 1 }).await.unwrap();
    assert_eq!(recv(&mut rx, "job 1").await.0, 1);
    bus.publish(&Job { n: 2 }).await.unwrap();
    let mut bad = Outgoing::message(&Job { n: 0 }).unwrap();
    bad.body = b"{\"n\": \"not a number\"}".to_vec();
    bus.publisher().publish(bad).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (n, count, at) = recv(&mut rx, "job 2 attempts").await;
        if n == 2 {
            seen.push((count, at));
        }
    }
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
    let first_gap = seen[1].1 - seen[0].1;
    let second_gap = seen[2].1 - seen[1].1;
    assert!(
        second_gap > first_gap,
        "delays grow: {first_gap:?} then {second_gap:?}"
    );
    assert!(second_gap >= Duration::from_secs(2), "{second_gap:?}");

    // Both failures end up in the dead-letter queue with their reasons.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns.message_count(&ns.url.dead_letter.queue).await < 2 {
        assert!(Instant::now() < deadline, "dead letters did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await.unwrap();

    let dead = dlq_list(&ns.url, 10, None).await.unwrap();
    assert_eq!(dead.len(), 2);
    let by_reason = |reason: &str| {
        dead.iter()
            .find(|d| d.reason.as_deref() == Some(reason))
            .unwrap()
    };
    let exhausted = by_reason("retries-exhausted");
    assert_eq!(exhausted.queue.as_deref(), Some(queue.as_str()));
    assert_eq!(exhausted.retry_count, 2);
    assert_eq!(
        exhausted.last_error.as_deref(),
        Some("job 2 fails (attempt 3)")
    );
    assert_eq!(exhausted.body, br#"{"n":2}"#);
    let undecodable = by_reason("undecodable");
    assert_eq!(undecodable.headers.get(RETRY_COUNT), None);
    assert!(
        undecodable
            .last_error
            .as_deref()
            .unwrap()
            .contains("not a valid")
    );
    assert!(matches!(
        undecodable.headers.get(DEAD_LETTER_REASON),
        Some(HeaderValue::String(_))
    ));
    assert!(matches!(
        undecodable.headers.get(LAST_ERROR),
        Some(HeaderValue::String(_))
    ));

    // Listing twice sees the same messages once each; stats count them by queue.
    assert_eq!(dlq_list(&ns.url, 10, None).await.unwrap().len(), 2);
    let stats = dlq_stats(&ns.url).await.unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_queue.get(&queue), Some(&2));

    // Requeue returns them to the queue they died in, with a fresh budget.
    let report = dlq_requeue(&ns.url, 10, Some("Jobs.run")).await.unwrap();
    assert_eq!(report.requeued, 2);
    assert_eq!(ns.message_count(&queue).await, 2);
    assert_eq!(ns.message_count(&ns.url.dead_letter.queue).await, 0);
    assert_eq!(dlq_purge(&ns.url).await.unwrap(), 0);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_timeout_is_a_failure_that_never_leaves_the_message_unacknowledged() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let Some(store) = redis_store(&ns.name).await else {
        return;
    };
    let queue = ns.queue("Jobs.slow");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((job.n, d.retry_count())).unwrap();
            // Far longer than the handler's timeout.
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), BoxError>(())
        }
    });
    let policy = RetryPolicy::default()
        .max_retries(1)
        .initial_delay(Duration::from_millis(200))
        .jitter(false);
    let worker = Worker::amqp(ns.url.clone())
        .store(Arc::new(store.clone()))
        .pump(Duration::from_millis(100))
        .handler(
            Handler::new::<Job, _>(&queue, service)
                .timeout(Duration::from_millis(300))
                .retry_policy(policy),
        );
    let running = Running::start(worker).await;

    let bus = Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    bus.publish(&Job { n: 7 }).await.unwrap();
    assert_eq!(recv(&mut rx, "the first attempt").await, (7, 0));
    assert_eq!(recv(&mut rx, "the retry after the timeout").await, (7, 1));

    let deadline = Instant::now() + Duration::from_secs(15);
    while ns.message_count(&ns.url.dead_letter.queue).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the timed-out message was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing is left on the handler's queue, delivered or not: the worker acknowledged the
    // timed-out deliveries rather than holding them.
    assert_eq!(ns.message_count(&queue).await, 0);
    running.stop().await.unwrap();
    assert_eq!(
        ns.message_count(&queue).await,
        0,
        "no unacknowledged delivery returned on stop"
    );

    let dead = dlq_list(&ns.url, 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason.as_deref(), Some("retries-exhausted"));
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("time")),
        "{:?}",
        dead[0].last_error
    );
    assert_eq!(dlq_purge(&ns.url).await.unwrap(), 1);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_uses_the_reference_keys_and_policies() {
    let Some(url) = jararaca_testing::redis() else {
        return;
    };
    let prefix = jararaca_testing::unique_name("jbus");
    let store = RedisStore::connect(&url)
        .await
        .unwrap()
        .with_prefix(format!("{prefix}:"));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let zset = format!("{prefix}:delayed_messages");
    assert_eq!(store.delayed_messages_key(), zset);

    let message = jararaca_bus::DelayedMessage::of(
        &Job { n: 1 },
        std::time::UNIX_EPOCH + Duration::from_secs(100),
    )
    .unwrap()
    .idempotent("key-1", PayloadPolicy::Ignore, TimePolicy::Greater);
    store.enqueue(message.clone()).await.unwrap();
    let mut earlier = message.clone();
    earlier.dispatch_time = 50;
    earlier.payload = r#"{"n":9}"#.into();
    store.enqueue(earlier).await.unwrap();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&zset)
        .arg("key-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, 100.0, "GT keeps the later time");
    let json: String = redis::cmd("GET")
        .arg(format!("{prefix}:delayed_messages_metadata:key-1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(json.starts_with(r#"{"message_topic":"job.run","idempotency_key":"key-1","dispatch_time":100,"payload":"{\"n\":1}""#), "{json}");

    let claimed = store.claim_due(99, 10, 159).await.unwrap();
    assert!(claimed.is_empty());
    let claimed = store.claim_due(100, 10, 160).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "key-1");
    assert_eq!(claimed[0].message.payload, r#"{"n":1}"#);
    assert!(
        store.claim_due(159, 10, 219).await.unwrap().is_empty(),
        "leased to one claimer"
    );
    // Its claimer died before publishing: the lease ends and the message is due again, its
    // metadata never having left Redis.
    let in_flight: f64 = redis::cmd("ZSCORE")
        .arg(format!("{prefix}:delayed_messages_in_flight"))
        .arg("key-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(in_flight, 160.0);
    let again = store.claim_due(160, 10, 220).await.unwrap();
    assert_eq!(again.len(), 1, "reclaimed after its lease");
    assert_eq!(again[0].id, "key-1");
    store.complete("key-1").await.unwrap();
    assert!(
        store.claim_due(1000, 10, 1060).await.unwrap().is_empty(),
        "completed: gone"
    );
    let left: i64 = redis::cmd("EXISTS")
        .arg(&zset)
        .arg(format!("{prefix}:delayed_messages_in_flight"))
        .arg(format!("{prefix}:delayed_messages_metadata:key-1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_finishes_in_flight_messages() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let queue = ns.queue("Jobs.slow");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let finished = Arc::new(Mutex::new(0));
    let done = Arc::clone(&finished);
    let service = typed(move |_job: Job, _d: Delivery| {
        let (tx, done) = (tx.clone(), Arc::clone(&done));
        async move {
            tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            *done.lock().unwrap() += 1;
            Ok(())
        }
    });
    let worker = Worker::amqp(ns.url.clone())
        .grace_period(Duration::from_secs(10))
        .handler(Handler::new::<Job, _>(&queue, service));
    let running = Running::start(worker).await;
    Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    recv(&mut rx, "the handler started").await;
    running.stop().await.unwrap();
    assert_eq!(
        *finished.lock().unwrap(),
        1,
        "the in-flight handler finished"
    );
    assert_eq!(
        ns.message_count(&queue).await,
        0,
        "and its message was acknowledged"
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stuck = {
        let tx = tx.clone();
        typed(move |_job: Job, d: Delivery| {
            let tx = tx.clone();
            async move {
                tx.send((d.redelivered(), d.retry_count())).unwrap();
                std::future::pending::<()>().await;
                Ok(())
            }
        })
    };
    let first =
        Running::start(Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, stuck)))
            .await;
    Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    assert_eq!(recv(&mut rx, "first delivery").await, (false, 0));
    // Killed mid-message: its connection goes away without an ack, and the worker, being
    // dropped itself, leaves the delivery to the broker rather than sending a copy.
    first.task.abort();
    let _ = first.task.await;

    let service = typed(move |_job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((d.redelivered(), d.retry_count())).unwrap();
            Ok(())
        }
    });
    let second = Running::start(
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, service)),
    )
    .await;
    assert_eq!(
        recv(&mut rx, "redelivery").await,
        (true, 0),
        "redelivered to the next worker"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "and only once");
    second.stop().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_resumes_after_the_broker_closes_its_connection() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    if rabbitmqctl(&["list_connections", "-q", "pid"]).is_none() {
        assert!(
            !jararaca_testing::services_required(),
            "rabbitmqctl is needed to close connections"
        );
        eprintln!("skipping: rabbitmqctl is not available");
        return;
    }
    let queue = ns.queue("Jobs.run");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, _d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(job.n).unwrap();
            Ok(())
        }
    });
    let running = Running::start(
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, service)),
    )
    .await;
    let bus = Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    bus.publish(&Job { n: 1 }).await.unwrap();
    assert_eq!(recv(&mut rx, "before the close").await, 1);

    let listing = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"]).unwrap();
    let marker = format!("jararaca worker {}", ns.name);
    let pid = listing
        .lines()
        .find(|l| l.contains(&marker))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the worker's connection is not listed: {listing}"))
        .to_string();
    rabbitmqctl(&["close_connection", &pid, "closed by the test"]).expect("closing the connection");

    bus.publish(&Job { n: 2 }).await.unwrap();
    assert_eq!(recv(&mut rx, "after the reconnect").await, 2);
    running.stop().await.unwrap();
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_topology_fails_to_start() {
    let Some(ns) = Namespace::new() else { return };
    let service = typed(|_job: Job, _d: Delivery| async { Ok(()) });
    let worker =
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>("job.run.nowhere", service));
    let result = tokio::time::timeout(Duration::from_secs(30), worker.run(std::future::pending()))
        .await
        .expect("the worker gave up in time");
    match result {
        Err(BusError::MissingTopology { name, .. }) => assert_eq!(name, ns.name),
        other => panic!("expected missing topology, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_then_dead_lettered_and_the_queue_carries_on() {
    let Some(mut ns) = Namespace::new() else {
        return;
    };
    let Some(store) = redis_store(&ns.name).await else {
        return;
    };
    let queue = ns.queue("Jobs.explodes");
    ns.declare(&Topology::new().queue(QueueSpec::handler(&queue, "job.run")))
        .await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((job.n, d.retry_count())).unwrap();
            if job.n == 1 {
                panic!("job {} exploded", job.n);
            }
            Ok::<(), BoxError>(())
        }
    });
    let policy = RetryPolicy::default()
        .max_retries(2)
        .initial_delay(Duration::from_millis(200))
        .jitter(false);
    // One message at a time: a panic that left its delivery unsettled would block the queue.
    let mut url = ns.url.clone();
    url.prefetch_count = Some(1);
    let worker = Worker::amqp(url)
        .store(Arc::new(store.clone()))
        .pump(Duration::from_millis(100))
        .handler(Handler::new::<Job, _>(&queue, service).retry_policy(policy));
    let running = Running::start(worker).await;

    let bus = Bus::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    bus.publish(&Job { n: 1 }).await.unwrap();
    for expected in 0..=2 {
        assert_eq!(recv(&mut rx, "an attempt of job 1").await, (1, expected));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while ns.message_count(&ns.url.dead_letter.queue).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the panicking message was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    bus.publish(&Job { n: 2 }).await.unwrap();
    assert_eq!(recv(&mut rx, "the next message").await, (2, 0));
    running.stop().await.unwrap();
    assert_eq!(ns.message_count(&queue).await, 0, "nothing left unsettled");

    let dead = dlq_list(&ns.url, 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(letter.body, br#"{"n":1}"#);
    assert_eq!(letter.queue.as_deref(), Some(queue.as_str()));
    assert_eq!(letter.reason.as_deref(), Some("retries-exhausted"));
    assert_eq!(letter.retry_count, 2);
    assert_eq!(
        letter.headers.get(LAST_ERROR),
        Some(&HeaderValue::from("the handler panicked: job 1 exploded"))
    );
    assert_eq!(
        letter.headers.get(DEAD_LETTER_REASON),
        Some(&HeaderValue::from("retries-exhausted"))
    );
    assert_eq!(dlq_purge(&ns.url).await.unwrap(), 1);
    ns.cleanup().await;
}
