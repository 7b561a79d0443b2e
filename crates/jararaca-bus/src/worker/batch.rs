//! Acknowledging RabbitMQ deliveries in runs: one `basic.ack` with `multiple` for every
//! contiguous run of settled deliveries, instead of one per message.
//!
//! On a channel the broker numbers deliveries 1, 2, 3…, and `basic.ack(tag, multiple)`
//! acknowledges every outstanding delivery up to `tag`. A consumer's [`AckBatch`] keeps the
//! deliveries it took in a [`Window`], in tag order, and marks each one as its unit of work
//! settles it. Only the run at the front of the window — every delivery up to the first one
//! still running — is acknowledged with `multiple`, so no acknowledgement ever covers a
//! delivery whose unit has not finished. A delivery settled otherwise (rejected, requeued,
//! settled after being abandoned) breaks the run: the run below it is sent first, then its
//! own frame, alone, and only then can a later run reach past it.
//!
//! The run is sent as soon as it holds a quarter of the prefetch, and otherwise after
//! [`LINGER`]. The timer also acknowledges, one by one, deliveries settled behind one still
//! running, and so does a settle once a quarter of the prefetch is held back that way while
//! the broker waits (it sends nothing more while a whole prefetch is unacknowledged): a
//! slow message never holds back the others' acknowledgements, nor the prefetch slots they
//! free, for longer than that.
//!
//! Acknowledgements not sent yet are lost with the channel: the broker delivers those
//! messages again, as it does for any unacknowledged one. Delivery stays at least once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lapin::options::BasicAckOptions;
use tokio::sync::Notify;

use super::AckHook;
use crate::BusError;

/// The longest a settled delivery waits for its acknowledgement to be sent.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

/// The most deliveries a window holds; later ones are settled alone.
const MAX_WINDOW: usize = 1 << 16;

/// How many settled deliveries at the front of the window are acknowledged together.
pub(crate) fn batch_size(prefetch: u16) -> usize {
    match prefetch {
        // No prefetch: the broker never waits for acknowledgements, only the timer bounds them.
        0 => 256,
        n => usize::from(n / 4).max(1),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Its unit has not settled it yet.
    Running,
    /// Settled: its acknowledgement is to be sent.
    Ack,
    /// Settled on its own (rejected, requeued, acknowledged alone): nothing left to send.
    Done,
}

/// The deliveries a consumer took and not yet acknowledged, in tag order.
#[derive(Debug)]
pub(crate) struct Window {
    /// The tag of `slots[0]`: everything below it is acknowledged or was settled alone.
    base: u64,
    slots: VecDeque<Slot>,
    /// How many slots at the front are settled (the run).
    run: usize,
    /// How many slots are [`Slot::Ack`].
    unsent: usize,
    /// How many slots are [`Slot::Done`].
    alone: usize,
    /// Cleared when a tag is missing (another consumer on the channel got it): deliveries
    /// from then on are acknowledged alone, since a `multiple` reaching past the missing
    /// one would acknowledge it for its consumer.
    contiguous: bool,
    /// Whether the timer is set.
    armed: bool,
}

/// What a settled delivery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Nothing: the timer is set already, or there is nothing to send.
    Nothing,
    /// Set the timer.
    Later,
    /// Send the run now.
    Run,
    /// Send the run and what is settled behind a running delivery now: the broker waits.
    All,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            base: 1,
            slots: VecDeque::new(),
            run: 0,
            unsent: 0,
            alone: 0,
            contiguous: true,
            armed: false,
        }
    }
}

impl Window {
    /// Takes delivery `tag` in; `false` when it must be settled alone.
    pub(crate) fn take(&mut self, tag: u64) -> bool {
        // A delivery that never settles holds the run back for good: bound what piles up
        // behind it by settling the next ones alone.
        if self.slots.len() >= MAX_WINDOW {
            self.contiguous = false;
        }
        if self.contiguous && tag == self.base + self.slots.len() as u64 {
            self.slots.push_back(Slot::Running);
            true
        } else {
            self.contiguous = false;
            false
        }
    }

    /// Marks a delivery taken in as settled: to acknowledge (`ack`), or settled alone.
    pub(crate) fn settle(&mut self, tag: u64, ack: bool) {
        let Some(index) = tag
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if *slot != Slot::Running {
            return;
        }
        *slot = if ack { Slot::Ack } else { Slot::Done };
        if ack {
            self.unsent += 1;
        } else {
            self.alone += 1;
        }
        if index == self.run {
            self.run += 1;
            while self
                .slots
                .get(self.run)
                .is_some_and(|s| *s != Slot::Running)
            {
                self.run += 1;
            }
        }
    }

    /// What to do after a settle, for a window of at most `prefetch` deliveries (0: no
    /// bound) whose runs are sent at `batch` deliveries.
    pub(crate) fn next(&mut self, batch: usize, prefetch: usize) -> Flush {
        // The deliveries the broker counts against the prefetch.
        let unacknowledged = self.slots.len() - self.alone;
        if self.unsent == 0 {
            Flush::Nothing
        } else if self.run >= batch {
            Flush::Run
        } else if prefetch != 0 && unacknowledged >= prefetch && self.unsent >= batch {
            // The broker waits for acknowledgements, and a batch of them is held back
            // behind a running delivery.
            Flush::All
        } else if self.armed {
            Flush::Nothing
        } else {
            self.armed = true;
            Flush::Later
        }
    }

    /// Removes the run at the front; returns the tag to acknowledge with `multiple` and how
    /// many deliveries that acknowledges, if any.
    pub(crate) fn take_run(&mut self) -> Option<(u64, usize)> {
        let mut last = None;
        let mut acked = 0;
        for _ in 0..self.run {
            match self.slots.pop_front() {
                Some(Slot::Ack) => {
                    last = Some(self.base);
                    acked += 1;
                }
                Some(Slot::Done) => self.alone -= 1,
                _ => {}
            }
            self.base += 1;
        }
        self.run = 0;
        self.unsent -= acked;
        last.map(|tag| (tag, acked))
    }

    /// Marks the deliveries settled behind a running one as sent and returns their tags, to
    /// acknowledge one by one. Call after [`take_run`](Self::take_run).
    pub(crate) fn take_stragglers(&mut self) -> Vec<u64> {
        let mut tags = Vec::with_capacity(self.unsent);
        if self.unsent > 0 {
            for (offset, slot) in (0..).zip(self.slots.iter_mut()) {
                if *slot == Slot::Ack {
                    *slot = Slot::Done;
                    tags.push(self.base + offset);
                }
            }
            self.alone += self.unsent;
            self.unsent = 0;
        }
        tags
    }
}

/// A consumer's acknowledgements on its channel.
#[derive(Debug)]
pub(crate) struct AckBatch {
    channel: lapin::Channel,
    window: Mutex<Window>,
    /// Held while frames are sent, so runs reach the broker in order.
    sending: tokio::sync::Mutex<()>,
    /// Wakes the timer.
    wake: Notify,
    batch: usize,
    prefetch: usize,
    hook: Option<AckHook>,
}

impl AckBatch {
    pub(crate) fn new(channel: lapin::Channel, prefetch: u16, hook: Option<AckHook>) -> Self {
        Self {
            channel,
            window: Mutex::default(),
            sending: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            batch: batch_size(prefetch),
            prefetch: usize::from(prefetch),
            hook,
        }
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes delivery `tag` in; `false` when it must be settled alone.
    pub(crate) fn take(&self, tag: u64) -> bool {
        self.window().take(tag)
    }

    /// Records that delivery `tag` is settled (to acknowledge, or `ack = false`: settled
    /// alone) and sends what is due.
    pub(crate) async fn settled(&self, tag: u64, ack: bool) -> Result<(), BusError> {
        let next = {
            let mut window = self.window();
            window.settle(tag, ack);
            window.next(self.batch, self.prefetch)
        };
        match next {
            Flush::Nothing => Ok(()),
            Flush::Later => {
                self.wake.notify_one();
                Ok(())
            }
            Flush::Run => self.flush(false).await,
            Flush::All => self.flush(true).await,
        }
    }

    /// Sends the run at the front of the window and, with `all`, acknowledges alone what is
    /// settled behind a running delivery.
    pub(crate) async fn flush(&self, all: bool) -> Result<(), BusError> {
        let _order = self.sending.lock().await;
        // Taken out before sending: a flush cancelled half-way loses acknowledgements (the
        // broker redelivers) rather than sending one twice (which would close the channel).
        let (run, stragglers) = {
            let mut window = self.window();
            if all {
                window.armed = false;
            }
            let run = window.take_run();
            let stragglers = if all {
                window.take_stragglers()
            } else {
                Vec::new()
            };
            (run, stragglers)
        };
        if let Some((tag, _)) = run {
            if let Some(hook) = self.hook {
                hook(tag, true);
            }
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(BusError::amqp("acknowledging"))?;
        }
        if !stragglers.is_empty() {
            if let Some(hook) = self.hook {
                stragglers.iter().for_each(|tag| hook(*tag, false));
            }
            futures_util::future::try_join_all(stragglers.into_iter().map(|tag| {
                self.channel
                    .basic_ack(tag, BasicAckOptions { multiple: false })
            }))
            .await
            .map_err(BusError::amqp("acknowledging"))?;
        }
        Ok(())
    }

    /// Sends what settled deliveries wait for every [`LINGER`] while there is any; runs
    /// until dropped.
    pub(crate) async fn linger(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(LINGER).await;
            if let Err(error) = self.flush(true).await {
                tracing::debug!(%error, "sending batched acknowledgements failed; the broker delivers those messages again");
            }
        }
    }
}

/// A RabbitMQ delivery's settle handle.
pub(crate) struct AmqpAcker {
    acker: lapin::Acker,
    tag: u64,
    /// Its consumer's batch, when the delivery is in its window.
    batch: Option<Arc<AckBatch>>,
}

impl AmqpAcker {
    /// The handle of delivery `tag`, taken into `batch`'s window when there is one.
    pub(crate) fn new(acker: lapin::Acker, tag: u64, batch: Option<&Arc<AckBatch>>) -> Self {
        let batch = batch.filter(|b| b.take(tag)).map(Arc::clone);
        Self { acker, tag, batch }
    }

    /// Acknowledges it: with its run, or alone when it is not in a window. `now` sends
    /// everything settled on the channel at once rather than when due.
    pub(crate) async fn ack(self, now: bool) -> Result<bool, BusError> {
        match self.batch {
            Some(batch) => {
                if !self.acker.usable() {
                    return Ok(false);
                }
                batch.settled(self.tag, true).await?;
                if now {
                    batch.flush(true).await?;
                }
                Ok(true)
            }
            None => self
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(BusError::amqp("acknowledging")),
        }
    }

    /// Settles it alone through lapin's handle (`settle`): the run below it is sent first,
    /// and runs above it may pass it only once `settle` is done.
    pub(crate) async fn alone<F: Future>(
        self,
        settle: impl FnOnce(lapin::Acker) -> F,
    ) -> F::Output {
        let Some(batch) = self.batch else {
            return settle(self.acker).await;
        };
        if let Err(error) = batch.flush(false).await {
            tracing::debug!(%error, "sending batched acknowledgements failed; the broker delivers those messages again");
        }
        let settled = settle(self.acker).await;
        if let Err(error) = batch.settled(self.tag, false).await {
            tracing::debug!(%error, "sending batched acknowledgements failed; the broker delivers those messages again");
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(tags: std::ops::RangeInclusive<u64>) -> Window {
        let mut window = Window::default();
        for tag in tags {
            assert!(window.take(tag));
        }
        window
    }

    #[test]
    fn a_run_is_acknowledged_up_to_its_last_settled_delivery() {
        let mut w = window(1..=5);
        w.settle(2, true);
        w.settle(3, true);
        // 1 still runs: nothing may be acknowledged with `multiple`.
        assert_eq!(w.take_run(), None);
        w.settle(1, true);
        assert_eq!(w.take_run(), Some((3, 3)));
        // Only what is behind the run is left.
        w.settle(5, true);
        assert_eq!(w.take_run(), None);
        w.settle(4, true);
        assert_eq!(w.take_run(), Some((5, 2)));
        assert_eq!(w.take_run(), None);
    }

    #[test]
    fn a_delivery_settled_alone_breaks_the_run_and_is_never_the_acknowledged_tag() {
        let mut w = window(1..=4);
        w.settle(1, true);
        w.settle(3, true);
        w.settle(4, false);
        // 2 is being rejected: the run stops below it.
        assert_eq!(w.take_run(), Some((1, 1)));
        w.settle(2, false);
        // 3 is the last acknowledged one: `multiple` on 4 would name a settled delivery.
        assert_eq!(w.take_run(), Some((3, 1)));
        assert!(w.slots.is_empty());
        assert_eq!(w.base, 5);
    }

    #[test]
    fn a_missing_tag_ends_batching_for_what_follows() {
        let mut w = window(1..=2);
        // 3 went to another consumer on the channel.
        assert!(!w.take(4));
        assert!(!w.take(5));
        w.settle(1, true);
        w.settle(2, true);
        assert_eq!(w.take_run(), Some((2, 2)));
        // A consumer whose first delivery is not tag 1 never batches.
        assert!(!Window::default().take(2));
    }

    #[test]
    fn a_delivery_that_never_settles_bounds_the_window() {
        let mut w = window(1..=MAX_WINDOW as u64);
        for tag in 2..=MAX_WINDOW as u64 {
            w.settle(tag, true);
        }
        assert!(!w.take(MAX_WINDOW as u64 + 1));
        assert_eq!(w.take_run(), None);
        w.settle(1, true);
        assert_eq!(w.take_run(), Some((MAX_WINDOW as u64, MAX_WINDOW)));
    }

    #[test]
    fn settled_deliveries_behind_a_running_one_are_acknowledged_alone() {
        let mut w = window(1..=4);
        w.settle(2, true);
        w.settle(4, true);
        assert_eq!(w.take_run(), None);
        assert_eq!(w.take_stragglers(), vec![2, 4]);
        assert_eq!(w.take_stragglers(), Vec::<u64>::new());
        w.settle(1, true);
        w.settle(3, true);
        // 2 and 4 are sent; the run acknowledges up to 3.
        assert_eq!(w.take_run(), Some((3, 2)));
        assert!(w.slots.is_empty());
    }

    #[test]
    fn the_policy_sends_at_the_batch_size_or_what_the_waiting_broker_needs() {
        let mut w = window(1..=8);
        w.settle(1, true);
        assert_eq!(w.next(2, 16), Flush::Later);
        assert!(w.armed);
        w.settle(3, true);
        // The timer is set already.
        assert_eq!(w.next(2, 16), Flush::Nothing);
        w.settle(2, true);
        assert_eq!(w.next(2, 16), Flush::Run);
        assert_eq!(w.take_run(), Some((3, 3)));
        w.armed = false;
        // A whole prefetch unacknowledged, its first delivery running: one settled behind
        // it waits for the timer, a batch of them goes at once.
        assert!(w.take(9) && w.take(10) && w.take(11));
        w.settle(5, true);
        assert_eq!(w.next(2, 8), Flush::Later);
        w.settle(6, true);
        assert_eq!(w.next(2, 8), Flush::All);
        assert_eq!(w.take_run(), None);
        assert_eq!(w.take_stragglers(), vec![5, 6]);
        // Acknowledged alone, they no longer count against the prefetch.
        assert!(w.take(12) && w.take(13));
        w.settle(7, true);
        w.settle(8, true);
        assert_eq!(w.next(2, 8), Flush::All);
        w.take_stragglers();
        w.settle(9, true);
        w.settle(10, true);
        assert_eq!(
            w.next(2, 16),
            Flush::Nothing,
            "the broker does not wait: the timer"
        );
        // Nothing to send: nothing asked.
        let mut idle = window(1..=2);
        idle.settle(1, false);
        assert_eq!(idle.next(1, 2), Flush::Nothing);
    }

    #[test]
    fn a_batch_is_a_quarter_of_the_prefetch() {
        assert_eq!(batch_size(256), 64);
        assert_eq!(batch_size(4), 1);
        assert_eq!(batch_size(1), 1);
        assert_eq!(batch_size(0), 256);
    }
}
