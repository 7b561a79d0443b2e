//! The beat: publishes each due tick of each action to its queue, once across every beat
//! (ours and Python jararaca's) that shares the broker and the store.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono_tz::Tz;
use jararaca_bus::delayed::DelayedStore;
use jararaca_bus::{Outgoing, Publisher, Route, new_message_id};

use crate::store::BeatStore;
use crate::{CronError, CronExpr};

/// How long the beat lock is held at most (the reference's `PX 30000`).
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a beat waits for the lock before skipping the action this time (the reference's
/// 5 s, retrying every 50 ms).
pub const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// What the beat does with ticks that passed while no beat ran (the beat was down, or
/// Redis was unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTicks {
    /// Dispatch one trigger on resume, whatever the number missed, and go on from there
    /// (the reference's policy, and the default). An action never dispatched before is
    /// dispatched at once.
    #[default]
    Once,
    /// Dispatch nothing for them: record the resume as the last dispatch and wait for the
    /// next tick. An action never dispatched before waits for its first tick too.
    Skip,
}

impl FromStr for MissedTicks {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, CronError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "once" => Ok(Self::Once),
            "skip" => Ok(Self::Skip),
            other => Err(CronError::Config(format!(
                "unknown missed-tick policy `{other}`: use `once` (the default) or `skip`"
            ))),
        }
    }
}

/// One action as the beat sees it.
#[derive(Debug, Clone)]
pub struct BeatAction {
    /// Its id: queue name, routing key and Redis key suffix.
    pub id: String,
    /// Its name, for `--actions` and logs.
    pub name: Option<String>,
    /// Its schedule.
    pub cron: CronExpr,
    /// Whether a tick is dispatched while an earlier one still runs (`in_execution:<id>:*`).
    pub allow_overlap: bool,
}

/// A trigger the beat published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched<'a> {
    /// The action's id.
    pub id: &'a str,
    /// The tick it was due for (unix seconds).
    pub due: i64,
    /// The trigger's body (unix seconds when it was published).
    pub timestamp: i64,
}

type DispatchHook = Arc<dyn Fn(Dispatched<'_>, SystemTime) + Send + Sync>;

/// The beat: sleeps until the next tick due among its actions — no polling, so a trigger
/// leaves within milliseconds of its time — then for each due action, as the reference:
/// takes `beat_lock` (`SET NX PX 30000`, 50 ms retries for up to 5 s, else it tries again
/// one `interval` later), reads `last_dispatch_time:<id>` and dispatches only if the next
/// tick after it is due, skips an action with `allow_overlap = false` while an
/// `in_execution:<id>:*` key exists, publishes the trigger (routing key = action id, body =
/// unix seconds, no headers, not persistent), writes `last_dispatch_time:<id>` and releases
/// the lock by compare-and-delete. Beside that it pumps delayed messages every `interval`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use jararaca_bus::InMemoryBroker;
/// use jararaca_cron::{Beat, BeatAction, CronExpr, InMemoryBeatStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jararaca_cron::CronError> {
/// let broker = InMemoryBroker::new();
/// broker.declare_queue("shop.Jobs.every_second", "shop.Jobs.every_second");
/// let beat = Beat::new(Arc::new(InMemoryBeatStore::new()), Arc::new(broker.clone()))
///     .action(BeatAction {
///         id: "shop.Jobs.every_second".into(),
///         name: None,
///         cron: "* * * * * *".parse()?,
///         allow_overlap: true,
///     });
/// // Never dispatched before: the first trigger leaves at once, as in the reference.
/// beat.run(tokio::time::sleep(Duration::from_millis(50))).await?;
/// assert_eq!(broker.queue_len("shop.Jobs.every_second"), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Beat {
    store: Arc<dyn BeatStore>,
    publisher: Arc<dyn Publisher>,
    delayed: Option<Arc<dyn DelayedStore>>,
    actions: Vec<BeatAction>,
    timezone: Tz,
    interval: Duration,
    missed: MissedTicks,
    on_dispatch: Option<DispatchHook>,
}

impl fmt::Debug for Beat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Beat")
            .field("store", &self.store)
            .field("publisher", &self.publisher)
            .field("actions", &self.actions)
            .field("timezone", &self.timezone)
            .field("interval", &self.interval)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Beat {
    /// A beat keeping its lock and dispatch times in `store` and publishing with
    /// `publisher`, reading schedules in UTC, with an `interval` of 1 s.
    pub fn new(store: Arc<dyn BeatStore>, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            store,
            publisher,
            delayed: None,
            actions: Vec::new(),
            timezone: chrono_tz::UTC,
            interval: Duration::from_secs(1),
            missed: MissedTicks::Once,
            on_dispatch: None,
        }
    }

    /// Adds an action.
    #[must_use]
    pub fn action(mut self, action: BeatAction) -> Self {
        self.actions.push(action);
        self
    }

    /// Reads schedules in `timezone` (the reference's `JARARACA_DEFAULT_TIMEZONE`).
    #[must_use]
    pub fn timezone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self
    }

    /// How often delayed messages are pumped, and how soon an action skipped (lock not
    /// taken, a tick still running) is looked at again (`--interval`, default 1 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// What to do with ticks missed while no beat ran ([`MissedTicks::Once`]).
    #[must_use]
    pub fn missed_ticks(mut self, policy: MissedTicks) -> Self {
        self.missed = policy;
        self
    }

    /// Also pumps the delayed messages of `store` (retries, `delay()`, `schedule()`).
    #[must_use]
    pub fn pump(mut self, store: Arc<dyn DelayedStore>) -> Self {
        self.delayed = Some(store);
        self
    }

    /// Calls `hook` with each trigger and when its publish completed (for measurements).
    #[must_use]
    pub fn on_dispatch(
        mut self,
        hook: impl Fn(Dispatched<'_>, SystemTime) + Send + Sync + 'static,
    ) -> Self {
        self.on_dispatch = Some(Arc::new(hook));
        self
    }

    /// Its actions.
    pub fn actions(&self) -> &[BeatAction] {
        &self.actions
    }

    /// Runs until `shutdown` completes. Failures of Redis or the broker are logged and the
    /// action tried again one interval later; the beat itself never stops on them.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), CronError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let pump = self.delayed.clone().map(|store| {
            let publisher = Arc::clone(&self.publisher);
            let interval = self.interval;
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                jararaca_bus::run_pump(&*store, &*publisher, interval, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            })
        });
        let dispatching = self.dispatch_loop();
        tokio::pin!(dispatching);
        tokio::select! {
            () = shutdown => {}
            () = &mut dispatching => {}
        }
        let _ = stop_tx.send(true);
        if let Some(pump) = pump {
            let _ = pump.await;
        }
        Ok(())
    }

    async fn dispatch_loop(&self) {
        if self.actions.is_empty() {
            tracing::info!("the beat has no scheduled action to dispatch; only pumping");
            std::future::pending::<()>().await;
        }
        // Let consumers started beside the beat (in process) bind their queues first.
        tokio::task::yield_now().await;
        // When each action is next looked at (unix seconds, fractional). Starting at 0 makes
        // every action checked once at start, under the lock, against the stored time.
        let mut next_check: Vec<f64> = vec![0.0; self.actions.len()];
        loop {
            let now = unix_now();
            let earliest = next_check.iter().copied().fold(f64::INFINITY, f64::min);
            if earliest > now {
                let wait = Duration::from_secs_f64((earliest - now).min(3600.0));
                tokio::time::sleep(wait).await;
                continue;
            }
            for (index, action) in self.actions.iter().enumerate() {
                if next_check[index] <= unix_now() {
                    next_check[index] = self.check(action).await;
                }
            }
        }
    }

    /// Checks one action under the lock, dispatching it if due; returns when to look at it
    /// next.
    async fn check(&self, action: &BeatAction) -> f64 {
        let retry_later = unix_now() + self.interval.as_secs_f64();
        let token = uuid::Uuid::new_v4().to_string();
        match self.lock(&token).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(action = %action.id, "the beat lock stayed taken for 5 s; trying again later");
                return retry_later;
            }
            Err(error) => {
                tracing::error!(%error, action = %action.id, "taking the beat lock failed");
                return retry_later;
            }
        }
        let next = self.check_locked(action).await;
        if let Err(error) = self.store.unlock(&token).await {
            tracing::warn!(%error, "releasing the beat lock failed; it expires by itself");
        }
        next.unwrap_or_else(|error| {
            tracing::error!(%error, action = %action.id, "checking a scheduled action failed");
            retry_later
        })
    }

    async fn lock(&self, token: &str) -> Result<bool, CronError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            if self.store.try_lock(token, LOCK_TTL).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() + LOCK_RETRY > deadline {
                return Ok(false);
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    async fn check_locked(&self, action: &BeatAction) -> Result<f64, CronError> {
        let now = unix_now();
        let now_secs = now.floor() as i64;
        let last = self.store.last_dispatch(&action.id).await?;
        let due = match last {
            Some(last) => match action.cron.next_after_unix(last, self.timezone) {
                Some(due) => due,
                None => return Ok(f64::INFINITY),
            },
            None => now_secs,
        };
        if (due as f64) > now {
            return Ok(due as f64);
        }
        let missed = match last {
            None => true,
            // Due before the previous second: not a tick that is due now but one that passed
            // while nobody dispatched.
            Some(_) => due < now_secs - (self.interval.as_secs() as i64).max(1),
        };
        if missed && self.missed == MissedTicks::Skip {
            tracing::info!(action = %action.id, due, "skipping a tick missed while no beat ran");
            self.store.set_last_dispatch(&action.id, now_secs).await?;
            return self.next_of(action, now_secs);
        }
        if !action.allow_overlap && self.store.is_executing(&action.id).await? {
            tracing::info!(action = %action.id, "not dispatching: a tick of it still runs");
            return Ok(now + self.interval.as_secs_f64());
        }
        let outgoing = Outgoing {
            route: Route::Main(action.id.clone()),
            body: now_secs.to_string().into_bytes(),
            headers: Default::default(),
            message_id: Some(new_message_id()),
            content_type: None,
            content_encoding: None,
            mandatory: false,
            persistent: false,
        };
        self.publisher.publish(outgoing).await?;
        let published = SystemTime::now();
        self.store.set_last_dispatch(&action.id, now_secs).await?;
        tracing::debug!(action = %action.id, due, "dispatched");
        if let Some(hook) = &self.on_dispatch {
            hook(
                Dispatched {
                    id: &action.id,
                    due,
                    timestamp: now_secs,
                },
                published,
            );
        }
        self.next_of(action, now_secs)
    }

    fn next_of(&self, action: &BeatAction, after: i64) -> Result<f64, CronError> {
        Ok(action
            .cron
            .next_after_unix(after, self.timezone)
            .map_or(f64::INFINITY, |next| next as f64))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jararaca_bus::InMemoryBroker;

    use super::*;
    use crate::InMemoryBeatStore;

    const ID: &str = "svc.Jobs.hourly";

    fn beat(store: &Arc<InMemoryBeatStore>, broker: &InMemoryBroker, allow_overlap: bool) -> Beat {
        broker.declare_queue(ID, ID);
        let store: Arc<dyn BeatStore> = Arc::clone(store) as Arc<dyn BeatStore>;
        Beat::new(store, Arc::new(broker.clone())).action(BeatAction {
            id: ID.into(),
            name: None,
            cron: "0 * * * *".parse().unwrap(),
            allow_overlap,
        })
    }

    fn now() -> i64 {
        unix_now().floor() as i64
    }

    async fn run_briefly(beat: Beat) {
        beat.run(tokio::time::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ticks_missed_while_down_fire_once_on_resume_by_default() {
        let (store, broker) = (Arc::new(InMemoryBeatStore::new()), InMemoryBroker::new());
        // Down for three hours: three hourly ticks passed.
        store.set_last_dispatch(ID, now() - 3 * 3600).await.unwrap();
        run_briefly(beat(&store, &broker, true)).await;
        let sent = broker.peek(ID);
        assert_eq!(sent.len(), 1, "one trigger on resume");
        let body: i64 = String::from_utf8_lossy(&sent[0].body).parse().unwrap();
        assert!((body - now()).abs() <= 1, "the body is the dispatch time");
        assert!(store.last_dispatch(ID).await.unwrap().unwrap() >= now() - 1);
    }

    #[tokio::test]
    async fn missed_ticks_can_be_skipped() {
        let (store, broker) = (Arc::new(InMemoryBeatStore::new()), InMemoryBroker::new());
        store.set_last_dispatch(ID, now() - 3 * 3600).await.unwrap();
        run_briefly(beat(&store, &broker, true).missed_ticks(MissedTicks::Skip)).await;
        assert_eq!(broker.queue_len(ID), 0);
        // The resume counts as the last dispatch: the next trigger is the next hour's.
        assert!(store.last_dispatch(ID).await.unwrap().unwrap() >= now() - 1);
        assert_eq!("SKIP".parse::<MissedTicks>().unwrap(), MissedTicks::Skip);
        assert!("later".parse::<MissedTicks>().is_err());
    }

    #[tokio::test]
    async fn a_tick_is_not_dispatched_while_one_runs_without_overlap() {
        let (store, broker) = (Arc::new(InMemoryBeatStore::new()), InMemoryBroker::new());
        assert!(
            store
                .acquire_execution(ID, 1, "worker", Duration::from_secs(60))
                .await
                .unwrap()
        );
        run_briefly(beat(&store, &broker, false)).await;
        assert_eq!(broker.queue_len(ID), 0, "a tick still runs");
        run_briefly(beat(&store, &broker, true)).await;
        assert_eq!(broker.queue_len(ID), 1, "overlap allowed");
    }

    #[tokio::test]
    async fn a_tick_not_yet_due_is_not_dispatched() {
        let (store, broker) = (Arc::new(InMemoryBeatStore::new()), InMemoryBroker::new());
        let last = now();
        store.set_last_dispatch(ID, last).await.unwrap();
        let at_hour = last - last.rem_euclid(3600) + 3600;
        if at_hour - last < 2 {
            return; // the hour turns during the test
        }
        run_briefly(beat(&store, &broker, true)).await;
        assert_eq!(broker.queue_len(ID), 0);
        assert_eq!(store.last_dispatch(ID).await.unwrap(), Some(last));
    }
}
