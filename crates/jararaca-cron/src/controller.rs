//! [`ScheduledController`]: scheduled actions grouped like the methods of a reference
//! `@MessageBusController` class, given to a service as a whole.

use std::sync::Arc;

use jararaca_bus::{MessageBus, QueueSpec};
use jararaca_di::{Capabilities, Contribution};

use crate::{ScheduledAction, Scheduler};

/// Scheduled actions grouped like the reference's `@MessageBusController` class. Given to a
/// service, it adds the [`Scheduler`] capability (and the message bus, which carries the
/// triggers): the `beat` command dispatches its actions, the `worker` runs them.
///
/// ```
/// use jararaca_cron::{ScheduleDispatchData, ScheduledAction, ScheduledController};
///
/// let jobs = ScheduledController::new("TasksJobs").action(
///     "purge_done",
///     ScheduledAction::new("0 3 * * *", |_: ScheduleDispatchData| async { Ok(()) }),
/// );
/// // The id the reference gives it: `<module>.<Controller>.<method>`, the service's name
/// // standing for the module. It names the action's queue and Redis keys.
/// assert_eq!(jobs.actions("tasks")[0].0, "tasks.TasksJobs.purge_done");
/// ```
#[derive(Debug, Clone)]
pub struct ScheduledController {
    name: String,
    actions: Vec<(String, ScheduledAction)>,
}

impl ScheduledController {
    /// A controller named `name` (part of its actions' ids).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            actions: Vec::new(),
        }
    }

    /// Adds `action` as method `method`.
    #[must_use]
    pub fn action(mut self, method: impl Into<String>, action: ScheduledAction) -> Self {
        self.actions.push((method.into(), action));
        self
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its actions with their ids as service `service` runs them: the action's own
    /// ([`ScheduledAction::id`]), else `<service>.<Controller>.<method>`.
    pub fn actions(&self, service: &str) -> Vec<(String, ScheduledAction)> {
        self.actions
            .iter()
            .map(|(method, action)| {
                let id = action
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("{service}.{}.{method}", self.name));
                (id, action.clone())
            })
            .collect()
    }
}

impl Contribution for ScheduledController {
    fn contribute(self, capabilities: &mut Capabilities) {
        // The bus first: in process, its worker binds the action queues before the beat's
        // first trigger.
        let controller = Arc::new(self.clone());
        capabilities
            .get_or_insert_with(MessageBus::default)
            .declare_queues(move |service| {
                controller
                    .actions(service)
                    .into_iter()
                    .map(|(id, _)| QueueSpec::action(id))
                    .collect()
            });
        capabilities
            .get_or_insert_with(Scheduler::default)
            .controllers
            .push(self);
    }
}
