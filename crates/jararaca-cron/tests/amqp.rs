//! The beat and the worker on the real RabbitMQ and Redis: each tick dispatched once by
//! several beats, no overlap across workers, timeouts that cancel and release.
//!
//! Each test has its own exchange, dead-letter names and queues, and its own Redis key
//! prefix (the reference's key names after it), so tests run in parallel.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Namespace, stopper};
use jararaca_bus::{
    AmqpPublisher, Bus, Message, MessageExt, MessageKind, Outgoing, Publisher, Route, Worker,
};
use jararaca_cron::{
    ActionFailure, ActionHost, Beat, BeatAction, BeatStore, CronExpr, ScheduleDispatchData,
    ScheduledAction,
};

fn every_second() -> CronExpr {
    "* * * * * *".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_beats_dispatch_each_tick_exactly_once() {
    let Some(mut ns) = Namespace::new("cron_three_beats") else {
        return;
    };
    let id = format!("{}.Jobs.every_second", ns.name);
    ns.declare(&[&id]).await;
    let recorder = ns.record(&id).await;
    let ticks: usize = std::env::var("CRON_TEST_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);

    let (stop, until) = stopper();
    let mut beats = Vec::new();
    for _ in 0..3 {
        let publisher: Arc<dyn Publisher> =
            Arc::new(AmqpPublisher::connect(&ns.url).await.unwrap());
        let store: Arc<dyn BeatStore> = Arc::new(ns.store().await);
        let beat = Beat::new(store, publisher).action(BeatAction {
            id: id.clone(),
            name: None,
            cron: every_second(),
            allow_overlap: true,
        });
        beats.push(tokio::spawn(beat.run(until())));
    }
    // The first dispatch is at once (nothing dispatched before), then one per second.
    recorder
        .wait_for(ticks + 1, Duration::from_secs(ticks as u64 + 10))
        .await;
    let _ = stop.send(true);
    for beat in beats {
        beat.await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = recorder.seen();
    let seen = all.len();
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (body, _) in &all {
        *per_second.entry(body.parse().unwrap()).or_default() += 1;
    }
    let first = *per_second.keys().next().unwrap();
    let last = *per_second.keys().last().unwrap();
    println!(
        "3 beats: {} triggers for {} distinct seconds ({first}..={last})",
        all.len(),
        per_second.len()
    );
    let twice: Vec<_> = per_second.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks dispatched more than once: {twice:?}"
    );
    let missing: Vec<i64> = (first..=last)
        .filter(|s| !per_second.contains_key(s))
        .collect();
    assert!(missing.is_empty(), "ticks never dispatched: {missing:?}");
    assert!(seen > ticks, "only {seen} triggers");
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_action_without_overlap_never_runs_twice_at_once_on_two_workers() {
    let Some(mut ns) = Namespace::new("cron_overlap") else {
        return;
    };
    let id = format!("{}.Jobs.slow", ns.name);
    ns.declare(&[&id]).await;

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let action = {
        let (running, most, runs) = (Arc::clone(&running), Arc::clone(&most), Arc::clone(&runs));
        ScheduledAction::new("* * * * * *", move |_: ScheduleDispatchData| {
            let (running, most, runs) =
                (Arc::clone(&running), Arc::clone(&most), Arc::clone(&runs));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Slower than its one-second period.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .allow_overlap(false)
    };
    let (stop, until) = stopper();
    let mut workers = Vec::new();
    for _ in 0..2 {
        // Each worker its own connection to Redis, as two processes would have.
        let host = ActionHost::new(Arc::new(ns.store().await)).lease(Duration::from_secs(1));
        let worker = Worker::amqp(ns.url.clone()).handler(host.handler(id.clone(), &action));
        workers.push(tokio::spawn(worker.run(until())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A beat that dispatches every second whatever runs, so the workers' lease alone keeps
    // the runs apart (the lease of 1 s is renewed while a 2.5 s run lasts).
    let publisher: Arc<dyn Publisher> = Arc::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    let beat = Beat::new(Arc::new(ns.store().await), publisher).action(BeatAction {
        id: id.clone(),
        name: None,
        cron: every_second(),
        allow_overlap: true,
    });
    let beat = tokio::spawn(beat.run(until()));
    tokio::time::sleep(Duration::from_secs(9)).await;
    let _ = stop.send(true);
    beat.await.unwrap().unwrap();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    let (most, runs) = (most.load(Ordering::SeqCst), runs.load(Ordering::SeqCst));
    println!("overlap: {runs} runs, at most {most} at once");
    assert_eq!(most, 1, "two runs overlapped");
    assert!(runs >= 2, "only {runs} runs in 9 s");
    let store = ns.store().await;
    assert!(
        !store.is_executing(&id).await.unwrap(),
        "a lease was left behind"
    );
    ns.cleanup().await;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Purged {
    count: u32,
}

impl Message for Purged {
    const TOPIC: &'static str = "cron.test.purged";
    const KIND: MessageKind = MessageKind::Event;
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn trigger(id: &str, timestamp: i64) -> Outgoing {
    Outgoing {
        route: Route::Main(id.to_string()),
        body: timestamp.to_string().into_bytes(),
        headers: Default::default(),
        message_id: None,
        content_type: None,
        content_encoding: None,
        mandatory: true,
        persistent: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_cancels_the_run_publishes_nothing_and_releases_the_lease() {
    let Some(mut ns) = Namespace::new("cron_timeout") else {
        return;
    };
    let id = format!("{}.Jobs.stuck", ns.name);
    ns.declare(&[&id]).await;
    let published = ns
        .record(&jararaca_bus::topic_routing_key(Purged::TOPIC))
        .await;

    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let action = {
        let calls = Arc::clone(&calls);
        let failures = Arc::clone(&failures);
        ScheduledAction::new("0 0 1 1 *", move |_: ScheduleDispatchData| {
            let calls = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Purged { count: 1 }.publish().await?;
                if calls == 0 {
                    // The first run hangs past its timeout.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok(())
            }
        })
        .timeout(Duration::from_millis(300))
        .on_error(move |name, tick, failure| {
            assert!(matches!(failure, ActionFailure::TimedOut(_)), "{failure}");
            failures
                .lock()
                .unwrap()
                .push(format!("{name}@{}", tick.timestamp));
        })
    };
    let store: Arc<dyn BeatStore> = Arc::new(ns.store().await);
    let publisher = Arc::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    let host = ActionHost::new(Arc::clone(&store)).bus(Bus::from_arc(publisher.clone()));
    let (stop, until) = stopper();
    let worker = tokio::spawn(
        Worker::amqp(ns.url.clone())
            .handler(host.handler(id.clone(), &action))
            .run(until()),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let first = unix_now();
    publisher.publish(trigger(&id, first)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while failures.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*failures.lock().unwrap(), vec![format!("{id}@{first}")]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !store.is_executing(&id).await.unwrap(),
        "the lease is released"
    );
    assert!(
        published.seen().is_empty(),
        "a cancelled run published {:?}",
        published.seen()
    );

    // The next trigger runs (the lease is free) and its message goes out.
    publisher.publish(trigger(&id, first + 1)).await.unwrap();
    let seen = published.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 1, "the second run published once");
    assert_eq!(seen[0].0, r#"{"count":1}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
    ns.cleanup().await;
}
