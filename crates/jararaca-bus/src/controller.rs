//! [`MessageController`]: handlers grouped like the reference's `@MessageBusController`
//! class, given to a service as a whole.

use std::future::Future;

use jararaca_di::BoxError;

use crate::handler::handler_queue_name;
use crate::{Delivery, Handler, Message, typed};

/// Message handlers grouped like the reference's `@MessageBusController` class. Given to a
/// service, it adds the [`MessageBus`](crate::MessageBus) capability; each handler becomes a
/// tower service over [`Delivery`] wrapped in the unit of work, the DI scope, the bus and the
/// service's interceptors.
///
/// ```
/// use jararaca_bus::{Delivery, Message, MessageController, MessageKind};
/// use jararaca_di::BoxError;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct TaskCreated {
///     title: String,
/// }
///
/// impl Message for TaskCreated {
///     const TOPIC: &'static str = "task.created";
///     const KIND: MessageKind = MessageKind::Event;
/// }
///
/// async fn on_task_created(task: TaskCreated, _delivery: Delivery) -> Result<(), BoxError> {
///     println!("created: {}", task.title);
///     Ok(())
/// }
///
/// let worker = MessageController::new("TasksWorker")
///     .handler::<TaskCreated, _, _>("on_task_created", on_task_created);
/// // The queue name the reference gives it: `<topic>.<service>.<Controller>.<method>`.
/// assert_eq!(
///     worker.handlers("tasks")[0].queue(),
///     "task.created.tasks.TasksWorker.on_task_created"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct MessageController {
    name: String,
    handlers: Vec<(String, Handler)>,
}

impl MessageController {
    /// A controller named `name` (part of its handlers' queue names).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            handlers: Vec::new(),
        }
    }

    /// Handles messages of type `M` with `handler(message, delivery)`, as method `method`.
    pub fn handler<M, F, Fut>(self, method: impl Into<String>, handler: F) -> Self
    where
        M: Message,
        F: Fn(M, Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.handler_with(method, handler, |h| h)
    }

    /// Like [`handler`](Self::handler), with the handler's options:
    /// `|h| h.timeout(…).retry_policy(…).with_queue(…)` (see [`Handler`]).
    pub fn handler_with<M, F, Fut>(
        mut self,
        method: impl Into<String>,
        handler: F,
        options: impl FnOnce(Handler) -> Handler,
    ) -> Self
    where
        M: Message,
        F: Fn(M, Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        // An empty queue name stands for the default, known once the service is.
        let handler = options(Handler::new::<M, _>(String::new(), typed(handler)));
        self.handlers.push((method.into(), handler));
        self
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its handlers as the service `service` runs them: the queues without a name of their
    /// own get the reference's `<topic>.<service>.<Controller>.<method>`.
    pub fn handlers(&self, service: &str) -> Vec<Handler> {
        self.handlers
            .iter()
            .map(|(method, handler)| {
                let mut handler = handler.clone();
                if handler.queue().is_empty() {
                    let queue = handler_queue_name(
                        handler.topic(),
                        service,
                        &format!("{}.{method}", self.name),
                    );
                    handler = handler.with_queue(queue);
                }
                handler
                    .with_alias(method.clone())
                    .with_alias(format!("{}.{method}", self.name))
            })
            .collect()
    }
}
