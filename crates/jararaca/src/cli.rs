//! The application CLI: a service's `main` hands its [`Microservice`] to [`run`] and gets
//! the commands of its capabilities, with the reference's option names and environment
//! variables:
//!
//! * HTTP: `server` (`--host`/`HOST`, default `0.0.0.0`; `--port`/`PORT`, default `8000`)
//!   and `openapi` (prints the OpenAPI document, or writes it to `--output`);
//! * the bus (feature `bus`): `worker` and `declare`;
//! * the TypeScript client (feature `tsgen`, with `jararaca::tsgen::TypeScript` given to the
//!   service): `gen-tsi FILE_PATH` (`--stdout`, `--post-process "cmd {file}"`);
//! * commands a service adds itself with [`Microservice::command`];
//! * on every role command, `--reload` and `--src-dir`: rebuild and restart on every change
//!   to the sources ([`reload`](crate::reload)).
//!
//! A role command (`server`, `worker`, …) builds the service for that role, runs the startup
//! hooks, then runs what every capability does in that role — in `server` with no broker the
//! bus handlers run beside the routes — until SIGINT or SIGTERM; then every part drains
//! within `--gracious-shutdown-seconds` (`GRACIOUS_SHUTDOWN_SECONDS`, default 20) and the
//! shutdown hooks run.
//!
//! Each role command's `--help` ends with the environment variables the service reads in
//! that role besides its options (which show their own): its capabilities' (`BROKER_URL` and
//! `BACKEND_URL` for `server`, …), its typed configurations' ([`Microservice::config`]) and
//! the logging ones. A `#[serde(flatten)]`ed configuration's fields are not listed.
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

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::process::ExitCode;

use clap::{Arg, ArgMatches};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_di::{CommandKind, Role};

use crate::{BoxError, Microservice};

type RunFn =
    Box<dyn FnOnce(Microservice, ArgMatches) -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// A subcommand a service adds to its own CLI.
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

/// The service's command line: its capabilities' commands and its own. When two
/// capabilities add a command of the same name, the first one added keeps it.
pub fn command(service: &Microservice, extra: &[Command]) -> clap::Command {
    let name = service.name().to_owned();
    let mut cli = clap::Command::new(name.clone())
        .about(format!("The {name} service"))
        .version(service.get_version().to_owned())
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .env("LOG_FORMAT")
                .global(true)
                .value_parser(["text", "json"])
                .default_value("text")
                // Listed after each command's own options, not among them.
                .display_order(usize::MAX)
                .help("Log line format"),
        );
    let mut seen = BTreeSet::new();
    let capability_commands = service
        .capabilities()
        .iter()
        .flat_map(|c| c.commands())
        .map(|spec| match spec.kind {
            CommandKind::Role => {
                let environment = environment_help(&service.environment(spec.command.get_name()));
                crate::reload::add_args(spec.command).after_help(environment)
            }
            CommandKind::Tool => spec.command,
        });
    for command in capability_commands.chain(extra.iter().map(|c| c.command.clone())) {
        if seen.insert(command.get_name().to_owned()) {
            cli = cli.subcommand(command);
        }
    }
    cli
}

/// The help's list of the variables a role reads beyond its options, laid out as clap lays
/// out the options above it.
fn environment_help(vars: &[(String, String)]) -> String {
    let mut help = String::from("Environment:");
    for (name, what) in vars {
        help.push_str(&format!("\n  {name}\n          {what}"));
    }
    help
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
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let matches = match command(&service, &commands).try_get_matches_from(&args) {
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
        Some((name, m)) => dispatch(service, commands, name, m, &args).await,
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

async fn dispatch(
    service: Microservice,
    commands: Vec<Command>,
    name: &str,
    matches: &ArgMatches,
    args: &[std::ffi::OsString],
) -> Result<(), BoxError> {
    let kind = service
        .capabilities()
        .command_owner(name)
        .map(|(_, kind)| kind);
    match kind {
        Some(CommandKind::Role) if crate::reload::requested(matches) => {
            crate::reload::run(args, matches).await
        }
        Some(CommandKind::Role) => {
            let role = Role::with_matches(name, matches.clone());
            let app = service.build_for(role.clone()).await?;
            app.run(&role, jararaca_di::app::shutdown_signal()).await
        }
        Some(CommandKind::Tool) => service.run_tool(name, matches).await,
        None => match commands.into_iter().find(|c| c.command.get_name() == name) {
            Some(command) => (command.run)(service, matches.clone()).await,
            None => Err(format!("unknown command `{name}`").into()),
        },
    }
}

/// Installs the global `tracing` subscriber (`RUST_LOG`, default `info`), in `json` or text
/// format; see [`telemetry::init`](crate::telemetry::init).
pub fn init_logging(format: Option<&str>) -> crate::telemetry::Telemetry {
    crate::telemetry::init(format, "jararaca")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_services_and_the_log_format_comes_after_a_commands_options() {
        let service = Microservice::new("tasks").version("1.2.3").controller(
            crate::http::Controller::new("Hello", "/hello").get("/", || async { "hi" }),
        );
        let mut cli = command(&service, &[]);
        assert_eq!(cli.render_version().trim(), "tasks 1.2.3");
        let version = cli
            .clone()
            .try_get_matches_from(["tasks", "--version"])
            .unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);

        // Global options reach the subcommands when the command is built, as parsing does.
        cli.build();
        let server = cli.find_subcommand_mut("server").unwrap();
        let help = server.render_help().to_string();
        let log_format = help.find("--log-format").unwrap();
        for option in [
            "--host",
            "--port",
            "--max-connections",
            "--gracious-shutdown-seconds",
        ] {
            let at = help
                .find(option)
                .unwrap_or_else(|| panic!("{option} in {help}"));
            assert!(at < log_format, "{help}");
        }
    }
}
