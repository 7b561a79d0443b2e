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
    crate::server::serve(app, SocketAddr::new(host, port), grace(matches)).await?;
    Ok(())
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
