//! The seam every capability plugs into: [`Capability`] before the service is built, [`Part`]
//! after, and the [`Role`] a process runs in.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clap::ArgMatches;
use futures_util::future::BoxFuture;
use jararaca_api::ApiDescription;
use tokio::sync::watch;

use super::intercept::Interceptors;
use super::readiness::ReadinessChecks;
use crate::{BoxError, Container, ContainerBuilder};

/// The role a process runs in, chosen by its command (`server`, `worker`, `beat`), with the
/// arguments that command was given. Every capability is asked what it runs in it: in
/// `server`, HTTP listens and, with no broker, the bus runs its handlers in the same process.
#[derive(Debug, Clone)]
pub struct Role {
    name: String,
    matches: ArgMatches,
}

impl Role {
    /// Serves HTTP (and, on embedded defaults, everything else in the same process).
    pub const SERVER: &'static str = "server";
    /// Consumes messages.
    pub const WORKER: &'static str = "worker";
    /// Dispatches scheduled actions.
    pub const BEAT: &'static str = "beat";

    /// The role `name` with no command-line arguments (every option at its default).
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_matches(name, ArgMatches::default())
    }

    /// The role `name` as its command parsed `matches`.
    pub fn with_matches(name: impl Into<String>, matches: ArgMatches) -> Self {
        Self {
            name: name.into(),
            matches,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is the role named `name`.
    pub fn is(&self, name: &str) -> bool {
        self.name == name
    }

    /// The parsed arguments of its command.
    pub fn matches(&self) -> &ArgMatches {
        &self.matches
    }

    /// The value of argument `id`, if the role's command has it and it was given (or has a
    /// default).
    pub fn arg<T: Clone + Send + Sync + 'static>(&self, id: &str) -> Option<T> {
        self.matches.try_get_one::<T>(id).ok().flatten().cloned()
    }

    /// Whether flag `id` is set.
    pub fn flag(&self, id: &str) -> bool {
        self.matches
            .try_get_one::<bool>(id)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// How a part is told to stop: the stop request, and how long in-flight work may take after
/// it.
#[derive(Debug, Clone)]
pub struct Stop {
    requested: watch::Receiver<bool>,
    grace: Duration,
}

/// Requests the stop of every [`Stop`] made with it.
#[derive(Debug)]
pub struct StopHandle {
    tx: watch::Sender<bool>,
}

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        let _ = self.tx.send(true);
    }
}

impl Stop {
    /// A stop with this grace period, and the handle that requests it.
    pub fn new(grace: Duration) -> (StopHandle, Stop) {
        let (tx, requested) = watch::channel(false);
        (StopHandle { tx }, Stop { requested, grace })
    }

    /// Completes once the stop is requested (or its handle is gone).
    pub async fn requested(&self) {
        let mut requested = self.requested.clone();
        let _ = requested.wait_for(|stop| *stop).await;
    }

    /// Whether the stop has been requested.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// How long in-flight work may take once the stop is requested.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

/// Whether a command runs the service in a role or runs once and exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Builds the service, runs the startup hooks, runs every capability's part for this role
    /// until a stop signal, then the shutdown hooks: `server`, `worker`, `beat`.
    Role,
    /// Runs once without building the service: `declare`, `openapi`, `gen-tsi`.
    Tool,
}

/// A command a capability adds to the service's CLI.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Its name, arguments and help.
    pub command: clap::Command,
    /// What it does.
    pub kind: CommandKind,
}

impl CommandSpec {
    /// A command that runs the service in the role of its name.
    pub fn role(command: clap::Command) -> Self {
        Self {
            command,
            kind: CommandKind::Role,
        }
    }

    /// A command that runs once ([`Capability::run_tool`]).
    pub fn tool(command: clap::Command) -> Self {
        Self {
            command,
            kind: CommandKind::Tool,
        }
    }
}

/// An environment variable read outside any command-line option, listed in the help of the
/// commands whose role reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: &'static str,
    /// What it sets, and what happens without it.
    pub help: &'static str,
}

impl EnvVar {
    /// A variable and its help.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help }
    }
}

/// What a capability sees before the container is built.
pub struct SetupContext<'a> {
    pub(crate) service: &'a str,
    pub(crate) role: Option<&'a Role>,
    pub(crate) container: &'a mut Option<ContainerBuilder>,
    pub(crate) readiness: &'a mut ReadinessChecks,
}

impl fmt::Debug for SetupContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupContext")
            .field("service", &self.service)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<'a> SetupContext<'a> {
    /// A context over `container` and `readiness`, for a host other than the facade.
    pub fn new(
        service: &'a str,
        role: Option<&'a Role>,
        container: &'a mut Option<ContainerBuilder>,
        readiness: &'a mut ReadinessChecks,
    ) -> Self {
        Self {
            service,
            role,
            container,
            readiness,
        }
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        self.service
    }

    /// The role the service is built for; `None` when it is built without the CLI (in tests).
    pub fn role(&self) -> Option<&Role> {
        self.role
    }

    /// Registers providers.
    pub fn providers(&mut self, register: impl FnOnce(ContainerBuilder) -> ContainerBuilder) {
        let builder = self.container.take().unwrap_or_else(Container::builder);
        *self.container = Some(register(builder));
    }

    /// Adds a readiness check.
    pub fn readiness_check<F, Fut>(&mut self, name: impl Into<String>, check: F)
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.readiness.add(name, check);
    }
}

/// What a capability is built with: the container, the shared interceptor stack, the role.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The service's name.
    pub service: Arc<str>,
    /// The built container (singletons ready).
    pub container: Container,
    /// The interceptors every unit of every transport is wrapped in.
    pub interceptors: Interceptors,
    /// The role the service is built for; `None` when built without the CLI.
    pub role: Option<Role>,
    /// Every readiness check of the service.
    pub readiness: ReadinessChecks,
    /// The API description of the whole service.
    pub description: Arc<ApiDescription>,
}

/// What a tool command sees.
#[derive(Debug, Clone, Copy)]
pub struct ToolContext<'a> {
    /// The service's name.
    pub service: &'a str,
    /// The API description of the whole service.
    pub description: &'a ApiDescription,
}

/// A capability of a service — HTTP, the message bus, WebSocket, scheduled actions, client
/// generation — as a value the service is given. Through this one trait it contributes its
/// commands, its entries in the API description, its providers and readiness checks, and what
/// it runs in each role; the service knows no capability by name.
pub trait Capability: Any + Send {
    /// Its name, for logs and errors.
    fn name(&self) -> &'static str;

    /// The commands it adds to the CLI.
    fn commands(&self) -> Vec<CommandSpec> {
        Vec::new()
    }

    /// The environment variables it reads in `role` that are not the options of a command
    /// (clap's help shows those already), for the help of the role's command.
    fn environment(&self, role: &str) -> Vec<EnvVar> {
        let _ = role;
        Vec::new()
    }

    /// Adds its routes, messages and types to the API description.
    fn describe(&self, api: &mut ApiDescription) {
        let _ = api;
    }

    /// Registers its providers, hooks and readiness checks, before the container is built.
    fn setup(&mut self, cx: &mut SetupContext<'_>) -> Result<(), BoxError> {
        let _ = cx;
        Ok(())
    }

    /// Builds what it runs (routes, consumers), with the built container and the shared
    /// interceptors.
    fn build(
        self: Box<Self>,
        cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>>;

    /// Runs one of its [`CommandKind::Tool`] commands.
    fn run_tool<'a>(
        &'a self,
        command: &'a str,
        matches: &'a ArgMatches,
        cx: ToolContext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        let _ = (matches, cx);
        let error: BoxError = format!("{} has no command `{command}`", self.name()).into();
        Box::pin(async move { Err(error) })
    }
}

/// A built capability: what it runs in each role. `run` must do no work itself: the host
/// polls the futures only after the startup hooks have finished.
pub trait Part: Any + Send + Sync {
    /// The work it does in `role`, running until `stop` is requested and then draining within
    /// its grace period; `None` when it has nothing to do in that role.
    fn run(&self, role: &Role, stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>>;
}

/// Something a service is given that belongs to a capability — an HTTP controller, a
/// message controller, a setting — and adds itself to it.
pub trait Contribution {
    /// Adds itself to its capability in `capabilities` (creating the capability if needed).
    fn contribute(self, capabilities: &mut Capabilities);
}

/// The capabilities of a service, at most one of each type.
#[derive(Default)]
pub struct Capabilities {
    list: Vec<Box<dyn Capability>>,
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|c| c.name()))
            .finish()
    }
}

impl Capabilities {
    /// The capability of type `C`, made with `make` if the service has none yet.
    pub fn get_or_insert_with<C: Capability>(&mut self, make: impl FnOnce() -> C) -> &mut C {
        let index = match self
            .list
            .iter()
            .position(|c| (**c).type_id() == std::any::TypeId::of::<C>())
        {
            Some(index) => index,
            None => {
                self.list.push(Box::new(make()));
                self.list.len() - 1
            }
        };
        let any: &mut dyn Any = &mut *self.list[index];
        match any.downcast_mut::<C>() {
            Some(capability) => capability,
            None => unreachable!("the capability at this index is a C"),
        }
    }

    /// Adds `capability`, replacing the one of its type if there is one.
    pub fn insert<C: Capability>(&mut self, capability: C) {
        match self
            .list
            .iter()
            .position(|c| (**c).type_id() == std::any::TypeId::of::<C>())
        {
            Some(index) => self.list[index] = Box::new(capability),
            None => self.list.push(Box::new(capability)),
        }
    }

    /// The capability of type `C`, if the service has one.
    pub fn get<C: Capability>(&self) -> Option<&C> {
        self.list.iter().find_map(|c| {
            let any: &dyn Any = &**c;
            any.downcast_ref::<C>()
        })
    }

    /// Every capability, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Capability> {
        self.list.iter().map(|c| &**c)
    }

    /// Every capability, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Capability>> {
        self.list.iter_mut()
    }

    /// The capabilities, to build them.
    pub fn into_vec(self) -> Vec<Box<dyn Capability>> {
        self.list
    }

    /// The capability that adds command `name`, with the command's kind.
    pub fn command_owner(&self, name: &str) -> Option<(&dyn Capability, CommandKind)> {
        self.iter().find_map(|c| {
            c.commands()
                .into_iter()
                .find(|spec| spec.command.get_name() == name)
                .map(|spec| (c, spec.kind))
        })
    }
}
