//! `Microservice`: providers, capabilities, interceptors and configuration in one value, and
//! the [`App`] built from it.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use jararaca_api::{ApiDescription, ApiInfo};
use jararaca_di::{
    App, BuildContext, BuildError, Capabilities, Capability, Container, ContainerBuilder,
    Contribution, Interceptors, Provider, ReadinessChecks, Role, SetupContext, ToolContext,
    UnitLayer,
};
use serde::de::DeserializeOwned;

use crate::BoxError;
use crate::cli::Command;

type InterceptorFn = Box<dyn FnOnce(&Container) -> Result<Interceptors, BoxError> + Send>;

/// A service: its providers, capabilities (HTTP controllers, message controllers, …),
/// interceptors and configuration. The same value runs as an HTTP server, a worker or a beat
/// through [`cli::run`](crate::cli::run).
///
/// The service knows no transport: what it is given (a controller, a message controller, a
/// setting) adds itself to the capability it belongs to ([`Contribution`]), and each
/// capability contributes its commands, its part of the API description and what it runs in
/// each role.
///
/// ```
/// use jararaca::Microservice;
/// use jararaca::http::{Controller, HttpApp, Json};
///
/// async fn hello() -> Json<String> {
///     Json("hello".to_string())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let service = Microservice::new("greeter")
///     .controller(Controller::new("HelloController", "/hello").get("/", hello));
/// assert_eq!(service.api().routes[0].path, "/hello");
/// let app = service.build().await.unwrap();
/// assert_eq!(app.openapi()["openapi"], "3.1.0");
/// # });
/// ```
pub struct Microservice {
    name: String,
    info: ApiInfo,
    container: ContainerBuilder,
    capabilities: Capabilities,
    interceptors: Vec<InterceptorFn>,
    readiness: ReadinessChecks,
    commands: Vec<Command>,
}

impl fmt::Debug for Microservice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Microservice")
            .field("name", &self.name)
            .field("container", &self.container)
            .field("capabilities", &self.capabilities)
            .field("interceptors", &self.interceptors.len())
            .field("readiness", &self.readiness)
            .field("commands", &self.commands)
            .finish()
    }
}

impl Microservice {
    /// A service named `name` (used in logs, the API title and queue names).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            info: ApiInfo::new(name.clone()),
            name,
            container: Container::builder(),
            capabilities: Capabilities::default(),
            interceptors: Vec::new(),
            readiness: ReadinessChecks::default(),
            commands: Vec::new(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's version (`0.1.0` unless [`version`](Self::version) set it).
    pub fn get_version(&self) -> &str {
        &self.info.version
    }

    /// Sets the service's version: shown by `--version` and in the OpenAPI document.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = version.into();
        self
    }

    /// Sets the API description shown in the OpenAPI document.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.info.description = Some(description.into());
        self
    }

    /// Registers providers on the container builder.
    pub fn providers(
        mut self,
        register: impl FnOnce(ContainerBuilder) -> ContainerBuilder,
    ) -> Self {
        self.container = register(self.container);
        self
    }

    /// Registers one provider.
    pub fn provide(mut self, provider: Provider) -> Self {
        self.container = self.container.provide(provider);
        self
    }

    /// Reads `T` from the environment at startup and provides it (every missing or invalid
    /// variable is reported at once).
    pub fn config<T: DeserializeOwned + Send + Sync + 'static>(mut self) -> Self {
        self.container = self.container.config::<T>();
        self
    }

    /// Adds a controller — an HTTP [`Controller`](crate::http::Controller), a message
    /// controller — to the capability it belongs to.
    pub fn controller(self, controller: impl Contribution) -> Self {
        self.with(controller)
    }

    /// Adds anything that belongs to a capability: a controller, a capability's setting
    /// (`RouterFactory`, `TraceLayer`, `BusSettings`), or a capability itself.
    pub fn with(mut self, contribution: impl Contribution) -> Self {
        contribution.contribute(&mut self.capabilities);
        self
    }

    /// Adds a capability (replacing one of the same type): for capabilities that nothing
    /// the service is given adds by itself.
    pub fn capability<C: Capability>(mut self, capability: C) -> Self {
        self.capabilities.insert(capability);
        self
    }

    /// The capability of type `C`, if the service has one.
    pub fn get_capability<C: Capability>(&self) -> Option<&C> {
        self.capabilities.get::<C>()
    }

    /// Wraps every unit of work of every transport — HTTP routes, message handlers and
    /// whatever capabilities come — in `layer`, inside the unit of work and the DI scope (so
    /// it can inject values and register after-commit actions). Write it once for any
    /// [`Envelope`](crate::Envelope); give a whole `ServiceBuilder` at once.
    pub fn interceptor<L: UnitLayer>(mut self, layer: L) -> Self {
        self.interceptors
            .push(Box::new(move |_| Ok(Interceptors::new().layer(layer))));
        self
    }

    /// Like [`interceptor`](Self::interceptor), for layers made from the built container:
    /// `.interceptor_with(|c| Ok(TransactionLayer::new((*c.get::<Db>()?).clone())))`.
    pub fn interceptor_with<L, F>(mut self, make: F) -> Self
    where
        F: FnOnce(&Container) -> Result<L, BoxError> + Send + 'static,
        L: UnitLayer,
    {
        self.interceptors
            .push(Box::new(move |c| Ok(Interceptors::new().layer(make(c)?))));
        self
    }

    /// Adds a readiness check reported by `/health/ready`.
    pub fn readiness_check<F, Fut>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.readiness.add(name, check);
        self
    }

    /// Adds a startup hook (hooks start in order, before any listener or consumer).
    pub fn on_startup<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.container = self.container.on_startup(name, hook);
        self
    }

    /// Adds a shutdown hook (hooks stop in reverse order, after every part has drained).
    pub fn on_shutdown<F, Fut>(mut self, name: &'static str, hook: F) -> Self
    where
        F: Fn(Container) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.container = self.container.on_shutdown(name, hook);
        self
    }

    /// Adds a command of the service's own to its CLI.
    pub fn command(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }

    /// The API description (routes, WebSocket messages, exposed types), without building
    /// anything (no configuration needed).
    pub fn api(&self) -> ApiDescription {
        let mut api = ApiDescription::new(self.info.clone());
        for capability in self.capabilities.iter() {
            capability.describe(&mut api);
        }
        api
    }

    /// The environment variables the service reads in `role` beyond its command's options:
    /// its capabilities', its typed configurations' (each named after its type) and the
    /// logging and tracing ones. Listed in the role command's `--help`.
    pub fn environment(&self, role: &str) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = self
            .capabilities
            .iter()
            .flat_map(|c| c.environment(role))
            .map(|v| (v.name.to_owned(), v.help.to_owned()))
            .collect();
        for (name, type_name) in self.container.config_variables() {
            let short = type_name.rsplit("::").next().unwrap_or(type_name);
            vars.push((name.to_owned(), format!("Read into the service's {short}")));
        }
        vars.extend(
            crate::telemetry::ENVIRONMENT
                .iter()
                .map(|v| (v.name.to_owned(), v.help.to_owned())),
        );
        let mut seen = BTreeSet::new();
        vars.retain(|(name, _)| seen.insert(name.clone()));
        vars
    }

    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub(crate) fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// Runs `command`, a tool command of one of its capabilities (`declare`, `openapi`).
    pub async fn run_tool(
        &self,
        command: &str,
        matches: &clap::ArgMatches,
    ) -> Result<(), BoxError> {
        let api = self.api();
        let (owner, _) = self
            .capabilities
            .command_owner(command)
            .ok_or_else(|| format!("no capability of {} has a command `{command}`", self.name))?;
        owner
            .run_tool(
                command,
                matches,
                ToolContext {
                    service: &self.name,
                    description: &api,
                },
            )
            .await
    }

    /// Builds the container (checking the whole graph and every configuration) and every
    /// capability, without a role (for tests and embedding: `app.router()`, `app.worker()`).
    pub async fn build(self) -> Result<App, AppBuildError> {
        self.build_inner(None).await
    }

    /// Builds it to run in `role` ([`App::run`]): capabilities read the role's arguments
    /// (`worker --broker-url`, say).
    pub async fn build_for(self, role: Role) -> Result<App, AppBuildError> {
        self.build_inner(Some(role)).await
    }

    async fn build_inner(self, role: Option<Role>) -> Result<App, AppBuildError> {
        let description = Arc::new(self.api());
        let mut capabilities = self.capabilities;
        let mut container = Some(self.container);
        let mut readiness = self.readiness;
        for capability in capabilities.iter_mut() {
            let mut cx =
                SetupContext::new(&self.name, role.as_ref(), &mut container, &mut readiness);
            capability
                .setup(&mut cx)
                .map_err(|source| AppBuildError::Capability {
                    name: capability.name(),
                    source,
                })?;
        }
        let container = container.unwrap_or_else(Container::builder).build().await?;
        let mut interceptors = Interceptors::new();
        for make in self.interceptors {
            interceptors =
                interceptors.extend(make(&container).map_err(AppBuildError::Interceptor)?);
        }
        let service: Arc<str> = Arc::from(self.name.as_str());
        let mut parts = Vec::new();
        for capability in capabilities.into_vec() {
            let name = capability.name();
            let part = capability
                .build(BuildContext {
                    service: Arc::clone(&service),
                    container: container.clone(),
                    interceptors: interceptors.clone(),
                    role: role.clone(),
                    readiness: readiness.clone(),
                    description: Arc::clone(&description),
                })
                .await
                .map_err(|source| AppBuildError::Capability { name, source })?;
            parts.push((name, part));
        }
        Ok(App::new(self.name, container, description, role, parts))
    }
}

/// Why a [`Microservice`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppBuildError {
    /// The container's graph or configuration is invalid, or a singleton failed to build.
    #[error(transparent)]
    Container(#[from] BuildError),
    /// An interceptor made from the container failed.
    #[error("an interceptor could not be made: {0}")]
    Interceptor(#[source] BoxError),
    /// A capability could not be set up or built (duplicate routes, a bad `BROKER_URL`, …).
    #[error("{name}: {source}")]
    Capability {
        /// The capability.
        name: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
}
