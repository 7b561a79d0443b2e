//! The application CLI: a service's `main` hands its [`Microservice`] to [`run`] and gets the
//! reference's commands with their option names and environment variables.
//!
//! * `server` — `--host` (`HOST`, default `0.0.0.0`), `--port` (`PORT`, default `8000`),
//!   `--gracious-shutdown-seconds` (`GRACIOUS_SHUTDOWN_SECONDS`, default 20);
//! * `openapi` — prints the OpenAPI document (or writes it to `--output`);
//! * commands that other crates add with [`Microservice::command`] (`worker`, `declare`, …).
//!
//! Logging goes through `tracing-subscriber`: `RUST_LOG` filters (default `info`),
//! `--log-format json` (`LOG_FORMAT`) switches to JSON lines. With the `otel` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, request spans are exported over OTLP/HTTP too.
//!
//! ```no_run
//! use jararaca::Microservice;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     jararaca::cli::run(Microservice::new("tasks")).await
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::{BoxError, Microservice};

type RunFn =
    Box<dyn FnOnce(Microservice, ArgMatches) -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// A subcommand added to a service's CLI.
pub struct Command {
    command: clap::Command,
    run: RunFn,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command.get_name())
    }
}

impl Command {
    /// A subcommand described by `command` (its name, arguments and help) that runs `run`
    /// with the service and the parsed arguments.
    pub fn new<F, Fut>(command: clap::Command, run: F) -> Self
    where
        F: FnOnce(Microservice, ArgMatches) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Self {
            command,
            run: Box::new(move |service, matches| run(service, matches).boxed()),
        }
    }
}

/// The service's command line, with the built-in and added commands.
pub fn command(service_name: &str, extra: &[Command]) -> clap::Command {
    let server = clap::Command::new("server")
        .about("Serve the HTTP API")
        .arg(
            Arg::new("host")
                .long("host")
                .env("HOST")
                .default_value("0.0.0.0")
                .value_parser(clap::value_parser!(IpAddr))
                .help("Address to listen on"),
        )
        .arg(
            Arg::new("port")
                .long("port")
                .env("PORT")
                .default_value("8000")
                .value_parser(clap::value_parser!(u16))
                .help("Port to listen on"),
        )
        .arg(grace_arg());
    let openapi = clap::Command::new("openapi")
        .about("Print the OpenAPI 3.1 document")
        .arg(
            Arg::new("output")
                .long("output")
                .short('o')
                .value_name("FILE")
                .help("Write to FILE instead of standard output"),
        );
    let mut cli = clap::Command::new(service_name.to_owned())
        .about(format!("The {service_name} service"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .env("LOG_FORMAT")
                .global(true)
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Log line format"),
        )
        .subcommand(server)
        .subcommand(openapi);
    #[cfg(feature = "bus")]
    {
        cli = cli
            .subcommand(bus_cli::worker_command())
            .subcommand(bus_cli::declare_command());
    }
    for extra in extra {
        cli = cli.subcommand(extra.command.clone());
    }
    cli
}

/// `--gracious-shutdown-seconds`: how long in-flight work may take after a stop signal.
pub fn grace_arg() -> Arg {
    Arg::new("gracious-shutdown-seconds")
        .long("gracious-shutdown-seconds")
        .env("GRACIOUS_SHUTDOWN_SECONDS")
        .default_value("20")
        .value_parser(clap::value_parser!(u64))
        .action(ArgAction::Set)
        .help("Seconds in-flight work may take after SIGTERM/SIGINT")
}

/// Reads the grace period set by [`grace_arg`].
pub fn grace(matches: &ArgMatches) -> Duration {
    Duration::from_secs(
        matches
            .get_one::<u64>("gracious-shutdown-seconds")
            .copied()
            .unwrap_or(20),
    )
}

/// Parses the process arguments and runs the chosen command. Returns the process exit code:
/// success, or failure after printing the error.
pub async fn run(service: Microservice) -> ExitCode {
    run_from(service, std::env::args_os()).await
}

/// Like [`run`], with explicit arguments (the first is the program name).
pub async fn run_from<I, T>(mut service: Microservice, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let commands = service.take_commands();
    let matches = match command(service.name(), &commands).try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => {
            // Help and version are "errors" that print and exit successfully.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let telemetry = crate::telemetry::init(
        matches.get_one::<String>("log-format").map(String::as_str),
        service.name(),
    );
    let result = match matches.subcommand() {
        Some(("server", m)) => server(service, m).await,
        Some(("openapi", m)) => print_openapi(&service, m),
        #[cfg(feature = "bus")]
        Some(("worker", m)) => bus_cli::worker(service, m).await,
        #[cfg(feature = "bus")]
        Some(("declare", m)) => bus_cli::declare(&service, m).await,
        Some((name, m)) => match commands.into_iter().find(|c| c.command.get_name() == name) {
            Some(command) => (command.run)(service, m.clone()).await,
            None => Err(format!("unknown command `{name}`").into()),
        },
        None => Err("no command given".into()),
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "failed");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn server(service: Microservice, matches: &ArgMatches) -> Result<(), BoxError> {
    let host = matches
        .get_one::<IpAddr>("host")
        .copied()
        .ok_or("--host is required")?;
    let port = matches
        .get_one::<u16>("port")
        .copied()
        .ok_or("--port is required")?;
    let app = service.build().await?;
    let addr = SocketAddr::new(host, port);
    #[cfg(feature = "bus")]
    if app.bus_in_memory()
        && let worker = app.worker()
        && !worker.topology().queues.is_empty()
    {
        // No broker: the handlers run here, beside the routes, on the in-process broker.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| crate::server::ServeError::Bind { addr, source })?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::server::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let worker = worker.grace_period(grace(matches));
        let (served, worked) = tokio::join!(
            crate::server::serve_with(app, listener, stopped(stop_rx.clone()), grace(matches)),
            worker.run(stopped(stop_rx)),
        );
        served?;
        worked?;
        return Ok(());
    }
    crate::server::serve(app, addr, grace(matches)).await?;
    Ok(())
}

/// The `worker` and `declare` commands.
#[cfg(feature = "bus")]
mod bus_cli {
    use std::io::{BufRead, IsTerminal, Write};

    use clap::{Arg, ArgAction, ArgMatches};

    use crate::bus::{BrokerUrl, BusError, BusSettings, declare as declare_topology};
    use crate::{BoxError, Microservice};

    fn broker_url_arg() -> Arg {
        Arg::new("broker-url")
            .long("broker-url")
            .env("BROKER_URL")
            .required(true)
            .help("RabbitMQ: amqp://user:pass@host:port/vhost?exchange=X&prefetch_count=N")
    }

    fn csv(matches: &ArgMatches, name: &str) -> Option<Vec<String>> {
        matches.get_one::<String>(name).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    pub(super) fn worker_command() -> clap::Command {
        clap::Command::new("worker")
            .about("Consume messages with the service's handlers")
            .arg(broker_url_arg())
            .arg(
                Arg::new("backend-url")
                    .long("backend-url")
                    .env("BACKEND_URL")
                    .required(true)
                    .help("Redis, for delayed messages and retries: redis://host:port"),
            )
            .arg(
                Arg::new("handlers")
                    .long("handlers")
                    .env("HANDLERS")
                    .help("Only these handlers (comma-separated names)"),
            )
            .arg(
                Arg::new("groups")
                    .long("groups")
                    .env("GROUPS")
                    .help("Only the handlers of these groups (comma-separated)"),
            )
            .arg(super::grace_arg())
    }

    pub(super) fn declare_command() -> clap::Command {
        clap::Command::new("declare")
            .about("Declare the exchange, dlx/dlq and every handler queue")
            .arg(broker_url_arg())
            .arg(
                Arg::new("interactive-mode")
                    .long("interactive-mode")
                    .short('i')
                    .env("INTERACTIVE_MODE")
                    .action(ArgAction::SetTrue)
                    .help("On a conflict with an existing queue, ask before recreating it"),
            )
            .arg(
                Arg::new("force")
                    .long("force")
                    .short('f')
                    .env("FORCE")
                    .action(ArgAction::SetTrue)
                    .help("Recreate queues whose arguments conflict (their messages are lost)"),
            )
    }

    pub(super) async fn worker(
        service: Microservice,
        matches: &ArgMatches,
    ) -> Result<(), BoxError> {
        let settings = BusSettings {
            broker_url: matches.get_one::<String>("broker-url").cloned(),
            backend_url: matches.get_one::<String>("backend-url").cloned(),
        };
        let app = service.bus_settings(settings).build().await?;
        let mut worker = app.worker().grace_period(super::grace(matches));
        if let Some(names) = csv(matches, "handlers") {
            worker = worker.only_handlers(names);
        }
        if let Some(groups) = csv(matches, "groups") {
            worker = worker.only_groups(groups);
        }
        app.container().startup().await?;
        let result = worker.run(crate::server::shutdown_signal()).await;
        if let Err(error) = app.container().shutdown().await {
            tracing::error!(%error, "shutdown hooks failed");
        }
        Ok(result?)
    }

    pub(super) async fn declare(
        service: &Microservice,
        matches: &ArgMatches,
    ) -> Result<(), BoxError> {
        let url = BrokerUrl::parse(
            matches
                .get_one::<String>("broker-url")
                .ok_or("--broker-url is required")?,
        )?;
        let topology = service.bus_topology();
        let force = matches.get_flag("force");
        let report = match declare_topology(&url, &topology, force).await {
            Err(BusError::TopologyConflict { .. })
                if matches.get_flag("interactive-mode") && confirm()? =>
            {
                declare_topology(&url, &topology, true).await?
            }
            other => other?,
        };
        for queue in &report.declared {
            println!("declared {queue}");
        }
        for queue in &report.recreated {
            println!("recreated {queue} (its messages were dropped)");
        }
        Ok(())
    }

    fn confirm() -> Result<bool, BoxError> {
        if !std::io::stdin().is_terminal() {
            return Err("a queue conflicts and there is no terminal to ask: rerun with --force to recreate it".into());
        }
        print!(
            "A queue exists with other arguments. Delete and recreate it, losing its messages? [y/N] "
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
    }
}

fn print_openapi(service: &Microservice, matches: &ArgMatches) -> Result<(), BoxError> {
    let text = serde_json::to_string_pretty(&service.openapi())?;
    match matches.get_one::<String>("output") {
        Some(path) => {
            std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {path}: {e}"))?
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// Installs the global `tracing` subscriber (`RUST_LOG`, default `info`), in `json` or text
/// format; see [`telemetry::init`](crate::telemetry::init).
pub fn init_logging(format: Option<&str>) -> crate::telemetry::Telemetry {
    crate::telemetry::init(format, "jararaca")
}
