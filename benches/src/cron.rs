//! `cron`: how late the beat's triggers leave. Over at least `--ticks` ticks (default 300)
//! of `--actions` actions (default 5) scheduled every second, a consumer bound to the
//! actions' routing keys notes when each trigger arrives; the delay is the arrival minus
//! the scheduled second (the trigger's body). Our beat runs on RabbitMQ (`AMQP_URL`) and
//! Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`, keys under a unique prefix); it
//! also reports the time from the scheduled second to the broker's publish confirm. When a
//! Python jararaca 0.5.13 venv is found (`JARARACA_PYTHON_VENV`, else the interop tests'
//! `<target>/tmp/python-jararaca-0.5.13`), its beat is measured the same way, on its own
//! exchange and Redis database 13. Prints `CRON_P99_MS <ours>` and, last, `RATIO cron
//! <python p99 / ours>` (0 without Python).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use jararaca_bus::{AmqpPublisher, BrokerUrl, DeadLetterNames, Publisher, QueueSpec, Topology};
use jararaca_cron::{Beat, BeatAction, BeatStore, RedisBeatStore};
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;

use crate::harness::{self, BoxError};

const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
const PYTHON_REDIS_DB: u32 = 13;

/// Options of the `cron` workload.
#[derive(Debug)]
pub(crate) struct Options {
    ticks: usize,
    actions: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            ticks: 300,
            actions: 5,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            match flag {
                "--ticks" => options.ticks = (number as usize).max(1),
                "--actions" => options.actions = (number as usize).clamp(1, 50),
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(options)
    }
}

pub(crate) fn run(options: &Options) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    harness::report("cron", runtime, bench(options))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos:x}", std::process::id())
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Arrival delays (ms) of the triggers published to `exchange` with the `ids` as routing
/// keys, recorded until dropped.
struct Recorder {
    delays: Arc<Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
    connection: lapin::Connection,
    queue: String,
}

impl Recorder {
    async fn start(url: &BrokerUrl, ids: &[String]) -> Result<Self, BoxError> {
        let connection =
            lapin::Connection::connect(&url.connection_url, lapin::ConnectionProperties::default())
                .await?;
        let channel = connection.create_channel().await?;
        let queue = format!("{}.bench.record", url.exchange);
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for id in ids {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    url.exchange.as_str().into(),
                    id.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "bench".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
        let sink = Arc::clone(&delays);
        let task = tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let arrived = now_secs_f64();
                if let Some(due) = std::str::from_utf8(&delivery.data)
                    .ok()
                    .and_then(|b| b.trim().parse::<f64>().ok())
                {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((arrived - due.floor()) * 1000.0);
                }
            }
        });
        Ok(Self {
            delays,
            task,
            connection,
            queue,
        })
    }

    fn count(&self) -> usize {
        self.delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    async fn wait_for(&self, count: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.count() < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) -> Vec<f64> {
        self.task.abort();
        if let Ok(channel) = self.connection.create_channel().await {
            let _ = channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.connection.close(200, "done".into()).await;
        self.delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// p50, p99 and max of `values` (sorted in place).
fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), values[values.len() - 1])
}

async fn cleanup(url: &BrokerUrl, queues: &[String]) {
    let Ok(connection) =
        lapin::Connection::connect(&url.connection_url, lapin::ConnectionProperties::default())
            .await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in queues.iter().chain([&url.dead_letter.queue]) {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [&url.exchange, &url.dead_letter.exchange] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

fn namespace(amqp: &str, name: &str) -> Result<BrokerUrl, BoxError> {
    Ok(BrokerUrl::parse(&format!("{amqp}?exchange={name}"))?
        .dead_letter(DeadLetterNames::prefixed(name)))
}

async fn bench(options: &Options) -> Result<f64, BoxError> {
    let amqp = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP.to_string());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.to_string());
    let seconds = options.ticks.div_ceil(options.actions) as u64;
    println!(
        "cron: {} actions every second for {seconds} s ({} ticks)",
        options.actions,
        seconds as usize * options.actions
    );

    let ours = measure_ours(&amqp, &redis, options, seconds).await?;
    let python = match python_venv() {
        Some(venv) => Some(measure_python(&venv, &amqp, &redis, options, seconds).await?),
        None => {
            println!(
                "python: skipped (no venv: set JARARACA_PYTHON_VENV, or run the bus interop \
                 tests once to build it)"
            );
            None
        }
    };
    println!("CRON_P99_MS {ours:.2}");
    Ok(python.map_or(0.0, |p99| p99 / ours.max(0.001)))
}

async fn measure_ours(
    amqp: &str,
    redis: &str,
    options: &Options,
    seconds: u64,
) -> Result<f64, BoxError> {
    let name = unique("bench_cron");
    let url = namespace(amqp, &name)?;
    let ids: Vec<String> = (0..options.actions)
        .map(|i| format!("{name}.Jobs.tick{i}"))
        .collect();
    let topology = ids
        .iter()
        .fold(Topology::new(), |t, id| t.queue(QueueSpec::action(id)));
    jararaca_bus::declare(&url, &topology, false)
        .await
        .map_err(|e| format!("{e} (set AMQP_URL to a reachable RabbitMQ)"))?;
    let recorder = Recorder::start(&url, &ids).await?;
    let store = RedisBeatStore::connect(redis)
        .await
        .map_err(|e| format!("{e} (set REDIS_URL to a reachable Redis)"))?
        .with_prefix(format!("{name}:"));
    let store: Arc<dyn BeatStore> = Arc::new(store);
    let publisher: Arc<dyn Publisher> = Arc::new(AmqpPublisher::connect(&url).await?);
    let confirmed: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sink = Arc::clone(&confirmed);
    let mut beat = Beat::new(Arc::clone(&store), publisher).on_dispatch(move |tick, published| {
        let published = published
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        sink.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((published - tick.due as f64) * 1000.0);
    });
    for id in &ids {
        beat = beat.action(BeatAction {
            id: id.clone(),
            name: None,
            cron: "* * * * * *".parse()?,
            allow_overlap: true,
        });
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(beat.run(async move {
        let _ = stopped.await;
    }));
    // The first trigger of each action leaves at once (never dispatched before), off the
    // second: wait for it, then measure the scheduled ones.
    recorder.wait_for(ids.len(), Duration::from_secs(10)).await;
    let skip = recorder.count();
    let wanted = skip + seconds as usize * ids.len();
    recorder
        .wait_for(wanted, Duration::from_secs(seconds + 10))
        .await;
    let _ = stop.send(());
    running.await??;
    let mut delays = recorder.finish().await;
    let mut delays = delays.split_off(skip.min(delays.len()));
    let mut confirmed = confirmed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut confirmed = confirmed.split_off(ids.len().min(confirmed.len()));
    cleanup(&url, &ids).await;
    if delays.is_empty() || confirmed.is_empty() {
        return Err("no trigger arrived".into());
    }
    let (p50, p99, max) = percentiles(&mut delays);
    println!(
        "ours: {} triggers, arrival delay p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        delays.len()
    );
    let (c50, c99, cmax) = percentiles(&mut confirmed);
    println!(
        "ours: scheduled second to publish confirm p50 {c50:.2} ms, p99 {c99:.2} ms, max {cmax:.2} ms"
    );
    Ok(p99)
}

fn python_venv() -> Option<PathBuf> {
    let venv = match std::env::var_os("JARARACA_PYTHON_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => std::env::current_exe()
            .ok()?
            .parent()?
            .parent()?
            .join("tmp")
            .join("python-jararaca-0.5.13"),
    };
    venv.join("bin").join("jararaca").exists().then_some(venv)
}

async fn measure_python(
    venv: &std::path::Path,
    amqp: &str,
    redis: &str,
    options: &Options,
    seconds: u64,
) -> Result<f64, BoxError> {
    let name = unique("bench_cron_py");
    let url = namespace(amqp, &name)?;
    let methods: Vec<String> = (0..options.actions).map(|i| format!("tick{i}")).collect();
    let ids: Vec<String> = methods.iter().map(|m| format!("{name}.Jobs.{m}")).collect();
    let topology = ids
        .iter()
        .fold(Topology::new(), |t, id| t.queue(QueueSpec::action(id)));
    jararaca_bus::declare(&url, &topology, false).await?;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let mut module = String::from(
        "from jararaca import MessageBusController, Microservice, ScheduledAction\n\n\n\
         @MessageBusController()\nclass Jobs:\n",
    );
    for method in &methods {
        module.push_str(&format!(
            "    @ScheduledAction(\"* * * * * *\")\n    async def {method}(self) -> None:\n        pass\n\n"
        ));
    }
    module.push_str("\napp = Microservice(controllers=[Jobs])\n");
    std::fs::write(dir.join(format!("{name}.py")), module)?;
    let recorder = Recorder::start(&url, &ids).await?;
    let backend = format!("{}/{PYTHON_REDIS_DB}", redis.trim_end_matches('/'));
    let mut child = tokio::process::Command::new(venv.join("bin").join("jararaca"))
        .arg("beat")
        .arg(format!("{name}:app"))
        .arg("--broker-url")
        .arg(format!("{amqp}?exchange={name}"))
        .arg("--backend-url")
        .arg(&backend)
        .arg("--src-dir")
        .arg(&dir)
        .current_dir(&dir)
        .env("PYTHONPATH", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    recorder.wait_for(ids.len(), Duration::from_secs(30)).await;
    let skip = recorder.count();
    let wanted = skip + seconds as usize * ids.len();
    recorder
        .wait_for(wanted, Duration::from_secs(seconds + 10))
        .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut delays = recorder.finish().await;
    let mut delays = delays.split_off(skip.min(delays.len()));
    cleanup(&url, &ids).await;
    let _ = std::fs::remove_dir_all(&dir);
    if delays.is_empty() {
        return Err("the Python beat dispatched nothing".into());
    }
    let (p50, p99, max) = percentiles(&mut delays);
    println!(
        "python: {} triggers, arrival delay p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        delays.len()
    );
    Ok(p99)
}
