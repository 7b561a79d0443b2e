//! A service as capabilities plugged into one seam, and the [`App`] built from them.
//!
//! A capability (HTTP, the bus, WebSocket, scheduled actions, client generation) is a value
//! implementing [`Capability`]: it adds commands to the CLI, entries to the API description,
//! providers and readiness checks to the container, and once built (a [`Part`]) says what it
//! runs in each [`Role`]. The service gives one interceptor stack ([`Interceptors`]) that
//! every capability wraps around each of its units of work.

mod capability;
mod intercept;
mod readiness;
mod unit;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use jararaca_api::ApiDescription;

pub use capability::{
    BuildContext, Capabilities, Capability, CommandKind, CommandSpec, Contribution, EnvVar, Part,
    Role, SetupContext, Stop, StopHandle, ToolContext,
};
pub use intercept::{
    Intercept, InterceptFuture, InterceptLayer, Interceptors, UnitLayer, UnitService,
};
pub use readiness::ReadinessChecks;
pub use unit::{Unit, UnitOutcome};

use crate::{BoxError, Container};

/// How long in-flight work may take after a stop signal when the role's command does not say
/// (`--gracious-shutdown-seconds`, the reference's default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

/// A built service: its container (singletons ready), its API description and the built
/// parts of its capabilities.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    name: String,
    container: Container,
    description: Arc<ApiDescription>,
    role: Option<Role>,
    parts: Vec<(&'static str, Box<dyn Part>)>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.inner.name)
            .field("role", &self.inner.role)
            .field(
                "parts",
                &self.inner.parts.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app from its built pieces (what a host such as the facade's `Microservice` makes).
    pub fn new(
        name: impl Into<String>,
        container: Container,
        description: Arc<ApiDescription>,
        role: Option<Role>,
        parts: Vec<(&'static str, Box<dyn Part>)>,
    ) -> Self {
        Self {
            inner: Arc::new(AppInner {
                name: name.into(),
                container,
                description,
                role,
                parts,
            }),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The container, singletons built.
    pub fn container(&self) -> &Container {
        &self.inner.container
    }

    /// The API description.
    pub fn description(&self) -> &ApiDescription {
        &self.inner.description
    }

    /// The role it was built for; `None` when built without the CLI.
    pub fn role(&self) -> Option<&Role> {
        self.inner.role.as_ref()
    }

    /// The built part of type `P`, if a capability made one.
    pub fn part<P: Part>(&self) -> Option<&P> {
        self.inner.parts.iter().find_map(|(_, part)| {
            let any: &dyn Any = &**part;
            any.downcast_ref::<P>()
        })
    }

    /// Runs the service in `role` until `shutdown` completes.
    ///
    /// The startup hooks finish before any part starts (no listener or consumer runs before
    /// them); then every capability's part for the role runs. When `shutdown` completes, or a
    /// part fails, every part is asked to stop and drains within the grace period
    /// (`--gracious-shutdown-seconds` of the role's command, else [`DEFAULT_GRACE`]); the
    /// shutdown hooks run once all of them have finished.
    pub async fn run(
        &self,
        role: &Role,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BoxError> {
        let grace = role
            .arg::<u64>("gracious-shutdown-seconds")
            .map_or(DEFAULT_GRACE, Duration::from_secs);
        let (handle, stop) = Stop::new(grace);
        let mut running: FuturesUnordered<_> = self
            .inner
            .parts
            .iter()
            .filter_map(|(name, part)| {
                let run = part.run(role, stop.clone())?;
                Some(async move { (*name, run.await) })
            })
            .collect();
        if running.is_empty() {
            return Err(format!(
                "nothing to run as `{role}`: no capability of {} runs in this role",
                self.inner.name
            )
            .into());
        }
        // The parts' futures are lazy: nothing listens or consumes before this completes.
        self.container().startup().await?;
        tracing::info!(service = %self.inner.name, %role, "started");
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut failure: Option<BoxError> = None;
        loop {
            tokio::select! {
                () = &mut shutdown, if !stopping => {
                    tracing::info!(%role, "stopping: finishing in-flight work");
                    stopping = true;
                    handle.stop();
                }
                finished = running.next() => match finished {
                    None => break,
                    Some((name, Ok(()))) => {
                        if !stopping {
                            tracing::info!(part = name, "finished");
                        }
                    }
                    Some((name, Err(error))) => {
                        tracing::error!(part = name, %error, "failed; stopping the others");
                        failure.get_or_insert(format!("{name}: {error}").into());
                        stopping = true;
                        handle.stop();
                    }
                },
            }
        }
        if let Err(error) = self.container().shutdown().await {
            tracing::error!(%error, "shutdown hooks failed");
        }
        tracing::info!(service = %self.inner.name, "stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// `--gracious-shutdown-seconds` (`GRACIOUS_SHUTDOWN_SECONDS`, default 20): how long
/// in-flight work may take after a stop signal. Every role command takes it; [`App::run`]
/// reads it.
pub fn grace_arg() -> clap::Arg {
    clap::Arg::new("gracious-shutdown-seconds")
        .long("gracious-shutdown-seconds")
        .env("GRACIOUS_SHUTDOWN_SECONDS")
        .default_value("20")
        .value_parser(clap::value_parser!(u64))
        .action(clap::ArgAction::Set)
        .help("Seconds in-flight work may take after SIGTERM/SIGINT")
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
