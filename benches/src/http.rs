//! The `http` workload: one JSON handler, served by raw axum (`axum::serve`) and by the full
//! Jararaca stack behind its own server (`serve_router`, with its default limits).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use jararaca::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

use crate::{callgrind, load, pin};

use crate::harness::{self, median};

/// One item of the list both servers return.
#[derive(Debug, Clone, Serialize, JsonSchema, TS)]
pub(crate) struct Item {
    id: u32,
    name: String,
    done: bool,
}

fn items() -> Vec<Item> {
    (0..10)
        .map(|id| Item {
            id,
            name: format!("task number {id}"),
            done: id % 2 == 0,
        })
        .collect()
}

async fn raw_handler() -> axum::Json<Vec<Item>> {
    axum::Json(items())
}

async fn jararaca_handler() -> jararaca::http::Json<Vec<Item>> {
    jararaca::http::Json(items())
}

/// Serves `target` (`raw` or `jararaca`) on `127.0.0.1:port` on a single-threaded runtime
/// until killed. Once listening, creates the file `ready` when given: the instruction count
/// waits for it rather than probing the port, whose extra connections would be counted.
pub(crate) fn serve(target: &str, port: u16, ready: Option<&str>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = runtime.block_on(async {
        let router = match target {
            "raw" => axum::Router::new().route("/items", axum::routing::get(raw_handler)),
            "jararaca" => {
                // As `jararaca::cli::run` would: the default log filter and format.
                let _telemetry = jararaca::cli::init_logging(None);
                jararaca::Microservice::new("bench")
                    .controller(
                        jararaca::http::Controller::new("Items", "/items")
                            .get("/", jararaca_handler),
                    )
                    .build()
                    .await?
                    .router()
            }
            other => return Err(format!("unknown target `{other}`").into()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        if let Some(ready) = ready {
            std::fs::write(ready, b"")?;
        }
        if target == "jararaca" {
            // The server `server` runs, with its default limits.
            jararaca::http::server::serve_router(
                router,
                listener,
                std::future::pending(),
                std::time::Duration::from_secs(1),
            )
            .await?;
        } else {
            axum::serve(listener, router).await?;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options of the `http` workload.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    runs: usize,
    seconds: u64,
    connections: usize,
    /// Requests counted under callgrind (the difference between the two runs); 0 skips it.
    counted: u64,
    /// Where to keep the callgrind profiles and annotations, when asked to.
    annotate: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 3,
            seconds: 5,
            connections: 32,
            counted: 2_000,
            annotate: None,
        };
        let mut numeric = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--annotate" {
                let dir = args.next().ok_or("--annotate needs a directory")?;
                options.annotate = Some(PathBuf::from(dir));
            } else {
                numeric.push(arg.clone());
                numeric.extend(args.next().cloned());
            }
        }
        for (flag, number) in harness::numeric_flags(&numeric)? {
            let as_usize = usize::try_from(number).unwrap_or(usize::MAX);
            match flag {
                "--runs" => options.runs = as_usize.max(3),
                "--seconds" => options.seconds = number.max(1),
                "--connections" => options.connections = as_usize.max(1),
                "--callgrind-requests" => options.counted = number,
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        if options.annotate.is_some() && options.counted == 0 {
            return Err("--annotate needs --callgrind-requests above 0".into());
        }
        Ok(options)
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The servers' `RUST_LOG`.
fn log_filter() -> String {
    std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into())
}

fn start(target: &str, pinned: bool) -> Result<(Server, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = exe.to_string_lossy().into_owned();
    let port = free_port().map_err(|e| e.to_string())?;
    let port_text = port.to_string();
    let child = pin::command(
        pinned.then_some(pin::SERVER_CORE),
        &exe,
        &["serve", target, &port_text],
    )
    .env("RUST_LOG", log_filter())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| format!("cannot start the {target} server: {e}"))?;
    let server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return Ok((server, addr));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("the {target} server did not start listening"))
}

/// Runs the workload: the socket comparison, then the instruction count, then both ratios,
/// the socket one last.
pub(crate) fn run(options: &Options) -> ExitCode {
    let pinned = pin::available() && pin::pin_self(pin::LOAD_CORE);
    if !pinned {
        eprintln!(
            "note: cannot pin to separate cores (taskset missing or one core); numbers are noisier"
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = match throughput(&runtime, options, pinned) {
        Ok(ratio) => ratio,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let instructions = if options.counted == 0 {
        Ok(None)
    } else if let Some(why) = callgrind::missing() {
        eprintln!("note: {why}");
        Ok(None)
    } else {
        instructions(&runtime, options, pinned).map(Some)
    };
    let failed = match instructions {
        Ok(Some(ratio)) => {
            println!("RATIO http_instructions {ratio:.3}");
            false
        }
        Ok(None) => false,
        Err(e) => {
            eprintln!("instruction count: {e}");
            true
        }
    };
    println!("RATIO http {socket:.3}");
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The socket comparison: alternating runs of each server under load; returns the ratio of
/// the median throughputs (ours over raw).
fn throughput(
    runtime: &tokio::runtime::Runtime,
    options: &Options,
    pinned: bool,
) -> Result<f64, String> {
    println!(
        "http: GET /items (JSON list of 10), {} connections, {} s per run, {} runs each, alternating",
        options.connections, options.seconds, options.runs
    );
    let targets = ["raw", "jararaca"];
    let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..options.runs {
        // Alternate which goes first so drift in the machine's state favours neither.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let target = targets[index];
            let (server, addr) = start(target, pinned)?;
            let measured = runtime.block_on(async {
                load::run(
                    addr,
                    "/items",
                    options.connections,
                    Duration::from_millis(500),
                )
                .await;
                load::run(
                    addr,
                    "/items",
                    options.connections,
                    Duration::from_secs(options.seconds),
                )
                .await
            });
            drop(server);
            if measured.errors > 0 {
                return Err(format!("{target}: {} failed requests", measured.errors));
            }
            println!(
                "run {}: {target:>8} {:>9.0} req/s  p99 {:>6.2} ms",
                run + 1,
                measured.requests_per_second,
                measured.p99.as_secs_f64() * 1000.0
            );
            results[index].push(measured.requests_per_second);
        }
    }
    // Both servers of a run see about the same machine, so the ratio within a run is less
    // noisy than either throughput; its spread says how far to trust the median.
    let mut pairs: Vec<f64> = results[0]
        .iter()
        .zip(&results[1])
        .map(|(raw, ours)| ours / raw)
        .collect();
    let listed: Vec<String> = pairs.iter().map(|r| format!("{r:.3}")).collect();
    println!("per-run ratios (jararaca/raw): {}", listed.join(" "));
    let pair_median = median(&mut pairs);
    println!(
        "per-run ratio spread over {} runs: min {:.3}, median {pair_median:.3}, max {:.3}",
        pairs.len(),
        pairs[0],
        pairs[pairs.len() - 1]
    );
    let raw = median(&mut results[0]);
    let ours = median(&mut results[1]);
    println!("median: raw axum {raw:.0} req/s, jararaca {ours:.0} req/s");
    Ok(ours / raw)
}

/// Requests each server answers before the counted ones, in both of its runs: connection
/// set-up and first-request work (lazy statics, buffer growth) then cancel out.
const WARM_REQUESTS: u64 = 500;

/// The instruction count: each server under callgrind twice, answering `WARM_REQUESTS` and
/// then `WARM_REQUESTS + counted` sequential requests on one keep-alive connection; the
/// difference of the totals over `counted` is the cost of one request without start-up and
/// shutdown. Returns raw's instructions per request over ours.
fn instructions(
    runtime: &tokio::runtime::Runtime,
    options: &Options,
    pinned: bool,
) -> Result<f64, String> {
    let counted = options.counted;
    let lengths = [WARM_REQUESTS, WARM_REQUESTS + counted];
    println!(
        "http instructions (callgrind, server only): GET /items on one keep-alive connection, \
         {} and {} requests per server, per request = difference / {counted}",
        lengths[0], lengths[1]
    );
    let dir = match &options.annotate {
        Some(dir) => dir.clone(),
        None => {
            std::env::temp_dir().join(format!("jararaca-bench-callgrind-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let profile_path =
        |target: &str, requests: u64| dir.join(format!("{target}.{requests}.callgrind"));
    let targets = ["raw", "jararaca"];
    let mut per_request = [0.0; 2];
    let counting = (|| {
        for (index, target) in targets.into_iter().enumerate() {
            let mut totals = [0; 2];
            for (total, requests) in totals.iter_mut().zip(lengths) {
                *total = profile(
                    runtime,
                    target,
                    requests,
                    &profile_path(target, requests),
                    pinned,
                )?;
            }
            per_request[index] = totals[1].saturating_sub(totals[0]) as f64 / counted as f64;
            println!(
                "{target:>8}: {:>12} instructions in {} requests, {:>12} in {}: {:.0} per request",
                totals[0], lengths[0], totals[1], lengths[1], per_request[index]
            );
        }
        Ok::<_, String>(())
    })();
    let result = counting.and_then(|()| {
        if options.annotate.is_some() {
            annotate(&dir, &profile_path, lengths, counted)?;
        }
        Ok(per_request[0] / per_request[1])
    });
    if options.annotate.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Runs `target` under callgrind, writing its profile to `out`, sends it `requests`
/// sequential requests, stops it, and returns the instructions it executed.
fn profile(
    runtime: &tokio::runtime::Runtime,
    target: &str,
    requests: u64,
    out: &Path,
    pinned: bool,
) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = exe.to_string_lossy().into_owned();
    let port = free_port().map_err(|e| e.to_string())?;
    let port_text = port.to_string();
    let ready = out.with_extension("ready");
    let _ = std::fs::remove_file(&ready);
    let ready_text = ready.to_string_lossy().into_owned();
    let child = callgrind::command(
        pinned.then_some(pin::SERVER_CORE),
        out,
        &exe,
        &["serve", target, &port_text, &ready_text],
    )
    .env("RUST_LOG", log_filter())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| format!("cannot start valgrind for the {target} server: {e}"))?;
    let mut server = Server(child);
    let log = format!("{}.log", out.display());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        if Instant::now() > deadline {
            return Err(format!(
                "the {target} server under callgrind did not start listening; see {log}"
            ));
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            return Err(format!(
                "the {target} server under callgrind exited ({status}); see {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&ready);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    runtime
        .block_on(load::sequential(addr, "/items", requests))
        .map_err(|e| format!("{target} under callgrind: {e}"))?;
    callgrind::stop(&mut server.0)?;
    callgrind::total(out)
}

/// Each function's cost in a server's shorter and longer run.
type CostsOfRuns = [HashMap<String, callgrind::Cost>; 2];

/// Which of a function's costs a ranking uses.
type Pick = fn(&callgrind::Cost) -> u64;

/// How many rows of each ranking to print; the files in the `--annotate` directory hold all.
const SHOWN: usize = 30;

/// Keeps `callgrind_annotate` listings (exclusive and `--inclusive=yes`) of the jararaca
/// server's longer run in `dir`, and ranks the functions by the instructions per request
/// that jararaca spends beyond raw axum.
fn annotate(
    dir: &Path,
    profile_path: &dyn Fn(&str, u64) -> PathBuf,
    lengths: [u64; 2],
    counted: u64,
) -> Result<(), String> {
    let longer = profile_path("jararaca", lengths[1]);
    for (inclusive, kind) in [(false, "exclusive"), (true, "inclusive")] {
        let listing = callgrind::annotate(&longer, inclusive)?;
        write(
            &dir.join(format!("jararaca.{}.{kind}.txt", lengths[1])),
            &listing,
        )?;
    }
    let costs = |target: &str| -> Result<CostsOfRuns, String> {
        Ok([
            callgrind::costs(&profile_path(target, lengths[0]))?,
            callgrind::costs(&profile_path(target, lengths[1]))?,
        ])
    };
    let ours = costs("jararaca")?;
    let raw = costs("raw")?;
    let kinds: [(&str, Pick); 2] = [
        ("exclusive", |c| c.exclusive),
        ("inclusive", |c| c.inclusive),
    ];
    for (kind, pick) in kinds {
        let rows =
            callgrind::extra_per_request([&ours[0], &ours[1]], [&raw[0], &raw[1]], counted, pick);
        let table = callgrind::table(&rows);
        let file = dir.join(format!("per-request-{kind}.txt"));
        write(&file, &table)?;
        println!(
            "\ninstructions per request by function, {kind}, jararaca beyond raw axum \
             (top {SHOWN}; all in {}):",
            file.display()
        );
        for line in table.lines().take(SHOWN + 1) {
            println!("{line}");
        }
    }
    println!(
        "\ncallgrind profiles and callgrind_annotate listings kept in {}",
        dir.display()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
