//! Telling the notifier (the `notifier` example) about task events: a REST client declared
//! with `#[rest_client]`, built at startup from `NOTIFIER_URL` with a per-attempt timeout
//! and a retry stacked as layers, and called by the bus handlers.
//!
//! Without `NOTIFIER_URL` there is no notifier and the handlers skip the call. With one, the
//! call is part of the handler's unit of work: when the notifier cannot be reached after
//! the retries, the handler fails and the bus delivers the message again later. The notifier
//! keeps one notification per key, so repeats are delivered once.

use std::sync::Arc;
use std::time::Duration;

use jararaca::BoxError;
use jararaca::rest_client;
use jararaca::rpc::{
    BoxService, HyperTransport, RestClient, RpcError, TimeoutLayer, TraceContextLayer,
};
use jararaca_retry::RetryPolicy;
use serde::Serialize;
use tower::ServiceBuilder;

use crate::AppConfig;

/// What the notifier takes.
#[derive(Debug, Serialize)]
pub struct Notification {
    /// One notification per key.
    pub key: String,
    /// What it says.
    pub text: String,
}

/// The notifier's API, as this service calls it.
#[rest_client("/notifications")]
pub trait Notifier {
    /// Delivers a notification; repeating it is harmless, so it may be retried.
    #[post("/")]
    #[retryable]
    async fn notify(&self, #[body] notification: &Notification) -> Result<(), RpcError>;
}

/// The notifier the bus handlers tell, when `NOTIFIER_URL` is set.
#[derive(Debug, Clone)]
pub struct TaskNotifier {
    client: Option<NotifierClient<BoxService>>,
}

impl TaskNotifier {
    /// Sends the notification `key` saying `text`; does nothing without a notifier.
    pub async fn notify(&self, key: &str, text: &str) -> Result<(), RpcError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        client
            .notify(&Notification {
                key: key.to_owned(),
                text: text.to_owned(),
            })
            .await
    }
}

/// Builds the client from the configuration: each attempt has `NOTIFIER_TIMEOUT_MS`, and an
/// attempt that times out, cannot connect or gets a 502/503/504 is retried up to 3 times with
/// backoff.
pub(crate) async fn task_notifier(config: Arc<AppConfig>) -> Result<TaskNotifier, BoxError> {
    let Some(url) = &config.notifier_url else {
        tracing::info!("NOTIFIER_URL is not set: task events notify nobody");
        return Ok(TaskNotifier { client: None });
    };
    let retry = RetryPolicy::default()
        .max_retries(3)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(2));
    let stack = ServiceBuilder::new()
        .layer(jararaca::rpc::retry(retry))
        .layer(TraceContextLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(
            config.notifier_timeout_ms,
        )))
        .service(HyperTransport::new());
    let client = RestClient::new(stack, url)?.boxed();
    Ok(TaskNotifier {
        client: Some(NotifierClient::new(client)),
    })
}
