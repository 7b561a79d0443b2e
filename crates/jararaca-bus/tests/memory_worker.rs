//! The worker on the in-memory broker: dispositions, retries, dead letters, the unit of work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jararaca_bus::headers::{DEAD_LETTER_QUEUE, LAST_ERROR, RETRY_COUNT};
use jararaca_bus::{
    Bus, BusLayer, Delivery, Disposition, Handler, HeaderValue, Headers, InMemoryBroker,
    InMemoryStore, Message, MessageExt, MessageKind, Outgoing, Route, Worker, typed,
};
use jararaca_di::{BoxError, UnitOfWorkLayer};
use jararaca_retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceBuilder;

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u32,
}

impl Message for Job {
    const TOPIC: &'static str = "job.run";
    const KIND: MessageKind = MessageKind::Task;
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    n: u32,
}

impl Message for Done {
    const TOPIC: &'static str = "job.done";
    const KIND: MessageKind = MessageKind::Event;
}

const QUEUE: &str = "job.run.tests.Jobs.run";
const DONE_QUEUE: &str = "job.done.tests.Observer.seen";

/// Immediate retries, so tests do not wait for the pump.
fn quick_retries(max: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(max)
        .initial_delay(Duration::ZERO)
        .jitter(false)
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), jararaca_bus::BusError>>,
}

impl Running {
    async fn start(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        // Let the worker bind its queues.
        tokio::time::sleep(Duration::from_millis(30)).await;
        Self {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn raw(body: &str) -> Outgoing {
    Outgoing {
        route: Route::Main("job.run.#".into()),
        body: body.as_bytes().to_vec(),
        headers: Headers::new(),
        message_id: Some("m-1".into()),
        content_type: None,
        content_encoding: None,
        mandatory: true,
        persistent: true,
    }
}

#[tokio::test]
async fn handled_messages_publish_after_commit_without_retry_headers() {
    let broker = InMemoryBroker::new();
    broker.declare_queue(DONE_QUEUE, "job.done.#");
    let bus = Bus::new(broker.clone());
    let layers = ServiceBuilder::new()
        .layer(UnitOfWorkLayer::new())
        .layer(BusLayer::new(bus.clone()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&attempts);
    let service = layers.service(typed(move |job: Job, delivery: Delivery| {
        let seen = Arc::clone(&seen);
        async move {
            Done { n: job.n }.publish().await?;
            // The first attempt fails after staging: nothing it staged may be published.
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err::<(), BoxError>("first attempt fails".into());
            }
            assert_eq!(delivery.attempt(), 2);
            Ok(())
        }
    }));
    let worker = Worker::in_memory(broker.clone())
        .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(quick_retries(3)));
    let running = Running::start(worker).await;

    let mut out = Outgoing::message(&Job { n: 5 }).unwrap();
    out.headers.insert(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    out.headers.insert("tracestate".into(), "vendor=1".into());
    bus.publisher().publish(out).await.unwrap();

    eventually("the retry succeeded", || {
        attempts.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("one Done published", || broker.queue_len(DONE_QUEUE) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let done = broker.peek(DONE_QUEUE);
    assert_eq!(done.len(), 1, "the failed attempt published nothing");
    assert_eq!(done[0].body, br#"{"n":5}"#);
    // The handler's unit is in a trace linked to the publisher's; what it publishes names
    // its own PUBLISH span in that trace, and the trace state travels on.
    let traceparent = done[0].headers.get("traceparent").and_then(|v| v.as_text());
    let published = traceparent
        .as_deref()
        .and_then(jararaca_di::trace::TraceLink::parse)
        .expect("a valid traceparent on the published message");
    assert_ne!(published.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(
        done[0].headers.get("tracestate"),
        Some(&HeaderValue::from("vendor=1")),
        "trace state travels on"
    );
    assert!(
        !done[0].headers.contains_key(RETRY_COUNT),
        "retry headers do not leak"
    );
    assert!(!done[0].headers.contains_key(LAST_ERROR));
    assert_eq!(broker.queue_len(QUEUE), 0);
    running.stop().await;
}

#[tokio::test]
async fn undecodable_bodies_are_dead_lettered_at_once_with_the_reason() {
    let broker = InMemoryBroker::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = typed(move |_job: Job, _d: Delivery| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let worker = Worker::in_memory(broker.clone()).handler(Handler::new::<Job, _>(QUEUE, service));
    let running = Running::start(worker).await;
    broker_publish(&broker, raw("{not json")).await;
    eventually("dead-lettered", || broker.dead_letters().len() == 1).await;
    let letter = &broker.dead_letters()[0];
    assert_eq!(letter.queue, QUEUE);
    assert_eq!(letter.reason, "undecodable");
    assert_eq!(letter.message.body, b"{not json");
    assert_eq!(letter.message.message_id.as_deref(), Some("m-1"));
    let error = letter
        .message
        .headers
        .get(LAST_ERROR)
        .and_then(|v| v.as_text())
        .unwrap();
    assert!(error.contains("not a valid"), "{error}");
    assert_eq!(
        letter.message.headers.get(DEAD_LETTER_QUEUE),
        Some(&HeaderValue::from(QUEUE))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    running.stop().await;
}

async fn broker_publish(broker: &InMemoryBroker, out: Outgoing) {
    jararaca_bus::Publisher::publish(broker, out).await.unwrap();
}

#[tokio::test]
async fn failures_are_retried_with_counts_then_dead_lettered() {
    let broker = InMemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |_job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.retry_count()).unwrap();
            Err::<(), BoxError>(format!("boom {}", d.attempt()).into())
        }
    });
    let worker = Worker::in_memory(broker.clone())
        .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(quick_retries(2)));
    let running = Running::start(worker).await;
    Bus::new(broker.clone())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    for expected in 0..=2 {
        assert_eq!(rx.recv().await, Some(expected));
    }
    eventually("dead-lettered", || broker.dead_letters().len() == 1).await;
    let letter = &broker.dead_letters()[0];
    assert_eq!(letter.reason, "retries-exhausted");
    assert_eq!(
        letter.message.headers.get(RETRY_COUNT),
        Some(&HeaderValue::Int(2))
    );
    assert_eq!(
        letter.message.headers.get(LAST_ERROR),
        Some(&HeaderValue::from("boom 3"))
    );
    assert!(rx.try_recv().is_err(), "no attempt after the budget");
    running.stop().await;
}

#[tokio::test]
async fn delayed_retries_wait_in_the_store() {
    let broker = InMemoryBroker::new();
    let store = InMemoryStore::new();
    let service = typed(|_job: Job, _d: Delivery| async { Err::<(), BoxError>("later".into()) });
    let policy = RetryPolicy::default()
        .max_retries(1)
        .initial_delay(Duration::from_secs(30))
        .jitter(false);
    let worker = Worker::in_memory(broker.clone())
        .store(Arc::new(store.clone()))
        .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(policy));
    let running = Running::start(worker).await;
    Bus::new(broker.clone())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    eventually("a retry is stored", || store.len() == 1).await;
    let (at, retry) = store.pending().remove(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 28..=now + 31).contains(&at),
        "due in about 30 s, at {at} (now {now})"
    );
    assert_eq!(retry.target_queue.as_deref(), Some(QUEUE));
    assert_eq!(retry.message_topic, "job.run");
    assert_eq!(retry.payload, r#"{"n":1}"#);
    assert_eq!(retry.headers.get(RETRY_COUNT), Some(&HeaderValue::Int(1)));
    assert_eq!(
        retry.headers.get(LAST_ERROR),
        Some(&HeaderValue::from("later"))
    );
    assert_eq!(broker.queue_len(QUEUE), 0, "the original was acknowledged");
    running.stop().await;
}

#[tokio::test]
async fn timeouts_count_as_failures() {
    let broker = InMemoryBroker::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = typed(move |_job: Job, _d: Delivery| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    });
    let worker = Worker::in_memory(broker.clone()).handler(
        Handler::new::<Job, _>(QUEUE, service)
            .timeout(Duration::from_millis(50))
            .retry_policy(quick_retries(1)),
    );
    let running = Running::start(worker).await;
    Bus::new(broker.clone())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    eventually("dead-lettered after the timeouts", || {
        broker.dead_letters().len() == 1
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let letter = &broker.dead_letters()[0];
    let error = letter
        .message
        .headers
        .get(LAST_ERROR)
        .and_then(|v| v.as_text())
        .unwrap();
    assert!(error.contains("timed out"), "{error}");
    running.stop().await;
}

#[tokio::test]
async fn explicit_dispositions() {
    let broker = InMemoryBroker::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = typed(move |job: Job, d: Delivery| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            match job.n {
                1 => Err(Disposition::Reject.into()),
                2 if d.retry_count() == 0 => Err(Disposition::Nack.into()),
                3 => {
                    d.ack_now().await?;
                    Err("fails after acking".into())
                }
                _ => Ok(()),
            }
        }
    });
    let worker = Worker::in_memory(broker.clone())
        .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(quick_retries(3)));
    let running = Running::start(worker).await;
    let bus = Bus::new(broker.clone());
    for n in 1..=3 {
        bus.publish(&Job { n }).await.unwrap();
    }
    eventually("four runs", || calls.load(Ordering::SeqCst) == 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dead = broker.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "rejected");
    assert_eq!(dead[0].message.body, br#"{"n":1}"#);
    assert_eq!(broker.queue_len(QUEUE), 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the early-acked failure was not retried"
    );
    running.stop().await;
}

#[tokio::test]
async fn concurrency_is_bounded_by_prefetch_and_stop_drains() {
    let broker = InMemoryBroker::new();
    let running_now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (r, p, f) = (
        Arc::clone(&running_now),
        Arc::clone(&peak),
        Arc::clone(&finished),
    );
    let service = typed(move |_job: Job, _d: Delivery| {
        let (r, p, f) = (Arc::clone(&r), Arc::clone(&p), Arc::clone(&f));
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let worker = Worker::in_memory(broker.clone())
        .default_prefetch(2)
        .grace_period(Duration::from_secs(5))
        .handler(Handler::new::<Job, _>(QUEUE, service));
    let running = Running::start(worker).await;
    let bus = Bus::new(broker.clone());
    for n in 0..6 {
        bus.publish(&Job { n }).await.unwrap();
    }
    eventually("two running", || running_now.load(Ordering::SeqCst) == 2).await;
    running.stop().await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than the prefetch at once"
    );
    let done = finished.load(Ordering::SeqCst);
    assert!(
        done >= 2,
        "in-flight handlers finished during the grace period"
    );
    assert_eq!(
        done + broker.queue_len(QUEUE),
        6,
        "the rest stayed on the queue"
    );
}

#[tokio::test]
async fn abandoned_messages_return_to_the_queue_after_the_grace_period() {
    let broker = InMemoryBroker::new();
    let service = typed(|_job: Job, _d: Delivery| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    let worker = Worker::in_memory(broker.clone())
        .grace_period(Duration::from_millis(50))
        .handler(Handler::new::<Job, _>(QUEUE, service));
    let running = Running::start(worker).await;
    Bus::new(broker.clone())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    eventually("taken", || broker.queue_len(QUEUE) == 0).await;
    running.stop().await;
    let back = broker.peek(QUEUE);
    assert_eq!(back.len(), 1);
    assert!(back[0].redelivered);
    assert!(broker.dead_letters().is_empty());
}

#[tokio::test]
async fn handler_filters_and_delays_need_a_store() {
    let broker = InMemoryBroker::new();
    let service = typed(|_job: Job, _d: Delivery| async { Ok(()) });
    let worker = Worker::in_memory(broker.clone())
        .only_handlers(["other"])
        .handler(Handler::new::<Job, _>(QUEUE, service).name("jobs"));
    assert!(worker.topology().queues.is_empty());
    let err = worker.run(async {}).await.unwrap_err();
    assert!(err.to_string().contains("no handler"), "{err}");

    let bus = Bus::new(broker);
    let err = bus
        .delay(&Job { n: 1 }, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("with_store"), "{err}");
    let err = Job { n: 1 }.publish().await.unwrap_err();
    assert!(err.to_string().contains("outside a unit of work"), "{err}");
}

#[tokio::test]
async fn a_panicking_handler_is_retried_then_dead_lettered_and_the_queue_carries_on() {
    let broker = InMemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A plain `Handler` with no layers of its own: the worker catches the panic itself.
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((job.n, d.retry_count())).unwrap();
            if job.n == 1 {
                panic!("job {} exploded", job.n);
            }
            Ok(())
        }
    });
    let worker = Worker::in_memory(broker.clone())
        .default_prefetch(1)
        .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(quick_retries(2)));
    let running = Running::start(worker).await;
    let bus = Bus::new(broker.clone());
    bus.publish(&Job { n: 1 }).await.unwrap();
    for expected in 0..=2 {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the panicking handler ran again");
        assert_eq!(got, Some((1, expected)));
    }
    eventually("dead-lettered", || broker.dead_letters().len() == 1).await;
    let letter = &broker.dead_letters()[0];
    assert_eq!(letter.queue, QUEUE);
    assert_eq!(letter.reason, "retries-exhausted");
    assert_eq!(
        letter.message.headers.get(LAST_ERROR),
        Some(&HeaderValue::from("the handler panicked: job 1 exploded"))
    );
    assert_eq!(
        letter.message.headers.get(RETRY_COUNT),
        Some(&HeaderValue::Int(2))
    );

    bus.publish(&Job { n: 2 }).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the next message was handled");
    assert_eq!(got, Some((2, 0)));
    eventually("the queue is empty", || broker.queue_len(QUEUE) == 0).await;
    assert_eq!(broker.dead_letters().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn a_dropped_delivery_counts_the_attempt_and_cannot_loop_forever() {
    let broker = InMemoryBroker::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stuck = move || {
        let tx = tx.clone();
        typed(move |_job: Job, d: Delivery| {
            let tx = tx.clone();
            async move {
                tx.send(d.retry_count()).unwrap();
                std::future::pending::<()>().await;
                Ok(())
            }
        })
    };
    // Each run is stopped mid-message; the grace period runs out and the delivery is dropped.
    let worker = |service| {
        Worker::in_memory(broker.clone())
            .grace_period(Duration::from_millis(20))
            .handler(Handler::new::<Job, _>(QUEUE, service).retry_policy(quick_retries(1)))
    };
    let running = Running::start(worker(stuck())).await;
    Bus::new(broker.clone())
        .publish(&Job { n: 1 })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(got.expect("the handler ran"), Some(0));
    running.stop().await;
    let back = broker.peek(QUEUE);
    assert_eq!(back.len(), 1, "requeued");
    assert!(back[0].redelivered);
    assert_eq!(back[0].headers.get(RETRY_COUNT), Some(&HeaderValue::Int(1)));
    let error = back[0]
        .headers
        .get(LAST_ERROR)
        .and_then(|v| v.as_text())
        .unwrap()
        .into_owned();
    assert!(error.contains("abandoned"), "{error}");

    // Dropped again with the budget of one retry spent: dead-lettered, not requeued.
    let running = Running::start(worker(stuck())).await;
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(got.expect("the handler ran"), Some(1));
    running.stop().await;
    assert_eq!(broker.queue_len(QUEUE), 0);
    let dead = broker.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "retries-exhausted");
    assert!(
        dead[0]
            .message
            .headers
            .get(LAST_ERROR)
            .and_then(|v| v.as_text())
            .is_some_and(|e| e.contains("abandoned")),
        "{:?}",
        dead[0].message.headers
    );
}

#[tokio::test]
async fn handlers_are_chosen_by_any_name_a_user_sees_and_an_unknown_one_is_an_error() {
    let broker = InMemoryBroker::new();
    let controller = jararaca_bus::MessageController::new("Jobs")
        .handler::<Job, _, _>("on_job", |_job: Job, _d: Delivery| async { Ok(()) });
    let handlers = controller.handlers("svc");
    let queue = handlers[0].queue().to_owned();
    let names: Vec<&str> = handlers[0].names().collect();
    for name in ["on_job", "Jobs.on_job", queue.as_str()] {
        assert!(names.contains(&name), "{name} in {names:?}");
        let worker = handlers
            .iter()
            .cloned()
            .fold(Worker::in_memory(broker.clone()), Worker::handler)
            .only_handlers([name]);
        assert_eq!(worker.topology().queues.len(), 1, "--handlers {name}");
    }

    let worker = handlers
        .into_iter()
        .fold(Worker::in_memory(broker), Worker::handler)
        .only_handlers(["on_jobs"]);
    let err = worker.run(async {}).await.unwrap_err().to_string();
    assert!(err.contains("no handler is named on_jobs"), "{err}");
    assert!(err.contains("Jobs.on_job") && err.contains(&queue), "{err}");
}
