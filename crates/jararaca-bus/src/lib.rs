//! The message bus of Jararaca: messages, publishers, delayed messages and a worker whose
//! handlers are tower services, wire-compatible with Python `jararaca` 0.5.13 on one
//! RabbitMQ and one Redis.
//!
//! * [`Message`]: a serde type with a topic and a kind (task or event).
//! * [`Bus`]: a [`Publisher`] ([`AmqpPublisher`], or the embedded [`InMemoryBroker`]) plus a
//!   [`DelayedStore`] ([`RedisStore`], or [`InMemoryStore`]) for `delay`/`schedule`.
//! * [`BusLayer`]: inside a [`UnitOfWorkLayer`](jararaca_di::UnitOfWorkLayer), messages are
//!   staged (`message.publish().await`, [`UnitBus`]) and sent only after the unit commits.
//! * [`Worker`]: runs [`Handler`]s — tower services over [`Delivery`], which implements
//!   [`Envelope`](jararaca_di::Envelope), so the interceptor layers that wrap HTTP routes
//!   wrap handlers too — with retries, dead-lettering, graceful stop and reconnection. A
//!   panicking handler is retried and dead-lettered like a failing one, and no delivery is
//!   left unsettled.
//! * [`SettlePolicy`]/[`SettleLayer`]: the worker's retry and dead-letter decision as a
//!   reusable tower layer, producing a [`Settlement`].
//! * [`declare`] creates the reference's topology; [`dlq_stats`], [`dlq_list`],
//!   [`dlq_requeue`] and [`dlq_purge`] inspect and repair the dead-letter queue;
//!   [`pump_due`]/[`run_pump`] send delayed messages when due.
//!
//! Everything runs in one process on the in-memory broker:
//!
//! ```
//! use std::time::Duration;
//! use jararaca_bus::{Bus, BusLayer, Delivery, Handler, InMemoryBroker, Message, MessageExt, MessageKind, Worker, typed};
//! use jararaca_di::UnitOfWorkLayer;
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceBuilder;
//!
//! #[derive(Serialize, Deserialize)]
//! struct OrderCreated { order_id: u64 }
//! impl Message for OrderCreated {
//!     const TOPIC: &'static str = "order.created";
//!     const KIND: MessageKind = MessageKind::Event;
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { order_id: u64 }
//! impl Message for SendEmail {
//!     const TOPIC: &'static str = "email.send";
//!     const KIND: MessageKind = MessageKind::Task;
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), jararaca_bus::BusError> {
//! let broker = InMemoryBroker::new();
//! let bus = Bus::new(broker.clone());
//! let layers = ServiceBuilder::new()
//!     .layer(UnitOfWorkLayer::new())
//!     .layer(BusLayer::new(bus.clone()));
//!
//! // An order handler that asks for an email; the email is sent once the handler succeeded.
//! let on_order = layers.service(typed(|order: OrderCreated, _: Delivery| async move {
//!     SendEmail { order_id: order.order_id }.publish().await?;
//!     Ok(())
//! }));
//! let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
//! let send_email = typed(move |email: SendEmail, _: Delivery| {
//!     let sent_tx = sent_tx.clone();
//!     async move { Ok(sent_tx.send(email.order_id)?) }
//! });
//!
//! let worker = Worker::in_memory(broker.clone())
//!     .handler(Handler::new::<OrderCreated, _>("order.created.shop.Orders.on_order", on_order))
//!     .handler(Handler::new::<SendEmail, _>("email.send.shop.Emails.send", send_email));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(worker.run(async { let _ = stopped.await; }));
//! tokio::time::sleep(Duration::from_millis(20)).await; // the worker binds its queues
//!
//! bus.publish(&OrderCreated { order_id: 7 }).await?;
//! assert_eq!(sent_rx.recv().await, Some(7));
//!
//! let _ = stop.send(());
//! running.await.expect("the worker task panicked")?;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "amqp")]
mod amqp;
mod bus;
mod capability;
mod controller;
pub mod delayed;
mod delivery;
#[cfg(feature = "amqp")]
mod dlq;
mod error;
mod handler;
pub mod headers;
mod memory;
mod message;
pub mod outbox;
mod publisher;
mod settle;
mod topology;
mod trace;
mod url;
mod worker;

#[cfg(feature = "amqp")]
pub use amqp::{ACCESS_REFUSED_RETRY, AmqpPublisher};
pub use bus::{
    Bus, BusLayer, BusService, NotPublished, NotPublishedHandler, UnitBus, use_publisher,
};
pub use capability::{BusApp, BusPart, BusSettings, MessageBus, WorkerHandlers};
pub use controller::MessageController;
#[cfg(feature = "redis")]
pub use delayed::RedisStore;
pub use delayed::{
    Claimed, DelayedMessage, DelayedStore, InMemoryStore, PayloadPolicy, TimePolicy,
    UNROUTABLE_REASON, UNROUTABLE_RETRIES, pump_due, run_pump,
};
pub use delivery::{Delivery, Disposition, PayloadError};
#[cfg(feature = "amqp")]
pub use dlq::{DeadMessage, DlqStats, RequeueReport, dlq_list, dlq_purge, dlq_requeue, dlq_stats};
pub use error::BusError;
pub use handler::{Handler, HandlerOptions, HandlerService, Typed, handler_queue_name, typed};
pub use headers::{HeaderValue, Headers};
pub use memory::{DeadLetter, InMemoryBroker, StoredMessage, topic_matches};
pub use message::{
    Message, MessageExt, MessageKind, Outgoing, Route, implicit_headers, new_message_id,
    provide_implicit_headers, topic_routing_key,
};
pub use publisher::Publisher;
pub use settle::{
    DeadLetterReason, SettleFuture, SettleLayer, SettlePolicy, SettleService, Settlement,
};
pub use topology::{DeclareReport, QueueKind, QueueSpec, Topology, dead_letter_queue_arguments};
#[cfg(feature = "amqp")]
pub use topology::{declare, declare_discarding};
pub use trace::TRACEPARENT;
pub use url::{BrokerUrl, DEFAULT_PUBLISH_TIMEOUT, DeadLetterNames, redact};
pub use worker::{DEFAULT_GRACE_PERIOD, Worker};

// The README's examples are compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
