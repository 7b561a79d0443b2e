//! The broker objects a service needs, and `declare`, which creates them with the
//! reference's exact names, arguments and bindings.

use crate::headers::{HeaderValue, Headers};
use crate::url::DeadLetterNames;

/// What a queue is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A message handler's queue: dead-letters to `dlx`, bound with `<topic>.#`.
    Handler,
    /// A scheduled action's queue: `x-max-length=1` (only the newest trigger survives), bound
    /// with its own name.
    Action,
}

/// One queue and its binding to the main exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue name.
    pub name: String,
    /// The key it is bound to the main exchange with.
    pub binding_key: String,
    /// Handler or action queue.
    pub kind: QueueKind,
}

impl QueueSpec {
    /// A handler queue for `topic`, bound with `<topic>.#`.
    pub fn handler(name: impl Into<String>, topic: &str) -> Self {
        Self {
            name: name.into(),
            binding_key: crate::message::topic_routing_key(topic),
            kind: QueueKind::Handler,
        }
    }

    /// A scheduled-action queue, bound with its own name (the action id,
    /// `<module>.<qualname>` in the reference).
    pub fn action(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            binding_key: name.clone(),
            name,
            kind: QueueKind::Action,
        }
    }

    /// The queue's declare arguments, as the reference sets them.
    pub fn arguments(&self, dead_letter: &DeadLetterNames) -> Headers {
        match self.kind {
            QueueKind::Handler => Headers::from([
                (
                    "x-dead-letter-exchange".to_string(),
                    HeaderValue::from(dead_letter.exchange.as_str()),
                ),
                (
                    "x-dead-letter-routing-key".to_string(),
                    HeaderValue::from(dead_letter.routing_key.as_str()),
                ),
            ]),
            QueueKind::Action => Headers::from([("x-max-length".to_string(), HeaderValue::Int(1))]),
        }
    }
}

/// The arguments of the dead-letter queue: it dead-letters back to the default exchange
/// with the dead-letter routing key, as the reference declares it.
pub fn dead_letter_queue_arguments(dead_letter: &DeadLetterNames) -> Headers {
    Headers::from([
        ("x-dead-letter-exchange".to_string(), HeaderValue::from("")),
        (
            "x-dead-letter-routing-key".to_string(),
            HeaderValue::from(dead_letter.routing_key.as_str()),
        ),
    ])
}

/// Every queue a service declares (its handlers' and its scheduled actions').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The queues.
    pub queues: Vec<QueueSpec>,
}

impl Topology {
    /// An empty topology (the exchange and the dead-letter objects are always declared).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a queue.
    #[must_use]
    pub fn queue(mut self, queue: QueueSpec) -> Self {
        if !self.queues.contains(&queue) {
            self.queues.push(queue);
        }
        self
    }
}

/// What `declare` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeclareReport {
    /// Queues declared (new, or already there with the same arguments).
    pub declared: Vec<String>,
    /// Queues deleted and recreated because of `force` (their messages were lost).
    pub recreated: Vec<String>,
}

#[cfg(feature = "amqp")]
pub use self::amqp::{declare, declare_discarding};

#[cfg(feature = "amqp")]
mod amqp {
    use lapin::options::{
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::protocol::AMQPSoftError;
    use lapin::types::{FieldTable, ShortString};
    use lapin::{Channel, Connection, ExchangeKind};

    use super::{DeclareReport, Topology, dead_letter_queue_arguments};
    use crate::amqp::{close, connect_with_retry, soft_error};
    use crate::headers::Headers;
    use crate::headers::amqp::to_table;
    use crate::{BrokerUrl, BusError};

    /// Declares the main topic exchange, `dlx` (direct) and `dlq` with their binding, and
    /// every queue of `topology` with its arguments and binding. Idempotent.
    ///
    /// An object that exists with other arguments is a [`BusError::TopologyConflict`]
    /// (unlike the reference, which reports success); with `force`, a conflicting queue is
    /// deleted and recreated — only when it is empty: one holding messages is a
    /// [`BusError::WouldLoseMessages`] naming how many ([`declare_discarding`] drops them).
    pub async fn declare(
        url: &BrokerUrl,
        topology: &Topology,
        force: bool,
    ) -> Result<DeclareReport, BusError> {
        declare_with(url, topology, force, false).await
    }

    /// [`declare`] with `force`, recreating conflicting queues even when that drops the
    /// messages they hold.
    pub async fn declare_discarding(
        url: &BrokerUrl,
        topology: &Topology,
    ) -> Result<DeclareReport, BusError> {
        declare_with(url, topology, true, true).await
    }

    async fn declare_with(
        url: &BrokerUrl,
        topology: &Topology,
        force: bool,
        discard: bool,
    ) -> Result<DeclareReport, BusError> {
        let connection = connect_with_retry(url, "jararaca declare").await?;
        match open(&connection).await {
            Ok(mut channel) => {
                let result =
                    declare_on(&connection, &mut channel, url, topology, force, discard).await;
                close(&connection, &[channel], "declared").await;
                result
            }
            Err(error) => {
                close(&connection, &[], "declared").await;
                Err(error)
            }
        }
    }

    /// Declares everything on `channel`, replacing it with a new one when a forced
    /// recreation made the broker close it.
    async fn declare_on(
        connection: &Connection,
        channel: &mut Channel,
        url: &BrokerUrl,
        topology: &Topology,
        force: bool,
        discard: bool,
    ) -> Result<DeclareReport, BusError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let dl = &url.dead_letter;
        for (name, kind) in [
            (&url.exchange, ExchangeKind::Topic),
            (&dl.exchange, ExchangeKind::Direct),
        ] {
            channel
                .exchange_declare(
                    ShortString::from(name.as_str()),
                    kind,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| conflict(name, e))?;
        }
        let mut report = DeclareReport::default();
        let queues = std::iter::once((
            dl.queue.clone(),
            dl.exchange.clone(),
            dl.routing_key.clone(),
            dead_letter_queue_arguments(dl),
        ))
        .chain(topology.queues.iter().map(|q| {
            (
                q.name.clone(),
                url.exchange.clone(),
                q.binding_key.clone(),
                q.arguments(dl),
            )
        }));
        for (queue, exchange, binding_key, arguments) in queues {
            match declare_queue(channel, &queue, &arguments).await {
                Ok(()) => report.declared.push(queue.clone()),
                Err(error) if force && is_precondition_failed(&error) => {
                    *channel = open(connection).await?;
                    let messages = channel
                        .queue_declare(
                            ShortString::from(queue.as_str()),
                            QueueDeclareOptions {
                                passive: true,
                                ..QueueDeclareOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .map_err(BusError::amqp("counting a conflicting queue's messages"))?
                        .message_count();
                    if messages > 0 && !discard {
                        return Err(BusError::WouldLoseMessages {
                            name: queue.clone(),
                            messages,
                        });
                    }
                    tracing::warn!(%queue, messages, "queue exists with other arguments; deleting and recreating it (force)");
                    channel
                        .queue_delete(
                            ShortString::from(queue.as_str()),
                            QueueDeleteOptions::default(),
                        )
                        .await
                        .map_err(BusError::amqp("deleting a conflicting queue"))?;
                    declare_queue(channel, &queue, &arguments)
                        .await
                        .map_err(|e| conflict(&queue, e))?;
                    report.recreated.push(queue.clone());
                }
                Err(error) => return Err(conflict(&queue, error)),
            }
            channel
                .queue_bind(
                    ShortString::from(queue.as_str()),
                    ShortString::from(exchange.as_str()),
                    ShortString::from(binding_key.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(BusError::amqp("binding a queue"))?;
        }
        Ok(report)
    }

    async fn open(connection: &Connection) -> Result<Channel, BusError> {
        connection
            .create_channel()
            .await
            .map_err(BusError::amqp("opening a channel"))
    }

    async fn declare_queue(
        channel: &Channel,
        queue: &str,
        arguments: &Headers,
    ) -> Result<(), lapin::Error> {
        channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                to_table(arguments),
            )
            .await
            .map(|_| ())
    }

    fn is_precondition_failed(error: &lapin::Error) -> bool {
        matches!(
            soft_error(error),
            Some((AMQPSoftError::PRECONDITIONFAILED, _))
        )
    }

    fn conflict(name: &str, error: lapin::Error) -> BusError {
        match soft_error(&error) {
            Some((AMQPSoftError::PRECONDITIONFAILED, detail)) => BusError::TopologyConflict {
                name: name.to_string(),
                detail,
            },
            _ => BusError::Amqp {
                operation: "declaring",
                source: error,
            },
        }
    }
}
