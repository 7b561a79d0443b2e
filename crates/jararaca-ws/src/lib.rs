//! WebSocket for Jararaca: typed messages pushed to rooms of clients, fanned out across
//! instances over Redis pub/sub in Python jararaca's exact format, with endpoints whose
//! upgrades and inbound frames are units of work in the service's shared interceptors.
//!
//! * [`WebSocketMessage`]: a `MESSAGE_ID` and a serde body; clients get
//!   `{"MESSAGE_ID":…,"message":…}` in binary frames (what `@jararaca/core` accepts).
//! * [`WebSocketManager`]: this process's connections and rooms, and the backend every send
//!   goes through ([`InProcess`] by default, [`RedisFanOut`] across instances). Every
//!   instance delivers to its own sockets, the sender's included.
//! * Sends from a unit of work are staged ([`WebSocketMessageExt::send`], [`UnitSends`]):
//!   they go out after the unit committed, and not at all if it failed.
//! * [`WebSocketController`] and [`WsUpgrade`]: endpoints served by the HTTP capability;
//!   the upgrade request runs through the interceptors (an auth layer refuses it before the
//!   upgrade), each inbound frame is a unit of work of its own ([`WsFrame`]).
//! * Hygiene: pings, dead connections dropped from every room, a bounded queue per
//!   connection (a slow client is disconnected with [`CLOSE_TOO_SLOW`] and slows nobody),
//!   inbound size and rate limits ([`WsConfig`], lean by default).
//!
//! ```
//! use jararaca_di::{ScopeLayer, UnitOfWorkLayer, Container};
//! use jararaca_ws::{WebSocketManager, WebSocketMessage, WebSocketMessageExt, WsConfig};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! #[derive(serde::Serialize)]
//! struct TaskUpdated { task_id: u32 }
//! impl WebSocketMessage for TaskUpdated {
//!     const MESSAGE_ID: &'static str = "task.updated";
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let manager = WebSocketManager::in_process(WsConfig::default());
//! let (client, mut frames) = manager.connect();
//! client.join(&["tasks"])?;
//!
//! // A unit of work that fails sends nothing; one that succeeds sends after it committed.
//! let container = Container::builder().value(manager.clone()).build().await?;
//! for fail in [true, false] {
//!     let unit = ServiceBuilder::new()
//!         .layer(UnitOfWorkLayer::new())
//!         .layer(ScopeLayer::new(container.clone()))
//!         .service(service_fn(move |_req: http::Request<()>| async move {
//!             TaskUpdated { task_id: 7 }.send(&["tasks"]).await?;
//!             if fail { Err("the handler failed")? }
//!             Ok::<_, jararaca_di::BoxError>(())
//!         }));
//!     let _ = unit.oneshot(http::Request::new(())).await;
//! }
//! assert_eq!(&frames.try_next().unwrap()[..], br#"{"MESSAGE_ID":"task.updated","message":{"task_id":7}}"#);
//! assert!(frames.try_next().is_none());
//! # Ok::<_, jararaca_di::BoxError>(())
//! # }).unwrap();
//! ```

mod backend;
mod capability;
mod config;
mod endpoint;
mod error;
mod local;
mod manager;
mod message;
mod room;
mod stage;
mod stats;

#[cfg(feature = "redis")]
pub use backend::{DEFAULT_BROADCAST_CHANNEL, DEFAULT_SEND_CHANNEL, RedisChannels, RedisFanOut};
pub use backend::{FanOut, InProcess, LocalDelivery};
pub use capability::{
    WEBSOCKET_REDIS_URL, WebSocketApp, WebSocketController, WebSocketPart, WebSocketSettings,
    WebSockets,
};
pub use config::{CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_SLOW, FrameKind, WsConfig};
pub use endpoint::{WsFrame, WsUpgrade, WsUpgradeRejection};
pub use error::WsError;
pub use manager::{Connection, FrameQueue, WebSocketManager};
pub use message::{WebSocketMessage, WebSocketMessageExt, encode_frame};
pub use room::{decode_send_payload, encode_send_payload, validate_room};
pub use stage::{MissingWebSocket, UnitSends, use_ws_manager};
pub use stats::WsStats;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
