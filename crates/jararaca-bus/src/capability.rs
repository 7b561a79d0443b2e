//! The bus as a capability of a service: its message controllers, the `worker` and `declare`
//! commands, publishing from every unit of work, and the in-process broker when no
//! `BROKER_URL` is given.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clap::{Arg, ArgMatches};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_di::{
    App, BoxError, BuildContext, Capabilities, Capability, CatchPanicLayer, CommandSpec,
    Contribution, EnvVar, Part, Role, ScopeLayer, SetupContext, Stop, ToolContext, UnitOfWorkLayer,
};
use tower::ServiceBuilder;

#[cfg(feature = "redis")]
use crate::delayed::RedisStore;
use crate::delayed::{DelayedStore, InMemoryStore};
#[cfg(feature = "amqp")]
use crate::{AmqpPublisher, BrokerUrl};
use crate::{
    Bus, BusError, BusLayer, Delivery, Handler, HandlerService, InMemoryBroker, MessageController,
    Publisher, QueueSpec, Topology, Worker,
};

/// Where a service's messages go: read from `BROKER_URL` and `BACKEND_URL` unless given.
///
/// Given to a service, they are its broker and backend in every role: `server` uses them
/// instead of the environment variables, and `worker`, `beat` and `declare` use them unless
/// `--broker-url`/`--backend-url` is given on their command line. The settings in use are in
/// the container, for other capabilities to read.
#[derive(Debug, Clone, Default)]
pub struct BusSettings {
    /// RabbitMQ, `amqp://user:pass@host:port/vhost?exchange=X&prefetch_count=N`; without it,
    /// the in-process broker.
    pub broker_url: Option<String>,
    /// Redis, for delayed messages and retries; without it, an in-process store.
    pub backend_url: Option<String>,
}

impl BusSettings {
    /// Whether the messages stay in this process (no broker): capabilities that read the
    /// settings from the container then run in process too (the beat).
    pub fn in_process(&self) -> bool {
        self.broker_url.is_none()
    }

    /// `BROKER_URL` and `BACKEND_URL` from the environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            broker_url: var("BROKER_URL"),
            backend_url: var("BACKEND_URL"),
        }
    }
}

/// Given to a service, these settings replace `BROKER_URL` and `BACKEND_URL`.
impl Contribution for BusSettings {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities
            .get_or_insert_with(MessageBus::default)
            .settings = Some(self);
    }
}

impl Contribution for MessageController {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities
            .get_or_insert_with(MessageBus::default)
            .controllers
            .push(self);
    }
}

/// The message bus of a service: its message controllers, run by the `worker` command (and
/// by `server` when messages stay in the process), and the bus every unit of work publishes
/// with.
///
/// With a broker it connects when the service is built (retrying per the URL's
/// `connection_retry_*`), and `/health/ready` checks RabbitMQ and, with a backend, Redis.
///
/// The bus is a singleton of the service's container: [`Bus`] (to publish outside a unit
/// of work) and [`UnitBus`](crate::UnitBus) (staged in the current unit, from HTTP routes
/// as from handlers) find it there.
#[derive(Default)]
pub struct MessageBus {
    controllers: Vec<MessageController>,
    settings: Option<BusSettings>,
    extra_queues: Vec<ExtraQueues>,
}

impl fmt::Debug for MessageBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageBus")
            .field("controllers", &self.controllers)
            .field("settings", &self.settings)
            .field("extra_queues", &self.extra_queues.len())
            .finish()
    }
}

/// Queues another capability adds to `declare`, from the service's name.
type ExtraQueues = Arc<dyn Fn(&str) -> Vec<QueueSpec> + Send + Sync>;

/// Handlers that another capability (scheduled actions) adds to the service's worker, built
/// with the container: the bus's worker consumes them beside its own handlers, on the same
/// connection and under the same `--handlers`/`--groups` filters. A singleton of the
/// service's container.
#[derive(Clone, Default)]
pub struct WorkerHandlers {
    handlers: Arc<std::sync::Mutex<Vec<Handler>>>,
}

impl fmt::Debug for WorkerHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list().iter()).finish()
    }
}

impl WorkerHandlers {
    /// Adds a handler to the worker.
    pub fn add(&self, handler: Handler) {
        self.handlers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handler);
    }

    /// The handlers added so far.
    pub fn list(&self) -> Vec<Handler> {
        self.handlers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl MessageBus {
    /// Every handler as the service `service` runs them.
    pub fn handlers(&self, service: &str) -> Vec<Handler> {
        self.controllers
            .iter()
            .flat_map(|c| c.handlers(service))
            .collect()
    }

    /// The queues the handlers of service `service` consume from, as `declare` creates them
    /// (with the queues other capabilities added, [`MessageBus::declare_queues`]).
    pub fn topology(&self, service: &str) -> Topology {
        let extra = self.extra_queues.iter().flat_map(|queues| queues(service));
        self.handlers(service)
            .iter()
            .map(Handler::queue_spec)
            .chain(extra)
            .fold(Topology::new(), Topology::queue)
    }

    /// Adds the queues `queues(service name)` to what `declare` creates: how scheduled
    /// actions get their queues declared.
    pub fn declare_queues(
        &mut self,
        queues: impl Fn(&str) -> Vec<QueueSpec> + Send + Sync + 'static,
    ) {
        self.extra_queues.push(Arc::new(queues));
    }
}

/// `--broker-url`.
fn broker_url_arg(in_code: bool) -> Arg {
    url_arg(
        "broker-url",
        "BROKER_URL",
        "RabbitMQ: amqp://user:pass@host:port/vhost?exchange=X&prefetch_count=N",
        in_code,
    )
}

/// A URL option, required and read from `env` unless the service was given that URL, which
/// the environment does not replace (only the option does).
fn url_arg(id: &'static str, env: &'static str, help: &'static str, in_code: bool) -> Arg {
    let arg = Arg::new(id).long(id);
    if in_code {
        arg.help(format!("{help} (instead of the service's own)"))
    } else {
        arg.env(env).required(true).help(help)
    }
}

/// A URL option of a role or a tool: given on the command line, it wins; otherwise the
/// service's own setting (`in_code`), else the environment variable the option reads.
fn url_option(matches: &ArgMatches, id: &str, in_code: Option<&String>) -> Option<String> {
    let Ok(value) = matches.try_get_one::<String>(id) else {
        // The command has no such option.
        return in_code.cloned();
    };
    match matches.value_source(id) {
        Some(clap::parser::ValueSource::CommandLine) => value.cloned(),
        _ => in_code.or(value).cloned(),
    }
}

fn csv(role: &Role, name: &str) -> Option<Vec<String>> {
    role.arg::<String>(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn worker_command(settings: Option<&BusSettings>) -> clap::Command {
    clap::Command::new(Role::WORKER)
        .about("Consume messages with the service's handlers")
        .arg(broker_url_arg(settings.is_some_and(|s| s.broker_url.is_some())))
        .arg(url_arg(
            "backend-url",
            "BACKEND_URL",
            "Redis, for delayed messages and retries: redis://host:port",
            settings.is_some_and(|s| s.backend_url.is_some()),
        ))
        .arg(
            Arg::new("handlers")
                .long("handlers")
                .env("HANDLERS")
                .help("Only these handlers (comma-separated: a handler's name, method, Controller.method or queue)"),
        )
        .arg(
            Arg::new("groups")
                .long("groups")
                .env("GROUPS")
                .help("Only the handlers of these groups (comma-separated)"),
        )
        .arg(jararaca_di::app::grace_arg())
}

#[cfg(feature = "amqp")]
fn declare_command(settings: Option<&BusSettings>) -> clap::Command {
    clap::Command::new("declare")
        .about("Declare the exchange, dlx/dlq and every handler queue")
        .arg(broker_url_arg(
            settings.is_some_and(|s| s.broker_url.is_some()),
        ))
        .arg(
            Arg::new("interactive-mode")
                .long("interactive-mode")
                .short('i')
                .env("INTERACTIVE_MODE")
                .action(clap::ArgAction::SetTrue)
                .help("On a conflict with an existing queue, ask before recreating it"),
        )
        .arg(
            Arg::new("force")
                .long("force")
                .short('f')
                .env("FORCE")
                .action(clap::ArgAction::SetTrue)
                .help("Recreate queues whose arguments conflict, when they hold no messages"),
        )
        .arg(
            Arg::new("discard-messages")
                .long("discard-messages")
                .env("DISCARD_MESSAGES")
                .action(clap::ArgAction::SetTrue)
                .help("With --force, recreate conflicting queues even if their messages are lost"),
        )
}

impl Capability for MessageBus {
    fn name(&self) -> &'static str {
        "bus"
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec::role(worker_command(self.settings.as_ref())),
            #[cfg(feature = "amqp")]
            CommandSpec::tool(declare_command(self.settings.as_ref())),
        ]
    }

    fn environment(&self, role: &str) -> Vec<EnvVar> {
        let mut vars = Vec::new();
        if role != Role::WORKER && role != Role::BEAT && self.settings.is_none() {
            vars.extend([
                EnvVar::new(
                    "BROKER_URL",
                    "RabbitMQ the units of work publish to (amqp://user:pass@host:port/vhost?exchange=X); unset: messages stay in this process and its handlers run here",
                ),
                EnvVar::new(
                    "BACKEND_URL",
                    "Redis for delayed messages and retries (redis://host:port); unset: kept in this process",
                ),
            ]);
        }
        if role == Role::WORKER {
            vars.extend([
                EnvVar::new(
                    "AMQP_PREFETCH_COUNT",
                    "Messages in flight per channel, when the broker URL sets no prefetch_count",
                ),
                EnvVar::new(
                    "AMQP_SHARED_DEFAULT_CHANNEL",
                    "Handlers without a channel id share one channel (true/false)",
                ),
                EnvVar::new(
                    "AMQP_PREFETCH_COUNT_BY_CHANNEL",
                    "Prefetch per channel id, as ch1:5,ch2:20",
                ),
                EnvVar::new(
                    "AMQP_QOS_GLOBAL",
                    "Whether the prefetch is per channel (true, the default) or per consumer",
                ),
            ]);
        }
        vars
    }

    fn setup(&mut self, cx: &mut SetupContext<'_>) -> Result<(), BoxError> {
        let settings = match cx.role() {
            // `beat` takes the same two options (the beat publishes triggers and pumps).
            Some(role) if role.is(Role::WORKER) || role.is(Role::BEAT) => {
                let in_code = self.settings.as_ref();
                let settings = BusSettings {
                    broker_url: url_option(
                        role.matches(),
                        "broker-url",
                        in_code.and_then(|s| s.broker_url.as_ref()),
                    ),
                    backend_url: url_option(
                        role.matches(),
                        "backend-url",
                        in_code.and_then(|s| s.backend_url.as_ref()),
                    ),
                };
                if settings.broker_url.is_none() {
                    return Err(BusError::Config(format!(
                        "`{}` needs RabbitMQ: give --broker-url (or BROKER_URL), or BusSettings \
                         with a broker_url to the service",
                        role.name()
                    ))
                    .into());
                }
                settings
            }
            _ => self.settings.clone().unwrap_or_else(BusSettings::from_env),
        };
        if settings.broker_url.is_some() && settings.backend_url.is_none() {
            // An in-process store nothing pumps: every delay(), schedule() and retry from
            // this process would be lost.
            return Err(BusError::Config(
                "BROKER_URL is set but BACKEND_URL is not: delayed messages and retries need \
                 the shared Redis store (BACKEND_URL=redis://host:6379)"
                    .into(),
            )
            .into());
        }
        if settings.broker_url.is_some() {
            cx.readiness_check("rabbitmq", |c| async move {
                Ok(c.get::<BusRuntime>()?.bus.publisher().ready().await?)
            });
        }
        if settings.backend_url.is_some() {
            cx.readiness_check("redis", |c| async move {
                Ok(c.get::<BusRuntime>()?.store.ready().await?)
            });
        }
        let grace = cx
            .role()
            .and_then(|role| role.arg::<u64>("gracious-shutdown-seconds"))
            .map_or(jararaca_di::app::DEFAULT_GRACE, Duration::from_secs);
        cx.providers(move |c| {
            c.value(settings.clone())
                .factory(move || {
                    let settings = settings.clone();
                    async move { BusRuntime::connect(&settings).await }
                })
                .factory(|runtime: Arc<BusRuntime>| async move {
                    Ok::<_, Infallible>(runtime.bus.clone())
                })
                .value(WorkerHandlers::default())
                // After the user's hooks' registration, so before them when stopping: the outbox
                // is relayed while the database is still open.
                .on_shutdown("outbox relays", move |c| async move {
                    c.get::<BusRuntime>()?.bus.drain_outboxes(grace).await;
                    Ok(())
                })
        });
        Ok(())
    }

    fn build(
        self: Box<Self>,
        cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>> {
        async move {
            let runtime = cx.container.get::<BusRuntime>()?;
            let handlers: Vec<Handler> = self
                .handlers(&cx.service)
                .into_iter()
                .map(|handler| {
                    handler.map_service(|inner| {
                        HandlerService::new(
                            ServiceBuilder::new()
                                .layer(UnitOfWorkLayer::new())
                                .layer(ScopeLayer::new(cx.container.clone()))
                                .layer(BusLayer::new(runtime.bus.clone()))
                                .layer(cx.interceptors.layer_for::<Delivery>())
                                // Inside the unit of work: a panic rolls the unit back.
                                .layer(CatchPanicLayer::new())
                                .service(inner),
                        )
                    })
                })
                .collect();
            // In process, the queues exist from the start, as `declare` makes them on
            // RabbitMQ: what is published before the worker runs waits for it.
            #[cfg_attr(not(feature = "amqp"), allow(irrefutable_let_patterns))]
            if let Transport::Memory(broker) = &runtime.transport {
                for handler in &handlers {
                    broker.declare_queue(handler.queue(), &handler.binding_key());
                }
            }
            let extra = (*cx.container.get::<WorkerHandlers>()?).clone();
            Ok(Box::new(BusPart {
                runtime,
                handlers,
                extra,
            }) as Box<dyn Part>)
        }
        .boxed()
    }

    fn run_tool<'a>(
        &'a self,
        command: &'a str,
        #[cfg_attr(not(feature = "amqp"), allow(unused_variables))] matches: &'a ArgMatches,
        #[cfg_attr(not(feature = "amqp"), allow(unused_variables))] cx: ToolContext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            match command {
                #[cfg(feature = "amqp")]
                "declare" => {
                    let in_code = self.settings.as_ref().and_then(|s| s.broker_url.as_ref());
                    declare(&self.topology(cx.service), matches, in_code).await
                }
                other => Err(format!("bus has no command `{other}`").into()),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use jararaca_di::{Container, ReadinessChecks};

    use super::*;

    #[test]
    fn a_broker_without_a_backend_is_refused_naming_backend_url() {
        let mut bus = MessageBus {
            extra_queues: Vec::new(),
            controllers: Vec::new(),
            settings: Some(BusSettings {
                broker_url: Some("amqp://guest:guest@127.0.0.1:5672/%2f?exchange=x".into()),
                backend_url: None,
            }),
        };
        let mut container = Some(Container::builder());
        let mut readiness = ReadinessChecks::default();
        let role = Role::new(Role::SERVER);
        let mut cx = SetupContext::new("svc", Some(&role), &mut container, &mut readiness);
        let error = bus.setup(&mut cx).unwrap_err().to_string();
        assert!(error.contains("BACKEND_URL"), "{error}");
    }

    #[test]
    fn the_command_line_beats_the_services_settings_which_beat_the_environment() {
        // A default stands in for the environment: both are values not given on the line.
        let command =
            || clap::Command::new("t").arg(Arg::new("url").long("url").default_value("from-env"));
        let in_code = "from-code".to_owned();
        let given = command().get_matches_from(["t", "--url", "from-flag"]);
        assert_eq!(
            url_option(&given, "url", Some(&in_code)).as_deref(),
            Some("from-flag")
        );
        let not_given = command().get_matches_from(["t"]);
        assert_eq!(
            url_option(&not_given, "url", Some(&in_code)).as_deref(),
            Some("from-code")
        );
        assert_eq!(
            url_option(&not_given, "url", None).as_deref(),
            Some("from-env")
        );
        // A command without the option: the service's setting.
        assert_eq!(
            url_option(&not_given, "other", Some(&in_code)).as_deref(),
            Some("from-code")
        );
    }

    fn bus_with(settings: Option<BusSettings>) -> MessageBus {
        MessageBus {
            extra_queues: Vec::new(),
            controllers: Vec::new(),
            settings,
        }
    }

    fn required(command: &clap::Command, id: &str) -> bool {
        command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .is_some_and(Arg::is_required_set)
    }

    #[test]
    fn worker_options_are_required_only_when_the_service_has_no_settings() {
        let both = BusSettings {
            broker_url: Some("amqp://127.0.0.1:1/%2f?exchange=x".into()),
            backend_url: Some("redis://127.0.0.1:1".into()),
        };
        for id in ["broker-url", "backend-url"] {
            assert!(required(&worker_command(None), id), "{id}");
            assert!(!required(&worker_command(Some(&both)), id), "{id}");
        }
        let broker_only = BusSettings {
            backend_url: None,
            ..both
        };
        assert!(!required(&worker_command(Some(&broker_only)), "broker-url"));
        assert!(required(&worker_command(Some(&broker_only)), "backend-url"));
    }

    #[test]
    fn a_role_without_a_broker_anywhere_is_refused_naming_the_option() {
        // `beat`'s options are optional (the cron capability owns the command), so the bus
        // checks that some broker was given.
        let beat = clap::Command::new(Role::BEAT)
            .arg(Arg::new("broker-url").long("broker-url"))
            .arg(Arg::new("backend-url").long("backend-url"))
            .get_matches_from(["beat"]);
        let role = Role::with_matches(Role::BEAT, beat);
        let mut container = Some(Container::builder());
        let mut readiness = ReadinessChecks::default();
        let mut cx = SetupContext::new("svc", Some(&role), &mut container, &mut readiness);
        let error = bus_with(None).setup(&mut cx).unwrap_err().to_string();
        assert!(
            error.contains("--broker-url") && error.contains("`beat`"),
            "{error}"
        );

        // The service's settings fill in what the line leaves out: a broker from them, and
        // the check that a backend goes with it still holds.
        let mut cx = SetupContext::new("svc", Some(&role), &mut container, &mut readiness);
        let in_code = BusSettings {
            broker_url: Some("amqp://127.0.0.1:1/%2f?exchange=x".into()),
            backend_url: None,
        };
        let error = bus_with(Some(in_code))
            .setup(&mut cx)
            .unwrap_err()
            .to_string();
        assert!(error.contains("BACKEND_URL"), "{error}");
    }
}

#[cfg(feature = "amqp")]
async fn declare(
    topology: &Topology,
    matches: &ArgMatches,
    in_code: Option<&String>,
) -> Result<(), BoxError> {
    let url = url_option(matches, "broker-url", in_code).ok_or(
        "declare needs RabbitMQ: give --broker-url (or BROKER_URL), or BusSettings with a \
         broker_url to the service",
    )?;
    let url = BrokerUrl::parse(&url)?;
    let force = matches.get_flag("force");
    let interactive = matches.get_flag("interactive-mode");
    let report = if force && matches.get_flag("discard-messages") {
        crate::declare_discarding(&url, topology).await?
    } else {
        match crate::declare(&url, topology, force).await {
            Err(BusError::TopologyConflict { name, .. })
                if interactive && confirm(&name, None)? =>
            {
                match crate::declare(&url, topology, true).await {
                    Err(BusError::WouldLoseMessages { name, messages })
                        if confirm(&name, Some(messages))? =>
                    {
                        crate::declare_discarding(&url, topology).await?
                    }
                    other => other?,
                }
            }
            Err(BusError::WouldLoseMessages { name, messages })
                if interactive && confirm(&name, Some(messages))? =>
            {
                crate::declare_discarding(&url, topology).await?
            }
            other => other?,
        }
    };
    for queue in &report.declared {
        println!("declared {queue}");
    }
    for queue in &report.recreated {
        println!("recreated {queue} (its messages were dropped)");
    }
    Ok(())
}

#[cfg(feature = "amqp")]
fn confirm(queue: &str, messages: Option<u32>) -> Result<bool, BoxError> {
    use std::io::{BufRead, IsTerminal, Write};

    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "`{queue}` conflicts and there is no terminal to ask: rerun with --force to recreate \
             it (and --discard-messages if it holds messages)"
        )
        .into());
    }
    match messages {
        Some(n) => print!(
            "`{queue}` holds {n} message(s), which recreating it would lose. Delete them and \
             recreate it? [y/N] "
        ),
        None => print!("`{queue}` exists with other arguments. Delete and recreate it? [y/N] "),
    }
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The bus of a built service: the bus itself, its store and where messages go.
struct BusRuntime {
    bus: Bus,
    store: Arc<dyn DelayedStore>,
    transport: Transport,
}

impl fmt::Debug for BusRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusRuntime")
            .field("bus", &self.bus)
            .field("in_memory", &matches!(self.transport, Transport::Memory(_)))
            .finish()
    }
}

#[derive(Clone)]
enum Transport {
    Memory(InMemoryBroker),
    #[cfg(feature = "amqp")]
    Amqp(Box<BrokerUrl>),
}

impl BusRuntime {
    async fn connect(settings: &BusSettings) -> Result<Self, BusError> {
        let (publisher, transport): (Arc<dyn Publisher>, Transport) = match &settings.broker_url {
            #[cfg(feature = "amqp")]
            Some(url) => {
                let url = BrokerUrl::parse(url)?;
                // Connected now, retried per the URL: an unreachable broker fails the start
                // with its reason instead of the first publish.
                (
                    Arc::new(AmqpPublisher::connect(&url).await?),
                    Transport::Amqp(Box::new(url)),
                )
            }
            #[cfg(not(feature = "amqp"))]
            Some(_) => {
                return Err(BusError::Config(
                    "BROKER_URL is set but jararaca-bus is built without its `amqp` feature".into(),
                ));
            }
            None => {
                let broker = InMemoryBroker::new();
                (Arc::new(broker.clone()), Transport::Memory(broker))
            }
        };
        let store: Arc<dyn DelayedStore> = match &settings.backend_url {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(RedisStore::connect(url).await?),
            #[cfg(not(feature = "redis"))]
            Some(_) => {
                return Err(BusError::Config(
                    "BACKEND_URL is set but jararaca-bus is built without its `redis` feature"
                        .into(),
                ));
            }
            None => Arc::new(InMemoryStore::default()),
        };
        Ok(Self {
            bus: Bus::from_arc(publisher).with_store_arc(Arc::clone(&store)),
            store,
            transport,
        })
    }
}

/// The built bus of a service: its handlers, ready to consume.
pub struct BusPart {
    runtime: Arc<BusRuntime>,
    handlers: Vec<Handler>,
    extra: WorkerHandlers,
}

impl fmt::Debug for BusPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusPart")
            .field("runtime", &self.runtime)
            .field("handlers", &self.handlers)
            .field("extra", &self.extra)
            .finish()
    }
}

impl BusPart {
    /// The bus, to publish outside a unit of work.
    pub fn bus(&self) -> &Bus {
        &self.runtime.bus
    }

    /// Whether messages stay in this process (no `BROKER_URL`): then `server` runs the
    /// handlers too.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.runtime.transport, Transport::Memory(_))
    }

    /// A worker running every handler, each in the unit of work, the DI scope, the bus and
    /// the service's interceptors. It also pumps due delayed messages.
    pub fn worker(&self) -> Worker {
        let worker = match &self.runtime.transport {
            Transport::Memory(broker) => Worker::in_memory(broker.clone()),
            #[cfg(feature = "amqp")]
            Transport::Amqp(url) => Worker::amqp((**url).clone()),
        };
        self.handlers.iter().cloned().chain(self.extra.list()).fold(
            worker
                .store(Arc::clone(&self.runtime.store))
                .pump(Duration::from_secs(1)),
            Worker::handler,
        )
    }
}

impl Part for BusPart {
    fn run(&self, role: &Role, stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        let runs = role.is(Role::WORKER)
            || (role.is(Role::SERVER)
                && self.is_in_memory()
                && !(self.handlers.is_empty() && self.extra.list().is_empty()));
        if !runs {
            return None;
        }
        let mut worker = self.worker().grace_period(stop.grace());
        if let Some(names) = csv(role, "handlers") {
            worker = worker.only_handlers(names);
        }
        if let Some(groups) = csv(role, "groups") {
            worker = worker.only_groups(groups);
        }
        Some(
            async move {
                worker.run(async move { stop.requested().await }).await?;
                Ok(())
            }
            .boxed(),
        )
    }
}

/// The bus side of a built [`App`].
pub trait BusApp {
    /// The bus, to publish outside a unit of work; `None` when the service has no message
    /// bus.
    fn bus(&self) -> Option<&Bus>;

    /// A worker running every handler; `None` when the service has no message bus.
    fn worker(&self) -> Option<Worker>;

    /// Whether messages stay in this process (no `BROKER_URL`).
    fn bus_in_memory(&self) -> bool;
}

impl BusApp for App {
    fn bus(&self) -> Option<&Bus> {
        self.part::<BusPart>().map(BusPart::bus)
    }

    fn worker(&self) -> Option<Worker> {
        self.part::<BusPart>().map(BusPart::worker)
    }

    fn bus_in_memory(&self) -> bool {
        self.part::<BusPart>().is_some_and(BusPart::is_in_memory)
    }
}
