//! The worker side: each trigger of an action's queue runs as a [`Tick`] unit of work, with
//! the overlap lease, the timeout and the error handler.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jararaca_bus::{Bus, BusLayer, Delivery, Handler};
use jararaca_di::{
    BoxError, CatchPanicLayer, Container, Interceptors, ScopeLayer, UnitOfWorkLayer,
};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};
use tower_service::Service;

use crate::action::{ActionFailure, ActionOptions, ActionService, ScheduleDispatchData, Tick};
use crate::store::BeatStore;
use crate::{CronError, ScheduledAction};

/// How long an overlap lease lasts unless renewed; it is renewed every third of this while
/// the run lasts, so a worker that dies frees the action within this time.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// What a worker runs scheduled actions with: the overlap store, and the container,
/// interceptors and bus every tick's unit of work gets.
#[derive(Clone)]
pub struct ActionHost {
    store: Arc<dyn BeatStore>,
    container: Option<Container>,
    interceptors: Interceptors,
    bus: Option<Bus>,
    lease: Duration,
}

impl fmt::Debug for ActionHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionHost")
            .field("store", &self.store)
            .field("interceptors", &self.interceptors)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl ActionHost {
    /// Runs actions with overlap leases in `store` (a
    /// [`RedisBeatStore`](crate::RedisBeatStore) across processes).
    pub fn new(store: Arc<dyn BeatStore>) -> Self {
        Self {
            store,
            container: None,
            interceptors: Interceptors::new(),
            bus: None,
            lease: DEFAULT_LEASE,
        }
    }

    /// Scopes every tick in `container` (for [`inject`](jararaca_di::inject) and extractors).
    #[must_use]
    pub fn container(mut self, container: Container) -> Self {
        self.container = Some(container);
        self
    }

    /// Wraps every tick in `interceptors`.
    #[must_use]
    pub fn interceptors(mut self, interceptors: Interceptors) -> Self {
        self.interceptors = interceptors;
        self
    }

    /// Lets ticks publish on `bus` (staged, sent once the tick's unit of work commits).
    #[must_use]
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// How long an overlap lease lasts unless renewed ([`DEFAULT_LEASE`]).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The worker handler consuming the triggers of `action` from queue `id`.
    pub fn handler(&self, id: impl Into<String>, action: &ScheduledAction) -> Handler {
        let id = id.into();
        let mut service: ActionService =
            BoxCloneSyncService::new(CatchPanicLayer::new().layer(action.service.clone()));
        service = BoxCloneSyncService::new(self.interceptors.layer_for::<Tick>().layer(service));
        if let Some(bus) = &self.bus {
            service = BoxCloneSyncService::new(BusLayer::new(bus.clone()).layer(service));
        }
        if let Some(container) = &self.container {
            service = BoxCloneSyncService::new(ScopeLayer::new(container.clone()).layer(service));
        }
        service = BoxCloneSyncService::new(UnitOfWorkLayer::new().layer(service));
        let options = action.options.clone();
        let runtime = Arc::new(ActionRuntime {
            name: options.name.clone().unwrap_or_else(|| id.clone()).into(),
            id: id.clone(),
            cron: action.cron.as_str().into(),
            running: AtomicBool::new(false),
            store: Arc::clone(&self.store),
            lease: self.lease,
            service,
            options: options.clone(),
        });
        let mut handler = Handler::action(id, TriggerService { runtime });
        if let Some(name) = options.name {
            handler = handler.name(name);
        }
        if let Some(group) = options.group {
            handler = handler.group(group);
        }
        if let Some(channel_id) = options.channel_id {
            handler = handler.channel_id(channel_id);
        }
        handler
    }
}

struct ActionRuntime {
    id: String,
    name: Arc<str>,
    cron: Arc<str>,
    options: ActionOptions,
    /// A run of this action is going on in this process.
    running: AtomicBool,
    store: Arc<dyn BeatStore>,
    lease: Duration,
    service: ActionService,
}

/// Turns a trigger delivery into a run; it never fails, so the worker acknowledges every
/// trigger (a trigger is not retried: the next tick comes).
#[derive(Clone)]
struct TriggerService {
    runtime: Arc<ActionRuntime>,
}

impl Service<Delivery> for TriggerService {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        let runtime = Arc::clone(&self.runtime);
        async move {
            match trigger_timestamp(delivery.body()) {
                Some(timestamp) => runtime.run(timestamp).await,
                None => tracing::warn!(
                    action = %runtime.name,
                    body = %String::from_utf8_lossy(delivery.body()),
                    "dropping a trigger whose body is not unix seconds"
                ),
            }
            Ok(())
        }
        .boxed()
    }
}

/// The body of a trigger: decimal unix seconds (a float is accepted as well).
fn trigger_timestamp(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f.floor() as i64))
}

/// Clears the in-process running flag when the run ends, however it ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ActionRuntime {
    async fn run(&self, timestamp: i64) {
        let data = ScheduleDispatchData { timestamp };
        let mut _running = None;
        let mut lease = None;
        if !self.options.allow_overlap {
            if self.running.swap(true, Ordering::AcqRel) {
                tracing::info!(action = %self.name, timestamp, "skipping a tick: the previous one still runs in this worker");
                return;
            }
            _running = Some(Running(&self.running));
            if self.options.exclusive {
                let token = uuid::Uuid::new_v4().simple().to_string();
                match self
                    .store
                    .acquire_execution(&self.id, timestamp, &token, self.lease)
                    .await
                {
                    Ok(true) => lease = Some(token),
                    Ok(false) => {
                        tracing::info!(action = %self.name, timestamp, "skipping a tick: another worker runs this action");
                        return;
                    }
                    Err(error) => {
                        // Without the lease the action could overlap another worker's run.
                        self.failed(data, &ActionFailure::Failed(error.into()));
                        return;
                    }
                }
            }
        }
        let run = self.service.clone().oneshot(Tick::new(
            Arc::clone(&self.name),
            Arc::clone(&self.cron),
            timestamp,
        ));
        let run = async {
            match self.options.timeout {
                Some(timeout) => match tokio::time::timeout(timeout, run).await {
                    Ok(result) => result.map_err(ActionFailure::Failed),
                    // The run's future is dropped: its unit of work rolls back, staged
                    // messages are never published.
                    Err(_) => Err(ActionFailure::TimedOut(timeout)),
                },
                None => run.await.map_err(ActionFailure::Failed),
            }
        };
        let result = match &lease {
            Some(token) => {
                tokio::pin!(run);
                let renew = self.renew(timestamp, token);
                tokio::pin!(renew);
                tokio::select! {
                    result = &mut run => result,
                    () = &mut renew => run.await,
                }
            }
            None => run.await,
        };
        if let Some(token) = &lease
            && let Err(error) = self
                .store
                .release_execution(&self.id, timestamp, token)
                .await
        {
            tracing::warn!(action = %self.name, %error, "releasing the overlap lease failed; it expires by itself");
        }
        match result {
            Ok(()) => tracing::debug!(action = %self.name, timestamp, "tick done"),
            Err(failure) => self.failed(data, &failure),
        }
    }

    /// Renews the lease every third of its length; completes only if the lease is lost.
    async fn renew(&self, timestamp: i64, token: &str) {
        let mut every = tokio::time::interval(self.lease / 3);
        every.tick().await;
        loop {
            every.tick().await;
            match self
                .store
                .renew_execution(&self.id, timestamp, token, self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(action = %self.name, timestamp, "the overlap lease was lost while the tick runs (it expired): another worker may start the action");
                    return;
                }
                Err(error) => {
                    tracing::warn!(action = %self.name, %error, "renewing the overlap lease failed; retrying");
                }
            }
        }
    }

    fn failed(&self, data: ScheduleDispatchData, failure: &ActionFailure) {
        tracing::error!(action = %self.name, timestamp = data.timestamp, error = %failure, "scheduled action failed");
        if let Some(handler) = &self.options.error_handler {
            handler(&self.name, data, failure);
        }
    }
}

impl From<CronError> for ActionFailure {
    fn from(error: CronError) -> Self {
        Self::Failed(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bodies_are_unix_seconds() {
        assert_eq!(trigger_timestamp(b"1795758783"), Some(1_795_758_783));
        assert_eq!(trigger_timestamp(b"1795758783.72"), Some(1_795_758_783));
        assert_eq!(trigger_timestamp(b"soon"), None);
    }
}
