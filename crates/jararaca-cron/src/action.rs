//! Scheduled actions: a cron expression, a tower service over [`Tick`] and the reference's
//! options, and [`Tick`], the unit of work each trigger runs as.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Extensions;
use jararaca_di::{BoxError, Envelope, UnitKind};
use tower::util::BoxCloneSyncService;
use tower_service::Service;

/// What a trigger tells its action: when the beat dispatched it (the reference's
/// `ScheduleDispatchData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleDispatchData {
    /// The dispatch time, in unix seconds (the trigger's body).
    pub timestamp: i64,
}

/// One run of a scheduled action: a unit of work of kind [`UnitKind::Scheduled`], wrapped in
/// the same interceptors as HTTP routes and message handlers.
#[derive(Debug)]
pub struct Tick {
    action: Arc<str>,
    cron: Arc<str>,
    data: ScheduleDispatchData,
    extensions: Extensions,
}

impl Tick {
    /// A tick of action `action` (its name, or its id when unnamed) with schedule `cron`.
    pub fn new(action: impl Into<Arc<str>>, cron: impl Into<Arc<str>>, timestamp: i64) -> Self {
        Self {
            action: action.into(),
            cron: cron.into(),
            data: ScheduleDispatchData { timestamp },
            extensions: Extensions::new(),
        }
    }

    /// The action's name (the reference's `task_name`).
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The action's cron expression.
    pub fn cron(&self) -> &str {
        &self.cron
    }

    /// What the trigger said.
    pub fn data(&self) -> ScheduleDispatchData {
        self.data
    }
}

impl Envelope for Tick {
    fn kind(&self) -> UnitKind {
        UnitKind::Scheduled
    }

    fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    fn header(&self, _name: &str) -> Option<Cow<'_, str>> {
        // Triggers carry no headers (the reference publishes them without any).
        None
    }
}

/// A scheduled action's service, boxed once when the action is made.
pub type ActionService = BoxCloneSyncService<Tick, (), BoxError>;

/// Why a run of a scheduled action failed, as its error handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActionFailure {
    /// The action returned an error (or panicked: the error is then a
    /// [`Panicked`](jararaca_di::Panicked)).
    Failed(BoxError),
    /// It ran longer than its `timeout` and was cancelled: its unit of work rolled back and
    /// it published nothing.
    TimedOut(Duration),
}

impl fmt::Display for ActionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "{error}"),
            Self::TimedOut(timeout) => write!(f, "cancelled after its timeout of {timeout:?}"),
        }
    }
}

/// Called with the action's name, the tick and the failure of every failed run.
pub type ErrorHandler = Arc<dyn Fn(&str, ScheduleDispatchData, &ActionFailure) + Send + Sync>;

/// The reference's `ScheduledAction` options, each of which takes effect.
#[derive(Clone)]
#[non_exhaustive]
pub struct ActionOptions {
    /// Whether a tick may start while an earlier one of the same action still runs
    /// (default `false`, as the reference).
    pub allow_overlap: bool,
    /// With `allow_overlap = false`: whether "no overlap" holds across every worker process
    /// (`true`, the default: a Redis lease written as `in_execution:<id>:<ts>`, which beats,
    /// ours and Python's, also skip dispatching on) or only inside each worker process
    /// (`false`: no Redis round trip per tick, but two workers may run the action at once).
    pub exclusive: bool,
    /// Longest a run may take; a longer run is cancelled (its unit of work rolls back) and
    /// its lease released.
    pub timeout: Option<Duration>,
    /// Called on every failure (errors, panics, timeouts), after it is logged.
    pub error_handler: Option<ErrorHandler>,
    /// The name `--actions` (beat) and `--handlers` (worker) select it by.
    pub name: Option<String>,
    /// The group `--groups` selects it by.
    pub group: Option<String>,
    /// The worker channel it shares with the handlers of the same channel id.
    pub channel_id: Option<String>,
}

impl Default for ActionOptions {
    fn default() -> Self {
        Self {
            allow_overlap: false,
            exclusive: true,
            timeout: None,
            error_handler: None,
            name: None,
            group: None,
            channel_id: None,
        }
    }
}

impl fmt::Debug for ActionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionOptions")
            .field("allow_overlap", &self.allow_overlap)
            .field("exclusive", &self.exclusive)
            .field("timeout", &self.timeout)
            .field("error_handler", &self.error_handler.is_some())
            .field("name", &self.name)
            .field("group", &self.group)
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// A scheduled action: when it runs (a cron expression in the reference's croniter syntax)
/// and what it runs.
///
/// ```
/// use std::time::Duration;
/// use jararaca_cron::{ScheduleDispatchData, ScheduledAction};
///
/// let purge = ScheduledAction::new("0 * * * *", |tick: ScheduleDispatchData| async move {
///     println!("purging, tick of {}", tick.timestamp);
///     Ok(())
/// })
/// .name("purge")
/// .timeout(Duration::from_secs(30));
/// assert_eq!(purge.options().name.as_deref(), Some("purge"));
/// assert!(!purge.options().allow_overlap);
/// ```
#[derive(Clone)]
pub struct ScheduledAction {
    pub(crate) cron: String,
    pub(crate) id: Option<String>,
    pub(crate) options: ActionOptions,
    pub(crate) service: ActionService,
}

impl fmt::Debug for ScheduledAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledAction")
            .field("cron", &self.cron)
            .field("id", &self.id)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ScheduledAction {
    /// Runs `action(data)` on schedule `cron`.
    pub fn new<F, Fut>(cron: impl Into<String>, action: F) -> Self
    where
        F: Fn(ScheduleDispatchData) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Self::service(cron, ActionFn { action })
    }

    /// Runs `action(tick)` on schedule `cron`: for actions that read what the interceptors
    /// put in the tick's extensions (a database session, say).
    pub fn with_tick<F, Fut>(cron: impl Into<String>, action: F) -> Self
    where
        F: Fn(Tick) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Self::service(cron, TickFn { action })
    }

    /// Runs `service` (a tower service over [`Tick`]) on schedule `cron`.
    pub fn service<S>(cron: impl Into<String>, service: S) -> Self
    where
        S: Service<Tick, Response = (), Error = BoxError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Self {
            cron: cron.into(),
            id: None,
            options: ActionOptions::default(),
            service: BoxCloneSyncService::new(service),
        }
    }

    /// Its cron expression.
    pub fn cron(&self) -> &str {
        &self.cron
    }

    /// Its options.
    pub fn options(&self) -> &ActionOptions {
        &self.options
    }

    /// Uses `id` as its id — queue name, routing key and Redis key suffix — instead of
    /// `<service>.<Controller>.<method>`: to take over a Python action's queue.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Lets ticks overlap (default `false`).
    #[must_use]
    pub fn allow_overlap(mut self, allow: bool) -> Self {
        self.options.allow_overlap = allow;
        self
    }

    /// Whether "no overlap" holds across processes (`true`, the default) or inside each
    /// worker process only; see [`ActionOptions::exclusive`].
    #[must_use]
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.options.exclusive = exclusive;
        self
    }

    /// Cancels a run that takes longer than `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Calls `handler(name, tick, failure)` on every failed run.
    #[must_use]
    pub fn on_error(
        mut self,
        handler: impl Fn(&str, ScheduleDispatchData, &ActionFailure) + Send + Sync + 'static,
    ) -> Self {
        self.options.error_handler = Some(Arc::new(handler));
        self
    }

    /// Names it, for `--actions` and `--handlers`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Puts it in a group, for `--groups`.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.options.group = Some(group.into());
        self
    }

    /// Runs it on the worker channel `channel_id`.
    #[must_use]
    pub fn channel_id(mut self, channel_id: impl Into<String>) -> Self {
        self.options.channel_id = Some(channel_id.into());
        self
    }
}

/// The service of [`ScheduledAction::new`].
#[derive(Clone)]
struct ActionFn<F> {
    action: F,
}

impl<F, Fut> Service<Tick> for ActionFn<F>
where
    F: Fn(ScheduleDispatchData) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    type Response = ();
    type Error = BoxError;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, tick: Tick) -> Fut {
        (self.action)(tick.data())
    }
}

/// The service of [`ScheduledAction::with_tick`].
#[derive(Clone)]
struct TickFn<F> {
    action: F,
}

impl<F, Fut> Service<Tick> for TickFn<F>
where
    F: Fn(Tick) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    type Response = ();
    type Error = BoxError;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, tick: Tick) -> Fut {
        (self.action)(tick)
    }
}
