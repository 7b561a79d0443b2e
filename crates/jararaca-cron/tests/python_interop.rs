//! Python jararaca 0.5.13 and our beat and worker on one RabbitMQ and one Redis: a Python
//! beat's trigger runs our action, our beat's trigger runs a Python action, and our beat
//! beside a Python beat still dispatches each tick once.
//!
//! The Python side runs in a virtual environment built by the bus crate's
//! `interop/setup.sh` (the one its interop tests use). Python services use the plain Redis
//! key names (`beat_lock`, `last_dispatch_time:<id>`), so each test keeps its keys apart in a
//! Redis database of its own, and the fixed `dlx`/`dlq` the Python worker checks for.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Namespace, stopper};
use jararaca_bus::{AmqpPublisher, BrokerUrl, Publisher, Worker};
use jararaca_cron::{
    ActionHost, Beat, BeatAction, BeatStore, RedisBeatStore, ScheduleDispatchData, ScheduledAction,
};

/// The Redis databases of these tests (the bus interop tests use 11, the bench 13).
const DB_PYTHON_BEAT_RUST_ACTION: u32 = 12;
const DB_RUST_BEAT_PYTHON_ACTION: u32 = 14;
const DB_TWO_BEATS: u32 = 15;

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../jararaca-bus/interop/setup.sh")
}

fn venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-jararaca-0.5.13");
        std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).map_err(|e| e.to_string())?;
        let output = Command::new("bash")
            .arg(setup_script())
            .arg(&venv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        if output.status.success() {
            Ok(venv)
        } else {
            Err(format!(
                "installing Python jararaca 0.5.13 failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    })
    .clone()
}

async fn python() -> Option<PathBuf> {
    match tokio::task::spawn_blocking(venv).await.unwrap() {
        Ok(venv) => Some(venv),
        Err(reason) if jararaca_testing::services_required() => panic!("{reason}"),
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// A running Python process, killed when dropped.
struct PythonProcess {
    child: Child,
    log: PathBuf,
}

impl PythonProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python app module `<name>.py` in its own folder, with a controller `Jobs` whose
/// scheduled action `tick` runs every second and appends its dispatch timestamp to
/// `INTEROP_OUT`.
fn python_app(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.py")),
        r#"import os

from jararaca import MessageBusController, Microservice, ScheduledAction
from jararaca.messagebus.decorators import ScheduleDispatchData


@MessageBusController()
class Jobs:
    @ScheduledAction("* * * * * *")
    async def tick(self, data: ScheduleDispatchData) -> None:
        with open(os.environ["INTEROP_OUT"], "a", encoding="utf-8") as out:
            out.write(f"{data.timestamp}\n")


app = Microservice(controllers=[Jobs])
"#,
    )
    .unwrap();
    dir
}

fn spawn(venv: &Path, dir: &Path, args: &[&str]) -> PythonProcess {
    let log = dir.join(format!("{}.log", args[0]));
    let out = File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(venv.join("bin").join("jararaca"))
        .args(args)
        .arg("--src-dir")
        .arg(dir)
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("INTEROP_OUT", dir.join("out.txt"))
        .env_remove("BROKER_URL")
        .env_remove("BACKEND_URL")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    PythonProcess { child, log }
}

/// A namespace whose dead-letter objects are the fixed `dlx`/`dlq` Python checks for
/// (declared if missing, never deleted: other services share them).
fn python_namespace(prefix: &str) -> Option<Namespace> {
    let mut ns = Namespace::new(prefix)?;
    let amqp = jararaca_testing::rabbitmq()?;
    ns.url = BrokerUrl::parse(&format!("{amqp}?exchange={}&prefetch_count=4", ns.name)).unwrap();
    Some(ns)
}

async fn flush(redis: &str) {
    let client = redis::Client::open(redis).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut connection)
        .await
        .unwrap();
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn db(redis: &str, db: u32) -> String {
    format!("{}/{db}", redis.trim_end_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_beats_trigger_runs_our_action() {
    let Some(mut ns) = python_namespace("cron_py_beat") else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let id = format!("{}.Jobs.tick", ns.name);
    ns.declare(&[&id]).await;
    let redis = db(&ns.redis, DB_PYTHON_BEAT_RUST_ACTION);
    flush(&redis).await;

    let ran: Arc<Mutex<Vec<i64>>> = Arc::default();
    let action = {
        let ran = Arc::clone(&ran);
        ScheduledAction::new("* * * * * *", move |tick: ScheduleDispatchData| {
            ran.lock().unwrap().push(tick.timestamp);
            async { Ok(()) }
        })
        .id(id.clone())
    };
    let store: Arc<dyn BeatStore> = Arc::new(RedisBeatStore::connect(&redis).await.unwrap());
    let (stop, until) = stopper();
    let worker = tokio::spawn(
        Worker::amqp(ns.url.clone())
            .handler(ActionHost::new(store).handler(id.clone(), &action))
            .run(until()),
    );
    let dir = python_app(&ns.name);
    let broker_url = format!(
        "{}?exchange={}",
        jararaca_testing::rabbitmq().unwrap(),
        ns.name
    );
    let beat = spawn(
        &venv,
        &dir,
        &[
            "beat",
            &format!("{}:app", ns.name),
            "--broker-url",
            &broker_url,
            "--backend-url",
            &redis,
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ran.lock().unwrap().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ran = ran.lock().unwrap().clone();
    assert!(
        ran.len() >= 3,
        "our action ran {ran:?}; the Python beat said:\n{}",
        beat.log()
    );
    drop(beat);
    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
    flush(&redis).await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup_keeping_dead_letters().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_beats_trigger_runs_a_python_action() {
    let Some(mut ns) = python_namespace("cron_py_action") else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let id = format!("{}.Jobs.tick", ns.name);
    ns.declare(&[&id]).await;
    let redis = db(&ns.redis, DB_RUST_BEAT_PYTHON_ACTION);
    flush(&redis).await;
    let dir = python_app(&ns.name);
    let broker_url = format!(
        "{}?exchange={}&prefetch_count=1",
        jararaca_testing::rabbitmq().unwrap(),
        ns.name
    );
    let worker = spawn(
        &venv,
        &dir,
        &[
            "worker",
            &format!("{}:app", ns.name),
            "--broker-url",
            &broker_url,
            "--backend-url",
            &redis,
        ],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let publisher: Arc<dyn Publisher> = Arc::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    let beat = Beat::new(
        Arc::new(RedisBeatStore::connect(&redis).await.unwrap()),
        publisher,
    )
    .action(BeatAction {
        id: id.clone(),
        name: None,
        cron: "* * * * * *".parse().unwrap(),
        allow_overlap: true,
    });
    let (stop, until) = stopper();
    let beat = tokio::spawn(beat.run(until()));
    let out = dir.join("out.txt");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines: Vec<i64> = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if lines.len() >= 3 || tokio::time::Instant::now() >= deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop.send(true);
    beat.await.unwrap().unwrap();
    assert!(
        lines.len() >= 3,
        "the Python action ran {lines:?}; the Python worker said:\n{}",
        worker.log()
    );
    drop(worker);
    flush(&redis).await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup_keeping_dead_letters().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_beat_beside_a_python_beat_dispatches_each_tick_once() {
    let Some(mut ns) = python_namespace("cron_py_two_beats") else {
        return;
    };
    let Some(venv) = python().await else {
        return;
    };
    let id = format!("{}.Jobs.tick", ns.name);
    ns.declare(&[&id]).await;
    let recorder = ns.record(&id).await;
    let redis = db(&ns.redis, DB_TWO_BEATS);
    flush(&redis).await;
    let dir = python_app(&ns.name);
    let broker_url = format!(
        "{}?exchange={}",
        jararaca_testing::rabbitmq().unwrap(),
        ns.name
    );
    let python_beat = spawn(
        &venv,
        &dir,
        &[
            "beat",
            &format!("{}:app", ns.name),
            "--broker-url",
            &broker_url,
            "--backend-url",
            &redis,
        ],
    );
    // The Python beat alone first, then both, then the Python beat alone again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ours_sent = Arc::new(AtomicUsize::new(0));
    let sent = Arc::clone(&ours_sent);
    let publisher: Arc<dyn Publisher> = Arc::new(AmqpPublisher::connect(&ns.url).await.unwrap());
    let beat = Beat::new(
        Arc::new(RedisBeatStore::connect(&redis).await.unwrap()),
        publisher,
    )
    .action(BeatAction {
        id: id.clone(),
        name: None,
        cron: "* * * * * *".parse().unwrap(),
        allow_overlap: true,
    })
    .on_dispatch(move |_, _| {
        sent.fetch_add(1, Ordering::SeqCst);
    });
    let (stop, until) = stopper();
    let ours_from = unix_now();
    let beat = tokio::spawn(beat.run(until()));
    tokio::time::sleep(Duration::from_secs(15)).await;
    let _ = stop.send(true);
    beat.await.unwrap().unwrap();
    let ours_until = unix_now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(python_beat);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let all = recorder.seen();
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (body, _) in &all {
        *per_second.entry(body.trim().parse().unwrap()).or_default() += 1;
    }
    let ours = ours_sent.load(Ordering::SeqCst);
    let theirs = all.len() - ours;
    println!(
        "ours beside Python: {} triggers ({ours} from our beat, {theirs} from Python's) for {} distinct seconds",
        all.len(),
        per_second.len()
    );
    let twice: Vec<_> = per_second.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks dispatched more than once: {twice:?}"
    );
    assert!(ours >= 10 && theirs >= 5, "ours {ours}, Python's {theirs}");
    // While our beat runs no tick is missed (alone, the Python beat polls and drifts, and
    // then skips a second now and then).
    let missing: Vec<i64> = (ours_from + 1..ours_until)
        .filter(|s| !per_second.contains_key(s))
        .collect();
    assert!(missing.is_empty(), "ticks never dispatched: {missing:?}");
    flush(&redis).await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup_keeping_dead_letters().await;
}
