//! A tasks service in the spirit of the reference's quick start: a `TasksController` with
//! create / list / get / update / delete (written with the `#[controller]` sugar), typed configuration from the environment, a
//! provider, and an interceptor layer. It needs no external service.

mod audit;
mod tasks;

use jararaca::Microservice;
use serde::Deserialize;

pub use audit::{AuditLayer, UnitsSeen};
pub use tasks::{CreateTask, Task, TaskRepository, TasksController, UpdateTask};

/// The service's configuration, read from the environment at startup.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct AppConfig {
    /// The most tasks the service keeps (`MAX_TASKS`, default 1000).
    #[serde(default = "default_max_tasks")]
    pub max_tasks: usize,
}

fn default_max_tasks() -> usize {
    1000
}

/// The tasks service.
pub fn service() -> Microservice {
    Microservice::new("tasks")
        .description("A tasks service: the Jararaca quick start")
        .config::<AppConfig>()
        .providers(|c| {
            c.factory(|config: std::sync::Arc<AppConfig>| async move {
                Ok::<_, std::convert::Infallible>(TaskRepository::new(config.max_tasks))
            })
            .value(UnitsSeen::default())
            .injectable::<TasksController>()
        })
        .controller(TasksController::controller())
        .interceptor(AuditLayer)
}
