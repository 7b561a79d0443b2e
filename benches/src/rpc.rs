//! The `rpc` workload: GET requests returning a JSON list of 10 from a local axum server,
//! through a `#[rest_client]` declared client with the full client stack (retry, trace context
//! inside a traced unit of work, bearer auth, timeout, in the README's recommended order) and
//! through a raw hyper-util pooled client decoding the same JSON, in one run.
//!
//! A round gives each client `--seconds` of `--concurrency` closed-loop tasks, in 100 ms
//! slices taking turns (ABBA, so neither always goes first); it reports both clients' requests
//! per second and p99 latency and their ratio, ours over raw. `--runs` rounds (at least three)
//! follow a warm-up of each, and the ratio printed is the median of the rounds' ratios. Each
//! round has new clients, so new connections (opened in an uncounted slice of each): which
//! worker thread runs a connection's tasks is mostly settled when it opens (a woken task stays
//! on the worker that woke it unless the other one steals it), and a lucky or unlucky placement
//! then lasts one round, not the whole run. With one set of connections per run, runs of one
//! binary spread over about ±2% while the rounds within each agreed; with fresh ones per round,
//! back-to-back runs agree within about ±0.5% (about ±1% over an hour of a drifting machine).
//! On a shared machine throughput drifts by tens of percent from one second to the next;
//! slices this short see about the same machine for both clients, so the drift cancels in the
//! ratio instead of landing on whichever client ran during a slow second.
//!
//! Like for like: both clients are hyper-util's legacy pooled `Client` over the same connector
//! (hyper-rustls' `HttpsConnector` over `HttpConnector`, http or https, HTTP/1.1), as
//! `HyperTransport::new()` builds it, talking plain http to the same server; and both put the
//! same headers on the wire (`authorization`, and a `traceparent`: a fixed one for the raw
//! client, a fresh child span's for ours). What the ratio measures is the rest: the request
//! builder, the layers, the unit of work's trace and the typed decoding.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jararaca_di::{TraceContext, UnitKind, UnitOfWork};
use jararaca_retry::RetryPolicy;
use jararaca_rpc::{
    AuthLayer, HyperTransport, RestClient, RpcError, TimeoutLayer, TraceContextLayer,
};
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;

use crate::callgrind;
use crate::harness::{self, BoxError, median};

/// The raw client's `traceparent`, the same size as the one our stack generates.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// How long one client runs before the other takes its turn: short enough that the machine's
/// drift (other guests, frequency) is about the same for both clients of a round.
const SLICE: Duration = Duration::from_millis(100);

/// Options of the `rpc` workload.
#[derive(Debug)]
pub(crate) struct Options {
    runs: usize,
    seconds: u64,
    concurrency: usize,
    /// Calls counted under callgrind (the difference between two runs); 0 skips it.
    counted: u64,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 11,
            seconds: 1,
            concurrency: 16,
            counted: 2000,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            match flag {
                "--runs" => options.runs = (number as usize).max(3),
                "--seconds" => options.seconds = number.max(1),
                "--concurrency" => options.concurrency = (number as usize).max(1),
                "--callgrind-requests" => options.counted = number,
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
    harness::report("rpc", runtime, bench(options))
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    id: u32,
    name: String,
}

fn items() -> Vec<Item> {
    (0..10)
        .map(|id| Item {
            id,
            name: format!("item {id}"),
        })
        .collect()
}

/// The server's routes, as the client declares them.
#[jararaca_macros::rest_client("/api")]
trait Catalog {
    #[get("/items")]
    async fn items(&self) -> Result<Vec<Item>, RpcError>;
}

/// What one client did in a round: its calls' latencies and the time they took.
#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// The process's CPU time (every thread: client, server and runtime).
    cpu: Duration,
}

impl Sample {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per call, in microseconds.
    fn cpu_per_call(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.latencies.len() as f64
    }

    fn p99(&mut self) -> Duration {
        self.latencies.sort_unstable();
        self.latencies
            .get(self.latencies.len() * 99 / 100)
            .copied()
            .unwrap_or_default()
    }
}

/// Runs `concurrency` closed-loop tasks for `length` through our client (each task a traced
/// unit of work making one call after another, as a handler would) or through the raw one,
/// adding to `sample`.
async fn load(
    clients: &Arc<Clients>,
    ours: bool,
    sample: &mut Sample,
    concurrency: usize,
    length: Duration,
) -> Result<(), BoxError> {
    let cpu = cpu_time();
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let clients = Arc::clone(clients);
        tasks.push(tokio::spawn(async move {
            let unit = clients.unit.clone();
            let calls = async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let at = Instant::now();
                    if ours {
                        call_ours(&clients.ours).await?;
                    } else {
                        call_raw(&clients.raw, &clients.raw_uri).await?;
                    }
                    latencies.push(at.elapsed());
                }
                Ok::<_, BoxError>(latencies)
            };
            if ours {
                unit.scope(calls).await
            } else {
                calls.await
            }
        }));
    }
    for task in tasks {
        sample.latencies.extend(task.await??);
    }
    sample.elapsed += started.elapsed();
    sample.cpu += cpu_time().saturating_sub(cpu);
    Ok(())
}

/// The CPU time this process's threads have used so far (Linux: the sum of each thread's
/// `/proc/self/task/*/schedstat`, in nanoseconds; zero elsewhere).
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The two clients of the comparison, against the server at `addr`.
struct Clients {
    ours: OurClient,
    unit: UnitOfWork,
    raw: RawClient,
    raw_uri: http::Uri,
}

type OurClient = CatalogClient<
    jararaca_retry::Retry<
        jararaca_rpc::TraceContextService<
            jararaca_rpc::Auth<jararaca_rpc::Timeout<HyperTransport>>,
        >,
        jararaca_rpc::HttpRetryPredicate,
        jararaca_rpc::HttpReplay,
    >,
>;

type RawClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

impl Clients {
    fn new(addr: std::net::SocketAddr) -> Result<Self, BoxError> {
        let stack = ServiceBuilder::new()
            .layer(jararaca_rpc::retry(RetryPolicy::default().max_retries(2)))
            .layer(TraceContextLayer::new())
            .layer(AuthLayer::bearer("bench-token")?)
            .layer(TimeoutLayer::new(Duration::from_secs(5)))
            .service(HyperTransport::new());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            ours: CatalogClient::new(RestClient::new(stack, &format!("http://{addr}"))?),
            unit: UnitOfWork::traced(UnitKind::Http, Some(TraceContext::continue_from(None))),
            raw: Client::builder(TokioExecutor::new()).build(connector),
            raw_uri: format!("http://{addr}/api/items").parse()?,
        })
    }
}

/// One GET through our client (inside the caller's traced unit of work).
async fn call_ours(client: &OurClient) -> Result<(), BoxError> {
    let items = client.items().await?;
    assert_eq!(items.len(), 10);
    Ok(())
}

/// One GET through the raw client, with the same headers.
async fn call_raw(client: &RawClient, uri: &http::Uri) -> Result<(), BoxError> {
    let request = http::Request::get(uri.clone())
        .header(http::header::AUTHORIZATION, "Bearer bench-token")
        .header("traceparent", TRACEPARENT)
        .body(Empty::new())?;
    let response = client.request(request).await?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    let items: Vec<Item> = serde_json::from_slice(&body)?;
    assert_eq!(items.len(), 10);
    Ok(())
}

/// The server both clients call, on a free port.
async fn serve() -> Result<std::net::SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/api/items", get(|| async { Json(items()) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn bench(options: &Options) -> Result<f64, BoxError> {
    let addr = serve().await?;
    println!(
        "both clients: hyper-util pooled Client, hyper-rustls HttpsConnector (https_or_http), \
         HTTP/1.1, plain http to 127.0.0.1; same headers on the wire"
    );

    println!(
        "{} rounds of {} s per client in {} ms slices taking turns, {} closed-loop tasks",
        options.runs,
        options.seconds,
        SLICE.as_millis(),
        options.concurrency
    );
    let concurrency = options.concurrency;
    // Lazy statics and buffers settle before anything is counted.
    warm_up(
        &Arc::new(Clients::new(addr)?),
        concurrency,
        Duration::from_millis(500),
    )
    .await?;

    let slices = (options.seconds * 1000).div_ceil(SLICE.as_millis() as u64);
    let mut ratios = Vec::new();
    let (mut ours_rps, mut raw_rps) = (Vec::new(), Vec::new());
    for round in 0..options.runs {
        // Fresh clients, so fresh connections, client and server side: a placement of their
        // tasks on the workers that favours one client would otherwise favour it for the whole
        // run. Each round sees new placements, and the median of the rounds averages them out.
        let clients = Arc::new(Clients::new(addr)?);
        warm_up(&clients, concurrency, SLICE).await?;
        let (mut ours_sample, mut raw_sample) = (Sample::default(), Sample::default());
        for index in 0..slices {
            // ABBA: which client goes first alternates from one slice pair to the next.
            let ours_first = (index + round as u64).is_multiple_of(2);
            for ours_turn in [ours_first, !ours_first] {
                let sample = if ours_turn {
                    &mut ours_sample
                } else {
                    &mut raw_sample
                };
                load(&clients, ours_turn, sample, concurrency, SLICE).await?;
            }
        }
        let (ours_per_second, raw_per_second) = (ours_sample.per_second(), raw_sample.per_second());
        let ratio = ours_per_second / raw_per_second;
        println!(
            "round {:>2}: ours {ours_per_second:.0} req/s p99 {:.2} ms {:.1} µs CPU/call, \
             raw {raw_per_second:.0} req/s p99 {:.2} ms {:.1} µs CPU/call, ratio {ratio:.3}",
            round + 1,
            ours_sample.p99().as_secs_f64() * 1e3,
            ours_sample.cpu_per_call(),
            raw_sample.p99().as_secs_f64() * 1e3,
            raw_sample.cpu_per_call(),
        );
        ratios.push(ratio);
        ours_rps.push(ours_per_second);
        raw_rps.push(raw_per_second);
    }
    let ratio = median(&mut ratios);
    println!(
        "round ratios: min {:.3}, median {ratio:.3}, max {:.3}; median throughput: ours {:.0} req/s, raw {:.0} req/s",
        ratios[0],
        ratios[ratios.len() - 1],
        median(&mut ours_rps),
        median(&mut raw_rps)
    );
    if options.counted > 0 {
        match callgrind::missing() {
            Some(why) => println!("{why}"),
            None => {
                let ratio = tokio::task::spawn_blocking({
                    let counted = options.counted;
                    move || instructions(counted)
                })
                .await??;
                println!("RATIO rpc_instructions {ratio:.3}");
            }
        }
    }
    Ok(ratio)
}

/// Runs each client of `clients` for `length`, uncounted: their connections open.
async fn warm_up(
    clients: &Arc<Clients>,
    concurrency: usize,
    length: Duration,
) -> Result<(), BoxError> {
    for ours in [true, false] {
        load(clients, ours, &mut Sample::default(), concurrency, length).await?;
    }
    Ok(())
}

/// Calls each process makes before the counted ones, in both of its runs: connecting, the
/// first request's lazy work and buffer growth then cancel out.
const WARM_CALLS: u64 = 300;

/// The instruction count: for each client, the whole process — client, server and runtime on
/// one thread — under callgrind twice, making `WARM_CALLS` and then `WARM_CALLS + counted`
/// sequential calls; the difference of the totals over `counted` is what one call costs end
/// to end, the same on every run and under any load. Returns raw's count per call over ours.
fn instructions(counted: u64) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = exe.to_string_lossy().into_owned();
    let dir = std::env::temp_dir().join(format!("jararaca-bench-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!(
        "rpc instructions (callgrind, client and server in one thread): {WARM_CALLS} and {} \
         sequential calls per client, per call = difference / {counted}",
        WARM_CALLS + counted
    );
    let mut per_call = [0.0; 2];
    let counting = (|| {
        for (index, target) in ["raw", "ours"].into_iter().enumerate() {
            let mut totals = [0u64; 2];
            for (total, calls) in totals.iter_mut().zip([WARM_CALLS, WARM_CALLS + counted]) {
                let out = dir.join(format!("{target}.{calls}.callgrind"));
                let calls_text = calls.to_string();
                let status =
                    callgrind::command(None, &out, &exe, &["rpc-count", target, &calls_text])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .map_err(|e| format!("cannot run valgrind: {e}"))?;
                if !status.success() {
                    return Err(format!(
                        "the {target} client under callgrind failed ({status}); see {}.log",
                        out.display()
                    ));
                }
                *total = callgrind::total(&out)?;
            }
            per_call[index] = totals[1].saturating_sub(totals[0]) as f64 / counted as f64;
            println!(
                "{target:>5}: {:>12} instructions in {WARM_CALLS} calls, {:>12} in {}: {:.0} per call",
                totals[0],
                totals[1],
                WARM_CALLS + counted,
                per_call[index]
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    counting.map(|()| per_call[0] / per_call[1])
}

/// `jararaca-bench rpc-count <ours|raw> CALLS`: the server and `target`'s client on one
/// current-thread runtime, `calls` sequential calls, then exit (run under callgrind by the
/// `rpc` workload).
pub(crate) fn count(target: &str, calls: u64) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let run = async move {
        let clients = Clients::new(serve().await?)?;
        match target {
            "ours" => {
                let calls = async {
                    for _ in 0..calls {
                        call_ours(&clients.ours).await?;
                    }
                    Ok::<_, BoxError>(())
                };
                clients.unit.scope(calls).await
            }
            "raw" => {
                for _ in 0..calls {
                    call_raw(&clients.raw, &clients.raw_uri).await?;
                }
                Ok(())
            }
            other => Err(format!("unknown client `{other}`: ours or raw").into()),
        }
    };
    match runtime
        .map_err(BoxError::from)
        .and_then(|r| r.block_on(run))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc-count: {e}");
            ExitCode::FAILURE
        }
    }
}
