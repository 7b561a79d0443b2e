//! Scheduled actions as a capability of a service: the `beat` command, the action queues the
//! worker consumes, and the in-process beat of the all-in-one `server`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use clap::Arg;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_bus::{Bus, BusSettings, WorkerHandlers};
use jararaca_di::{
    BoxError, BuildContext, Capability, CommandSpec, EnvVar, Part, Role, SetupContext, Stop,
};

#[cfg(feature = "redis")]
use crate::RedisBeatStore;
use crate::{
    ActionHost, Beat, BeatAction, BeatStore, CronError, CronExpr, InMemoryBeatStore, MissedTicks,
    ScheduledAction, ScheduledController, default_timezone,
};

/// The scheduled actions of a service (added by giving it [`ScheduledController`]s).
///
/// * `beat` (with `--interval`/`INTERVAL`, `--broker-url`/`BROKER_URL`,
///   `--backend-url`/`BACKEND_URL` — or the service's `BusSettings` —, `--actions`/`ACTIONS`,
///   `--missed-ticks`/`MISSED_TICKS`, `--gracious-shutdown-seconds`) runs the [`Beat`]: it
///   dispatches the actions' ticks through the broker and pumps delayed messages;
/// * `worker` consumes the action queues beside the message handlers and runs each trigger
///   as a [`Tick`](crate::Tick) unit of work, in the service's interceptors;
/// * `server` with no broker (the embedded default) runs the beat in process, on an
///   in-memory lock and store, beside the in-process worker.
///
/// Cron expressions and `JARARACA_DEFAULT_TIMEZONE` are checked when the service starts: an
/// invalid one fails the start, naming the action.
#[derive(Debug, Default)]
pub struct Scheduler {
    pub(crate) controllers: Vec<ScheduledController>,
    resolved: Vec<Resolved>,
    timezone: Option<Tz>,
}

#[derive(Debug, Clone)]
struct Resolved {
    id: String,
    cron: CronExpr,
    action: ScheduledAction,
}

fn beat_command() -> clap::Command {
    clap::Command::new(Role::BEAT)
        .about("Dispatch the service's scheduled actions and pump delayed messages")
        .arg(
            Arg::new("interval")
                .long("interval")
                .env("INTERVAL")
                .default_value("1")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help(
                    "Seconds between delayed-message pumps and between retries of a skipped action",
                ),
        )
        // Required unless the service was given `BusSettings`: the bus capability checks them.
        .arg(
            Arg::new("broker-url")
                .long("broker-url")
                .env("BROKER_URL")
                .help("RabbitMQ (when not the service's own): amqp://user:pass@host:port/vhost?exchange=X"),
        )
        .arg(
            Arg::new("backend-url")
                .long("backend-url")
                .env("BACKEND_URL")
                .help("Redis, for the beat lock, dispatch times and delayed messages (when not the service's own)"),
        )
        .arg(
            Arg::new("actions")
                .long("actions")
                .env("ACTIONS")
                .help("Only these actions (comma-separated names)"),
        )
        .arg(
            Arg::new("missed-ticks")
                .long("missed-ticks")
                .env("MISSED_TICKS")
                .default_value("once")
                .value_parser(["once", "skip"])
                .help(
                    "Ticks missed while no beat ran: `once` dispatches one on resume, `skip` none",
                ),
        )
        .arg(jararaca_di::app::grace_arg())
}

impl Scheduler {
    /// Every action with its id, as service `service` runs them.
    pub fn actions(&self, service: &str) -> Vec<(String, ScheduledAction)> {
        self.controllers
            .iter()
            .flat_map(|c| c.actions(service))
            .collect()
    }

    /// Checks every expression and id, and the time zone.
    fn resolve(&mut self, service: &str) -> Result<(), CronError> {
        self.timezone = Some(default_timezone()?);
        let mut seen = BTreeSet::new();
        self.resolved = Vec::new();
        for (id, action) in self.actions(service) {
            let label = action.options.name.clone().unwrap_or_else(|| id.clone());
            let cron = CronExpr::parse_for(&label, &action.cron)?;
            if !seen.insert(id.clone()) {
                return Err(CronError::DuplicateAction(id));
            }
            self.resolved.push(Resolved { id, cron, action });
        }
        Ok(())
    }
}

impl Capability for Scheduler {
    fn name(&self) -> &'static str {
        "cron"
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec::role(beat_command())]
    }

    fn environment(&self, _role: &str) -> Vec<EnvVar> {
        vec![EnvVar::new(
            crate::TIMEZONE_ENV,
            "The zone cron expressions are read in (an IANA name such as Europe/Lisbon; default UTC)",
        )]
    }

    fn setup(&mut self, cx: &mut SetupContext<'_>) -> Result<(), BoxError> {
        self.resolve(cx.service())?;
        Ok(())
    }

    fn build(
        self: Box<Self>,
        cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>> {
        async move {
            let bus = (*cx.container.get::<Bus>()?).clone();
            // The bus's broker and Redis, however they were chosen (options, environment, or
            // the service's own settings).
            let settings = cx.container.get::<BusSettings>()?;
            let in_process = settings.in_process();
            let store: Arc<dyn BeatStore> = match (&settings.backend_url, in_process) {
                // In process, the beat and the workers are this process: no Redis needed.
                (_, true) | (None, _) => Arc::new(InMemoryBeatStore::new()),
                #[cfg(feature = "redis")]
                (Some(url), false) => Arc::new(RedisBeatStore::connect(url).await?),
                #[cfg(not(feature = "redis"))]
                (Some(_), false) => {
                    return Err(CronError::Config(
                        "BACKEND_URL is set but jararaca-cron is built without its `redis` feature"
                            .into(),
                    )
                    .into());
                }
            };
            let host = ActionHost::new(Arc::clone(&store))
                .container(cx.container.clone())
                .interceptors(cx.interceptors.clone())
                .bus(bus.clone());
            let handlers = cx.container.get::<WorkerHandlers>()?;
            for resolved in &self.resolved {
                handlers.add(host.handler(resolved.id.clone(), &resolved.action));
            }
            let timezone = self.timezone.unwrap_or(chrono_tz::UTC);
            let actions = self
                .resolved
                .iter()
                .map(|r| BeatAction {
                    id: r.id.clone(),
                    name: r.action.options.name.clone(),
                    cron: r.cron.clone(),
                    allow_overlap: r.action.options.allow_overlap,
                })
                .collect();
            Ok(Box::new(SchedulerPart {
                store,
                bus,
                in_process,
                timezone,
                actions,
            }) as Box<dyn Part>)
        }
        .boxed()
    }
}

/// The built scheduler of a service: what its beat dispatches.
pub struct SchedulerPart {
    store: Arc<dyn BeatStore>,
    bus: Bus,
    in_process: bool,
    timezone: Tz,
    actions: Vec<BeatAction>,
}

impl fmt::Debug for SchedulerPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerPart")
            .field("store", &self.store)
            .field("in_process", &self.in_process)
            .field("timezone", &self.timezone)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl SchedulerPart {
    /// The beat of role `role`: every action (or those `--actions` names), with the role's
    /// `--interval` and `--missed-ticks`.
    pub fn beat(&self, role: &Role) -> Result<Beat, CronError> {
        let only: Option<BTreeSet<String>> = role.arg::<String>("actions").map(|names| {
            names
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let missed = match role.arg::<String>("missed-ticks") {
            Some(policy) => policy.parse()?,
            None => MissedTicks::Once,
        };
        let interval = Duration::from_secs(role.arg::<u64>("interval").unwrap_or(1));
        let mut beat = Beat::new(Arc::clone(&self.store), Arc::clone(self.bus.publisher()))
            .timezone(self.timezone)
            .interval(interval)
            .missed_ticks(missed);
        for action in &self.actions {
            let selected = only
                .as_ref()
                .is_none_or(|names| action.name.as_ref().is_some_and(|n| names.contains(n)));
            if selected {
                beat = beat.action(action.clone());
            }
        }
        // The in-process worker pumps delayed messages itself.
        if role.is(Role::BEAT)
            && let Some(store) = self.bus.store()
        {
            beat = beat.pump(Arc::clone(store));
        }
        Ok(beat)
    }
}

impl Part for SchedulerPart {
    fn run(&self, role: &Role, stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        let runs = role.is(Role::BEAT)
            || (role.is(Role::SERVER) && self.in_process && !self.actions.is_empty());
        if !runs {
            return None;
        }
        let beat = self.beat(role);
        Some(
            async move {
                beat?.run(async move { stop.requested().await }).await?;
                Ok(())
            }
            .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use jararaca_di::{Capabilities, Container, Contribution, ReadinessChecks};

    use super::*;
    use crate::ScheduleDispatchData;

    fn setup(controller: ScheduledController) -> Result<(), BoxError> {
        let mut capabilities = Capabilities::default();
        controller.contribute(&mut capabilities);
        let mut container = Some(Container::builder());
        let mut readiness = ReadinessChecks::default();
        let role = Role::new(Role::SERVER);
        let mut cx = SetupContext::new("svc", Some(&role), &mut container, &mut readiness);
        for capability in capabilities.iter_mut() {
            capability.setup(&mut cx)?;
        }
        Ok(())
    }

    fn noop() -> impl Fn(ScheduleDispatchData) -> futures_util::future::Ready<Result<(), BoxError>>
    + Clone
    + Send
    + Sync
    + 'static {
        |_| futures_util::future::ready(Ok(()))
    }

    #[test]
    fn an_invalid_expression_fails_the_start_naming_the_action() {
        let controller = ScheduledController::new("Jobs")
            .action("fine", ScheduledAction::new("*/5 * * * *", noop()))
            .action("broken", ScheduledAction::new("* * 32 * *", noop()));
        let error = setup(controller).unwrap_err().to_string();
        assert!(error.contains("svc.Jobs.broken"), "{error}");
        assert!(error.contains("* * 32 * *"), "{error}");

        let named = ScheduledController::new("Jobs").action(
            "x",
            ScheduledAction::new("@often", noop()).name("nightly_report"),
        );
        let error = setup(named).unwrap_err().to_string();
        assert!(error.contains("nightly_report"), "{error}");
    }

    #[test]
    fn two_actions_with_one_id_are_refused() {
        let controller = ScheduledController::new("Jobs")
            .action("a", ScheduledAction::new("* * * * *", noop()).id("same"))
            .action("b", ScheduledAction::new("* * * * *", noop()).id("same"));
        let error = setup(controller).unwrap_err().to_string();
        assert!(error.contains("`same`"), "{error}");
    }

    #[test]
    fn the_action_queues_are_declared_with_the_bus_topology() {
        let mut capabilities = Capabilities::default();
        ScheduledController::new("Jobs")
            .action("purge", ScheduledAction::new("* * * * *", noop()))
            .contribute(&mut capabilities);
        let bus = capabilities.get::<jararaca_bus::MessageBus>().unwrap();
        let topology = bus.topology("svc");
        assert_eq!(
            topology.queues,
            vec![jararaca_bus::QueueSpec::action("svc.Jobs.purge")]
        );
    }
}
