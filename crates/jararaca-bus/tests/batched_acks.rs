//! Against the real RabbitMQ: the worker acknowledges runs of deliveries with one
//! `basic.ack(multiple)`, and that never costs a message: a worker killed with a batched
//! acknowledgement due but not sent has every one of those messages delivered again; a slow
//! message does not hold back the others; consumers sharing a channel still settle each
//! message once. Each test uses its own exchange, dead-letter names and queues, and deletes
//! them afterwards.

mod common;

use common::Namespace;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jararaca_bus::{
    AmqpPublisher, Bus, BusError, Delivery, Handler, Message, MessageKind, QueueSpec, Topology,
    Worker, declare, typed,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u32,
}

impl Message for Job {
    const TOPIC: &'static str = "job.batched";
    const KIND: MessageKind = MessageKind::Task;
}

/// The variable that makes [`kill_test_child`] run the worker that gets killed.
const CHILD: &str = "JARARACA_BATCHED_ACKS_CHILD";

/// Starts each line of the child's report.
const MARK: &str = "@child: ";

impl Namespace {
    fn new(prefetch: u16) -> Option<Self> {
        Self::with("jbatch", &format!("&prefetch_count={prefetch}"))
    }

    fn queue(&mut self, suffix: &str) -> String {
        let queue = format!("{}.{}.{suffix}", Job::TOPIC, self.name);
        self.queues.push(queue.clone());
        queue
    }

    async fn declare(&self, queues: &[&str]) {
        let topology = queues.iter().fold(Topology::new(), |t, q| {
            t.queue(QueueSpec::handler(*q, Job::TOPIC))
        });
        declare(&self.url, &topology, false).await.unwrap();
    }

    async fn publish(&self, jobs: impl IntoIterator<Item = u32>) {
        let bus = Bus::new(AmqpPublisher::connect(&self.url).await.unwrap());
        for n in jobs {
            bus.publish(&Job { n }).await.unwrap();
        }
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    fn start(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
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

/// Receives reports until every `n` in `expected` was seen, at most `limit`; returns how
/// often each was handled and which came redelivered.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(u32, bool)>,
    expected: &BTreeSet<u32>,
    limit: Duration,
) -> (BTreeMap<u32, u32>, BTreeSet<u32>) {
    let mut seen = BTreeMap::new();
    let mut redelivered = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !expected.iter().all(|n| seen.contains_key(n)) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((n, again))) => {
                *seen.entry(n).or_insert(0) += 1;
                if again {
                    redelivered.insert(n);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    (seen, redelivered)
}

/// What the killed worker acknowledged before the acknowledgement it died on, replayed from
/// its output the same way in the child (to decide when to die) and in the parent.
#[derive(Debug, Default)]
struct Acked {
    /// Every tag up to this one (acknowledged with `multiple`).
    up_to: u64,
    /// Tags acknowledged alone.
    alone: BTreeSet<u64>,
}

impl Acked {
    /// How many deliveries not acknowledged yet a `multiple` acknowledgement of `tag` covers.
    fn covered(&self, tag: u64) -> usize {
        (self.up_to + 1..=tag)
            .filter(|t| !self.alone.contains(t))
            .count()
    }

    fn contains(&self, tag: u64) -> bool {
        tag <= self.up_to || self.alone.contains(&tag)
    }
}

static ACKED: std::sync::Mutex<Acked> = std::sync::Mutex::new(Acked {
    up_to: 0,
    alone: BTreeSet::new(),
});

/// The child's hook: lets acknowledgements of one delivery go (and prints them), and
/// aborts the process on the first that acknowledges a run of several.
fn die_at_a_run(tag: u64, multiple: bool) {
    let mut acked = ACKED.lock().unwrap();
    let mut out = std::io::stdout().lock();
    if !multiple {
        acked.alone.insert(tag);
        let _ = writeln!(out, "{MARK}alone {tag}");
    } else if acked.covered(tag) < 2 {
        acked.up_to = tag;
        let _ = writeln!(out, "{MARK}run {tag}");
    } else {
        let _ = writeln!(out, "{MARK}due {tag} {}", acked.covered(tag));
        let _ = out.flush();
        // No destructor runs and no frame is sent: the kernel closes the socket.
        std::process::abort();
    }
    let _ = out.flush();
}

/// The child side of [`a_worker_killed_before_its_batched_ack_is_sent_loses_nothing`]:
/// with [`CHILD`] set, runs a worker that prints each message it handles and each
/// acknowledgement it sends, and aborts the process when an acknowledgement of a run is
/// about to be sent. Without it, does nothing.
#[test]
fn kill_test_child() {
    let Ok(name) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut ns = Namespace::named(name, "&prefetch_count=32").expect("RabbitMQ is reachable");
        let queue = ns.queue("Jobs.run");
        // The first message finishes after the next seven, so when it does a run of eight
        // is due at once.
        let others = Arc::new(AtomicU32::new(0));
        let seven = Arc::new(Notify::new());
        let service = typed(move |job: Job, d: Delivery| {
            let others = Arc::clone(&others);
            let seven = Arc::clone(&seven);
            async move {
                if job.n == 0 {
                    let waiting = seven.notified();
                    if others.load(Ordering::SeqCst) < 7 {
                        waiting.await;
                    }
                } else if others.fetch_add(1, Ordering::SeqCst) + 1 == 7 {
                    seven.notify_one();
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{MARK}handled {} {}", job.n, d.redelivered());
                let _ = out.flush();
                Ok(())
            }
        });
        let worker = Worker::amqp(ns.url.clone())
            .before_batched_ack(die_at_a_run)
            .handler(Handler::new::<Job, _>(&queue, service));
        let _ =
            tokio::time::timeout(Duration::from_secs(30), worker.run(std::future::pending())).await;
        panic!("the worker was not killed within 30 s: no acknowledgement of a run came due");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_before_its_batched_ack_is_sent_loses_nothing() {
    let Some(mut ns) = Namespace::new(32) else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&[&queue]).await;
    const SENT: u32 = 64;
    ns.publish(0..SENT).await;

    // The first worker, in a process of its own, killed between "acknowledgement due" and
    // "acknowledgement sent".
    let name = ns.name.clone();
    let child = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_test_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            child.status.signal(),
            Some(6),
            "the child aborted at the acknowledgement ({:?}); its output:\n{stdout}",
            child.status
        );
    }
    // Deliveries came in queue order on a fresh channel: tag `t` is message `t - 1`.
    let mut handled_first = BTreeSet::new();
    let mut acked = Acked::default();
    let mut due = None;
    for line in stdout.lines() {
        // The test harness may have started the line.
        let Some((_, line)) = line.split_once(MARK) else {
            continue;
        };
        let mut words = line.split_whitespace();
        let (Some(what), Some(number)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match what {
            "handled" => {
                handled_first.insert(number as u32);
            }
            "alone" => {
                acked.alone.insert(number);
            }
            "run" => acked.up_to = number,
            "due" => due = Some((number, acked.covered(number))),
            _ => {}
        }
    }
    let (tag, count) =
        due.unwrap_or_else(|| panic!("no acknowledgement of a run came due:\n{stdout}"));
    assert!(count > 1, "a run of deliveries, not one: {stdout}");
    let acked_first: BTreeSet<u32> = (1..=u64::from(SENT))
        .filter(|t| acked.contains(*t))
        .map(|t| t as u32 - 1)
        .collect();
    let unacked_run: BTreeSet<u32> = (1..=tag)
        .filter(|t| !acked.contains(*t))
        .map(|t| t as u32 - 1)
        .collect();
    assert!(
        acked_first.is_subset(&handled_first),
        "acknowledged only after being handled"
    );
    assert!(
        unacked_run.is_subset(&handled_first),
        "every delivery of the run was handled before its acknowledgement came due: {stdout}"
    );

    // The next worker gets everything the first did not acknowledge: what it handled but
    // never acknowledged (the run it died on among it) comes again, marked redelivered.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send((job.n, d.redelivered())).unwrap();
            Ok(())
        }
    });
    let second = Running::start(
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, service)),
    );
    let expected: BTreeSet<u32> = (0..SENT).filter(|n| !acked_first.contains(n)).collect();
    let (seen, redelivered) = collect(&mut rx, &expected, Duration::from_secs(30)).await;
    second.stop().await;
    println!(
        "sent {SENT}; the killed worker handled {}, acknowledged {} and died with an \
         acknowledgement of {count} due (tag {tag}); the next worker handled {}, {} of them \
         redelivered",
        handled_first.len(),
        acked_first.len(),
        seen.len(),
        redelivered.len()
    );
    let missing: Vec<u32> = expected
        .iter()
        .filter(|n| !seen.contains_key(n))
        .copied()
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        seen.keys().all(|n| !acked_first.contains(n)),
        "what was acknowledged stayed acknowledged"
    );
    let unacked_handled: BTreeSet<u32> = handled_first.difference(&acked_first).copied().collect();
    assert!(
        unacked_handled.is_subset(&redelivered),
        "everything handled but not acknowledged came back: {unacked_handled:?}, \
         redelivered {redelivered:?}"
    );
    assert_eq!(ns.message_count(&queue).await, 0, "all acknowledged now");
    assert_eq!(ns.message_count(&ns.url.dead_letter.queue).await, 0);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_message_does_not_hold_back_the_others() {
    let Some(mut ns) = Namespace::new(8) else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&[&queue]).await;
    const SENT: u32 = 200;
    ns.publish(0..SENT).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            // The first delivery (tag 1) holds the front of the window for 5 s.
            if job.n == 0 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            tx.send((job.n, d.redelivered())).unwrap();
            Ok(())
        }
    });
    let running = Running::start(
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, service)),
    );
    // With a prefetch of 8 the broker sends the others only as they are acknowledged:
    // they all get through while the first is still running.
    let others: BTreeSet<u32> = (1..SENT).collect();
    let started = Instant::now();
    let (seen, _) = collect(&mut rx, &others, Duration::from_secs(4)).await;
    let took = started.elapsed();
    println!(
        "{} of {} messages behind a 5 s one handled in {took:?}",
        seen.len(),
        others.len()
    );
    assert_eq!(seen.len(), others.len(), "the others were held back");
    assert!(!seen.contains_key(&0), "the slow one was still running");
    let (seen, _) = collect(&mut rx, &BTreeSet::from([0]), Duration::from_secs(10)).await;
    assert_eq!(seen.get(&0), Some(&1));
    running.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "nothing was delivered twice");
    assert_eq!(ns.message_count(&queue).await, 0);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_sharing_a_channel_settle_each_message_once() {
    let Some(mut ns) = Namespace::new(16) else {
        return;
    };
    let first = ns.queue("Jobs.first");
    let second = ns.queue("Jobs.second");
    ns.declare(&[&first, &second]).await;
    const SENT: u32 = 300;
    // Every message goes to both queues.
    ns.publish(0..SENT).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = |queue: &str, offset: u32| {
        let tx = tx.clone();
        let service = typed(move |job: Job, d: Delivery| {
            let tx = tx.clone();
            async move {
                // Out of order: some take a little longer.
                if job.n.is_multiple_of(7) {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                tx.send((job.n + offset, d.redelivered())).unwrap();
                Ok(())
            }
        });
        Handler::new::<Job, _>(queue, service).channel_id("shared")
    };
    let running = Running::start(
        Worker::amqp(ns.url.clone())
            .handler(handler(&first, 0))
            .handler(handler(&second, SENT)),
    );
    let expected: BTreeSet<u32> = (0..2 * SENT).collect();
    let (seen, redelivered) = collect(&mut rx, &expected, Duration::from_secs(30)).await;
    running.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Ok((n, again)) = rx.try_recv() {
        panic!("{n} was delivered again (redelivered: {again})");
    }
    println!(
        "{} deliveries on one channel, {} redelivered",
        seen.len(),
        redelivered.len()
    );
    assert_eq!(seen.len(), expected.len(), "some were not handled");
    assert!(
        seen.values().all(|&c| c == 1),
        "some were handled twice: {seen:?}"
    );
    assert!(redelivered.is_empty(), "none came twice: {redelivered:?}");
    assert_eq!(ns.message_count(&first).await, 0);
    assert_eq!(ns.message_count(&second).await, 0);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_deliveries_are_settled_alone_between_runs() {
    let Some(mut ns) = Namespace::new(16) else {
        return;
    };
    let queue = ns.queue("Jobs.run");
    ns.declare(&[&queue]).await;
    const SENT: u32 = 40;
    ns.publish(0..SENT).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stuck = {
        let tx = tx.clone();
        typed(move |job: Job, d: Delivery| {
            let tx = tx.clone();
            async move {
                if job.n.is_multiple_of(5) && d.retry_count() == 0 {
                    std::future::pending::<()>().await;
                }
                tx.send((job.n, d.redelivered())).unwrap();
                Ok(())
            }
        })
    };
    let first = Running::start(
        Worker::amqp(ns.url.clone())
            .grace_period(Duration::ZERO)
            .handler(Handler::new::<Job, _>(&queue, stuck)),
    );
    let fast: BTreeSet<u32> = (0..SENT).filter(|n| n % 5 != 0).collect();
    let (seen, _) = collect(&mut rx, &fast, Duration::from_secs(20)).await;
    assert_eq!(seen.len(), fast.len());
    // The stuck ones are abandoned at the stop: each goes back as a copy counting the
    // attempt and its original is acknowledged alone, while the fast ones' acknowledgements
    // go in runs around them.
    first.stop().await;

    let service = typed(move |job: Job, d: Delivery| {
        let tx = tx.clone();
        async move {
            assert_eq!(d.retry_count(), 1, "{} is the abandoned copy", job.n);
            tx.send((job.n, d.redelivered())).unwrap();
            Ok(())
        }
    });
    let second = Running::start(
        Worker::amqp(ns.url.clone()).handler(Handler::new::<Job, _>(&queue, service)),
    );
    let abandoned: BTreeSet<u32> = (0..SENT).filter(|n| n % 5 == 0).collect();
    let (again, redelivered) = collect(&mut rx, &abandoned, Duration::from_secs(20)).await;
    second.stop().await;
    println!(
        "{} handled, {} abandoned and handled again as copies",
        seen.len(),
        again.len()
    );
    assert_eq!(again.keys().copied().collect::<BTreeSet<_>>(), abandoned);
    assert!(again.values().all(|&c| c == 1), "{again:?}");
    assert!(
        redelivered.is_empty(),
        "no original came back: {redelivered:?}"
    );
    assert!(rx.try_recv().is_err(), "no fast one came back");
    assert_eq!(ns.message_count(&queue).await, 0);
    ns.cleanup().await;
}
