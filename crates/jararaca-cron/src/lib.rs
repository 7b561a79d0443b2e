//! Scheduled actions for Jararaca: cron expressions read exactly as Python jararaca reads
//! them (croniter), a beat that dispatches each tick once across every beat of a fleet, and
//! workers that run each tick as a unit of work with overlap leases, timeouts and error
//! handlers — wire-compatible with Python jararaca 0.5.13 on one RabbitMQ and one Redis.
//!
//! * [`ScheduledAction`]: a cron expression, a tower service over [`Tick`] (or an async
//!   function of [`ScheduleDispatchData`]) and the reference's options, every one of which
//!   takes effect: `allow_overlap`, `exclusive`, `timeout`, an error handler, `name`,
//!   `group`, `channel_id`.
//! * [`ScheduledController`]: actions grouped like a controller class, given to a service;
//!   it adds the [`Scheduler`] capability (`beat`, the action queues of `worker`, the
//!   in-process beat of `server`).
//! * [`Beat`]: sleeps until the next due tick and publishes its trigger (routing key = the
//!   action id, body = unix seconds) under the reference's `beat_lock`, with
//!   `last_dispatch_time:<id>`; it also pumps delayed messages.
//! * [`ActionHost`]: turns an action into the worker [`Handler`](jararaca_bus::Handler) of
//!   its queue (`x-max-length=1`), running each trigger inside the unit of work, the DI
//!   scope, the bus and the interceptors; `allow_overlap = false` is a lease in the
//!   [`BeatStore`] written as `in_execution:<id>:<ts>`.
//! * [`CronExpr`]: croniter's syntax (5 fields, or 6 with seconds **last**, names,
//!   `@hourly`-style aliases, `L`, ranges and steps) evaluated by croner in
//!   `JARARACA_DEFAULT_TIMEZONE`, DST-aware.
//!
//! One process, the in-process broker and store: the beat dispatches, a worker runs.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use jararaca_bus::{InMemoryBroker, Worker};
//! use jararaca_cron::{ActionHost, Beat, BeatAction, BeatStore, InMemoryBeatStore, ScheduleDispatchData, ScheduledAction};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
//! let action = ScheduledAction::new("* * * * * *", move |tick: ScheduleDispatchData| {
//!     let ran_tx = ran_tx.clone();
//!     async move { Ok(ran_tx.send(tick.timestamp)?) }
//! });
//! let id = "shop.Jobs.every_second";
//!
//! let broker = InMemoryBroker::new();
//! let store: Arc<dyn BeatStore> = Arc::new(InMemoryBeatStore::new());
//! let worker = Worker::in_memory(broker.clone())
//!     .handler(ActionHost::new(Arc::clone(&store)).handler(id, &action));
//! let beat = Beat::new(store, Arc::new(broker)).action(BeatAction {
//!     id: id.into(),
//!     name: None,
//!     cron: action.cron().parse()?,
//!     allow_overlap: false,
//! });
//!
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let mut until = stopped.clone();
//! let worker = tokio::spawn(worker.run(async move { let _ = until.wait_for(|s| *s).await; }));
//! tokio::time::sleep(Duration::from_millis(20)).await; // the worker binds its queue
//! let mut until = stopped.clone();
//! let beat = tokio::spawn(beat.run(async move { let _ = until.wait_for(|s| *s).await; }));
//!
//! // Never dispatched before: the first trigger leaves at once, as in the reference.
//! let timestamp = ran.recv().await.expect("the action ran");
//! assert!(timestamp > 1_700_000_000);
//! let _ = stop.send(true);
//! beat.await??;
//! worker.await??;
//! # Ok(())
//! # }
//! ```

mod action;
mod beat;
mod capability;
mod controller;
mod error;
mod expr;
mod runner;
mod store;

pub use action::{
    ActionFailure, ActionOptions, ActionService, ErrorHandler, ScheduleDispatchData,
    ScheduledAction, Tick,
};
pub use beat::{Beat, BeatAction, Dispatched, LOCK_TTL, LOCK_WAIT, MissedTicks};
pub use capability::{Scheduler, SchedulerPart};
pub use controller::ScheduledController;
pub use error::CronError;
pub use expr::{CronExpr, TIMEZONE_ENV, default_timezone, parse_timezone};
pub use runner::{ActionHost, DEFAULT_LEASE};
#[cfg(feature = "redis")]
pub use store::RedisBeatStore;
pub use store::{
    BEAT_LOCK_KEY, BeatStore, IN_EXECUTION_PREFIX, InMemoryBeatStore, LAST_DISPATCH_PREFIX,
};

// The README's examples are compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
