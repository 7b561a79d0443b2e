//! The `http` workload: one JSON handler, served by raw axum and by the full Jararaca stack.

use jararaca::prelude::*;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitCode, Stdio};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

use crate::{load, pin};

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
/// until killed.
pub(crate) fn serve(target: &str, port: u16) -> ExitCode {
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
        axum::serve(listener, router).await?;
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
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 3,
            seconds: 5,
            connections: 32,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            let number = usize::try_from(number).unwrap_or(usize::MAX);
            match flag {
                "--runs" => options.runs = number.max(3),
                "--seconds" => options.seconds = number.max(1) as u64,
                "--connections" => options.connections = number.max(1),
                other => return Err(format!("unknown option `{other}`")),
            }
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
    .env(
        "RUST_LOG",
        std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
    )
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

/// Runs the workload and prints the ratio last.
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
            let (server, addr) = match start(target, pinned) {
                Ok(started) => started,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
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
                eprintln!("{target}: {} failed requests", measured.errors);
                return ExitCode::FAILURE;
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
    let raw = median(&mut results[0]);
    let ours = median(&mut results[1]);
    println!("median: raw axum {raw:.0} req/s, jararaca {ours:.0} req/s");
    println!("RATIO http {:.3}", ours / raw);
    ExitCode::SUCCESS
}
