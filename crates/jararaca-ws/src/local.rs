//! The rooms of this process: each connection's bounded queue, and delivery into them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::CLOSE_TOO_SLOW;
use crate::stats::Stats;

/// A close the connection's task is asked to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

#[derive(Default)]
struct ConnState {
    queue: VecDeque<Bytes>,
    close: Option<CloseRequest>,
    rooms: Vec<Arc<str>>,
}

/// One connection as the rooms see it: its queue of frames, its close request, its rooms.
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    capacity: usize,
    state: Mutex<ConnState>,
    /// Wakes the connection's task: a frame was queued or a close was requested.
    pub(crate) wake: Notify,
}

impl ConnShared {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `frame`; `false` when the queue is full (the client is too slow) or the
    /// connection is closing.
    fn push(&self, frame: &Bytes) -> Push {
        let mut state = self.lock();
        if state.close.is_some() {
            return Push::Closing;
        }
        if state.queue.len() >= self.capacity {
            state.close = Some(CloseRequest {
                code: CLOSE_TOO_SLOW,
                reason: "too slow: send queue full",
            });
            state.queue.clear();
            drop(state);
            self.wake.notify_one();
            return Push::TooSlow;
        }
        state.queue.push_back(frame.clone());
        drop(state);
        self.wake.notify_one();
        Push::Queued
    }

    /// The next frame to write, unless a close was requested (which wins).
    pub(crate) fn next(&self) -> Next {
        let mut state = self.lock();
        if let Some(close) = state.close {
            return Next::Close(close);
        }
        match state.queue.pop_front() {
            Some(frame) => Next::Frame(frame),
            None => Next::Idle,
        }
    }

    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        self.lock().close
    }

    pub(crate) fn request_close(&self, code: u16, reason: &'static str) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(CloseRequest { code, reason });
            state.queue.clear();
        }
        drop(state);
        self.wake.notify_one();
    }

    pub(crate) fn rooms(&self) -> Vec<Arc<str>> {
        self.lock().rooms.clone()
    }
}

enum Push {
    Queued,
    TooSlow,
    Closing,
}

/// What a connection's task does next.
pub(crate) enum Next {
    Frame(Bytes),
    Close(CloseRequest),
    Idle,
}

/// In id order, which is connection order: a fan-out writes to sockets in the order they
/// connected, as a broadcast channel wakes its receivers, which keeps both ends' memory
/// access sequential.
type Members = BTreeMap<u64, Arc<ConnShared>>;

/// Every connection of this process and the rooms they are in.
pub(crate) struct LocalRooms {
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    all: RwLock<Members>,
    next_id: AtomicU64,
    pub(crate) stats: Arc<Stats>,
}

impl fmt::Debug for LocalRooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRooms")
            .field("connections", &self.connections())
            .field("rooms", &read(&self.rooms).len())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl LocalRooms {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        Self {
            rooms: RwLock::new(HashMap::new()),
            all: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            stats,
        }
    }

    /// Adds a connection whose queue holds `capacity` frames.
    pub(crate) fn add(&self, capacity: usize) -> Arc<ConnShared> {
        let conn = Arc::new(ConnShared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            capacity: capacity.max(1),
            state: Mutex::new(ConnState::default()),
            wake: Notify::new(),
        });
        write(&self.all).insert(conn.id, Arc::clone(&conn));
        conn
    }

    /// Removes a connection from every room.
    pub(crate) fn remove(&self, conn: &ConnShared) {
        let rooms = std::mem::take(&mut conn.lock().rooms);
        if !rooms.is_empty() {
            let mut map = write(&self.rooms);
            for room in rooms {
                if let Some(members) = map.get_mut(&room) {
                    members.remove(&conn.id);
                    if members.is_empty() {
                        map.remove(&room);
                    }
                }
            }
        }
        write(&self.all).remove(&conn.id);
    }

    pub(crate) fn join(&self, conn: &Arc<ConnShared>, rooms: &[Arc<str>]) {
        if !read(&self.all).contains_key(&conn.id) {
            return;
        }
        // The room map before the connection: delivery takes them in this order too.
        let mut map = write(&self.rooms);
        let mut state = conn.lock();
        for room in rooms {
            if state.rooms.iter().any(|r| r == room) {
                continue;
            }
            state.rooms.push(Arc::clone(room));
            map.entry(Arc::clone(room))
                .or_default()
                .insert(conn.id, Arc::clone(conn));
        }
    }

    pub(crate) fn leave(&self, conn: &ConnShared, rooms: &[Arc<str>]) {
        let mut map = write(&self.rooms);
        let mut state = conn.lock();
        for room in rooms {
            state.rooms.retain(|r| r != room);
            if let Some(members) = map.get_mut(room) {
                members.remove(&conn.id);
                if members.is_empty() {
                    map.remove(room);
                }
            }
        }
    }

    /// Queues `frame` for every local connection in `rooms` (once each, however many of
    /// the rooms it is in); the number of connections it was queued for.
    pub(crate) fn deliver<R: AsRef<str>>(&self, rooms: &[R], frame: &Bytes) -> usize {
        let map = read(&self.rooms);
        let mut queued = 0;
        let mut slow = Vec::new();
        if let [room] = rooms {
            if let Some(members) = map.get(room.as_ref()) {
                for conn in members.values() {
                    self.push(conn, frame, &mut queued, &mut slow);
                }
            }
        } else {
            let mut seen = HashSet::new();
            for room in rooms {
                let Some(members) = map.get(room.as_ref()) else {
                    continue;
                };
                for conn in members.values() {
                    if seen.insert(conn.id) {
                        self.push(conn, frame, &mut queued, &mut slow);
                    }
                }
            }
        }
        drop(map);
        self.report_slow(slow);
        queued
    }

    /// Queues `frame` for every local connection.
    pub(crate) fn deliver_all(&self, frame: &Bytes) -> usize {
        let all = read(&self.all);
        let mut queued = 0;
        let mut slow = Vec::new();
        for conn in all.values() {
            self.push(conn, frame, &mut queued, &mut slow);
        }
        drop(all);
        self.report_slow(slow);
        queued
    }

    fn push(&self, conn: &ConnShared, frame: &Bytes, queued: &mut usize, slow: &mut Vec<u64>) {
        match conn.push(frame) {
            Push::Queued => *queued += 1,
            Push::TooSlow => slow.push(conn.id),
            Push::Closing => {}
        }
    }

    fn report_slow(&self, slow: Vec<u64>) {
        if slow.is_empty() {
            return;
        }
        self.stats
            .slow_clients
            .fetch_add(slow.len() as u64, Ordering::Relaxed);
        tracing::warn!(
            connections = ?slow,
            "disconnecting WebSocket clients too slow to take their messages"
        );
    }

    /// Asks every connection to close.
    pub(crate) fn close_all(&self, code: u16, reason: &'static str) {
        for conn in read(&self.all).values() {
            conn.request_close(code, reason);
        }
    }

    pub(crate) fn connections(&self) -> usize {
        read(&self.all).len()
    }

    pub(crate) fn room_size(&self, room: &str) -> usize {
        read(&self.rooms).get(room).map_or(0, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_connection_in_two_rooms_gets_a_message_to_both_once() {
        let local = LocalRooms::new(Arc::default());
        let a = local.add(8);
        let b = local.add(8);
        local.join(&a, &[Arc::from("x"), Arc::from("y")]);
        local.join(&b, &[Arc::from("y")]);
        assert_eq!(local.deliver(&["x", "y"], &frame("m")), 2);
        assert!(matches!(a.next(), Next::Frame(f) if f == "m"));
        assert!(matches!(a.next(), Next::Idle));
        assert_eq!(local.deliver(&["z"], &frame("m")), 0);
        assert_eq!(local.deliver_all(&frame("all")), 2);
    }

    #[test]
    fn a_full_queue_asks_for_a_close_and_is_counted() {
        let local = LocalRooms::new(Arc::default());
        let conn = local.add(2);
        local.join(&conn, &[Arc::from("r")]);
        for _ in 0..3 {
            local.deliver(&["r"], &frame("m"));
        }
        assert!(matches!(conn.next(), Next::Close(c) if c.code == CLOSE_TOO_SLOW));
        assert_eq!(local.stats.slow_clients.load(Ordering::Relaxed), 1);
        assert_eq!(local.deliver(&["r"], &frame("m")), 0);
    }

    #[test]
    fn removed_connections_leave_every_room() {
        let local = LocalRooms::new(Arc::default());
        let conn = local.add(2);
        local.join(&conn, &[Arc::from("a"), Arc::from("b")]);
        assert_eq!(local.room_size("a"), 1);
        local.remove(&conn);
        assert_eq!(local.room_size("a"), 0);
        assert_eq!(local.room_size("b"), 0);
        assert_eq!(local.connections(), 0);
        // A removed connection cannot rejoin.
        local.join(&conn, &[Arc::from("a")]);
        assert_eq!(local.room_size("a"), 0);
    }
}
