//! `cargo run --release -p jararaca-bench -- <workload>`: runs the Jararaca stack and the raw
//! library it is built on side by side in one run, and prints their ratio as the last line
//! (`RATIO <workload> <value>`). Absolute numbers depend on the machine; the ratio is what to
//! compare.
//!
//! Workloads:
//! * `http` — the same JSON handler through raw axum and through the full Jararaca stack
//!   (DI scope, unit of work, tracing, request id), each server pinned to one core and loaded
//!   from a generator on another, alternating, median of at least three runs. The Jararaca
//!   server logs as `cli::run` sets it up, with `RUST_LOG=info` unless `BENCH_RUST_LOG`
//!   says otherwise (`BENCH_RUST_LOG=info,jararaca::http=debug` adds the request spans).
//!   Besides the median ratio it prints each run's ratio and their spread. Then, when
//!   valgrind is installed, it counts the instructions each server executes per request
//!   under callgrind (the server only, all its threads): two runs per server with 500 and
//!   500 + R sequential keep-alive requests (`--callgrind-requests R`, default 2000, 0 skips
//!   it), the difference of their totals over R, and prints `RATIO http_instructions
//!   <raw/ours>` before the socket ratio. The count is the same on every run and under any
//!   load. `--annotate DIR` keeps the profiles in `DIR`, runs `callgrind_annotate` on them
//!   (exclusive and `--inclusive=yes`) and ranks the functions by the instructions per
//!   request Jararaca spends beyond raw axum.
//! * `query` — a filtered, sorted page with its total from a million-row PostgreSQL table
//!   (schema `jararaca_bench`, built on the first run and reused), through jararaca-query's
//!   `QueryOperations` and through the same SQL written with sqlx, alternating, median of at
//!   least three runs; the ratio is sqlx's time over ours. It also times keyset pages at
//!   page 1 and page 10,000 and, for context, offset pages at the same depths. Connects to
//!   `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! * `bus` — persistent JSON messages consumed from RabbitMQ, decoded and acknowledged,
//!   through the jararaca `Worker` (a `typed` handler inside `UnitOfWorkLayer` and
//!   `ScopeLayer`) and through a raw lapin consumer, at the same prefetch, alternating, median
//!   of at least three runs, in messages per second. Each batch is published before its
//!   consumer starts and only consumption is timed. Connects to `AMQP_URL` (default
//!   `amqp://guest:guest@127.0.0.1:5672/%2f`).
//! * `outbox` — `POST /tasks` (insert a row, publish `task.created`) in process from
//!   closed-loop tasks, on PostgreSQL (`DATABASE_URL`, schema `jararaca_bench_outbox`,
//!   dropped afterwards) and RabbitMQ (`AMQP_URL`), through the transactional outbox and
//!   through after-commit publishing, alternating, median of at least three runs; the ratio
//!   is the outbox's requests per second over after-commit's. Each run also prints the
//!   publish latency from commit to broker confirm (p50, p99).
//! * `rpc` — GET a JSON list of 10 from a local axum server through a `#[rest_client]`
//!   declared client with retry, trace context, bearer auth and timeout, each closed-loop task
//!   a traced unit of work, and through a raw hyper-util client sending the same headers: at
//!   least three rounds (`--runs`, default 11), each with fresh connections and `--seconds`
//!   (default 1) per client in 100 ms slices taking turns; requests per second, p99 and CPU
//!   time per call; the ratio is the median of the rounds' ratios, ours over raw.
//!   Then, when valgrind is installed, it counts the instructions of one call end to end
//!   (client, server and runtime on one thread) under callgrind for each client: 300 and
//!   300 + R sequential calls (`--callgrind-requests R`, default 2000, 0 skips it), and prints
//!   `RATIO rpc_instructions <raw/ours>` before the throughput ratio.
//! * `cron` — the delay of the beat's triggers behind their scheduled second over at least
//!   300 ticks, ours and (when its venv is there) Python jararaca's beat; prints
//!   `CRON_P99_MS <ours>` and the ratio of Python's p99 to ours (see `cron.rs`).
//! * `ws` — 10,000 WebSocket clients in one room, broadcasts timed from send to receipt at
//!   every client, through a jararaca service (an HTTP unit of work staging the send, the
//!   WebSocket endpoint and manager) and through a plain axum `tokio::sync::broadcast`
//!   broadcaster with lean buffers, each server pinned to one core; p50/p99 and server memory
//!   per connection, `KIB_PER_CONN <ours>` and `RATIO ws <raw p99 / our p99>`.

mod bus;
mod callgrind;
mod cron;
mod harness;
mod http;
mod load;
mod outbox;
mod pin;
mod query;
mod rpc;
mod ws;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: jararaca-bench http [--runs N] [--seconds S] [--connections C]\n\
         \x20                          [--callgrind-requests R] [--annotate DIR]\n\
         \x20      jararaca-bench query [--runs N] [--iterations I]\n\
         \x20      jararaca-bench bus [--runs N] [--messages M] [--prefetch P]\n\
         \x20      jararaca-bench outbox [--runs N] [--seconds S] [--concurrency C]\n\
         \x20      jararaca-bench rpc [--runs N] [--seconds S] [--concurrency C]\n\
         \x20                         [--callgrind-requests R]\n\
         \x20      jararaca-bench cron [--ticks T] [--actions A]\n\
         \x20      jararaca-bench ws [--runs N] [--clients C] [--broadcasts B]\n\
         (internal: jararaca-bench serve <raw|jararaca> <port> [ready-file],\n\
         \x20          jararaca-bench rpc-count <ours|raw> <calls>)"
    );
    ExitCode::from(2)
}

/// Parses a workload's options and runs it, or prints the usage.
fn workload<O>(parsed: Result<O, String>, run: fn(&O) -> ExitCode) -> ExitCode {
    match parsed {
        Ok(options) => run(&options),
        Err(e) => {
            eprintln!("{e}");
            usage()
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("http") => workload(http::Options::parse(options), http::run),
        Some("query") => workload(query::Options::parse(options), query::run),
        Some("bus") => workload(bus::Options::parse(options), bus::run),
        Some("outbox") => workload(outbox::Options::parse(options), outbox::run),
        Some("rpc") => workload(rpc::Options::parse(options), rpc::run),
        Some("cron") => workload(cron::Options::parse(options), cron::run),
        Some("ws") => workload(ws::Options::parse(options), ws::run),
        Some("rpc-count") => match (args.get(1), args.get(2).and_then(|n| n.parse().ok())) {
            (Some(target), Some(calls)) => rpc::count(target, calls),
            _ => usage(),
        },
        Some("ws-serve") => match (args.get(1), args.get(2).and_then(|p| p.parse().ok())) {
            (Some(target), Some(port)) => ws::serve(target, port),
            _ => usage(),
        },
        Some("serve") => match (args.get(1), args.get(2).and_then(|p| p.parse().ok())) {
            (Some(target), Some(port)) => {
                http::serve(target, port, args.get(3).map(String::as_str))
            }
            _ => usage(),
        },
        _ => usage(),
    }
}
