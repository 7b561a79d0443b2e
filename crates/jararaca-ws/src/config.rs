//! [`WsConfig`]: the limits of each connection, lean by default.

use std::time::Duration;

/// Whether frames to clients are binary (the default, what `@jararaca/core`'s
/// `WebSocketProvider` accepts) or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameKind {
    /// Binary frames carrying UTF-8 JSON, as Python jararaca sends them.
    #[default]
    Binary,
    /// Text frames.
    Text,
}

/// The limits of every connection: buffers, queue, keepalive, inbound size and rate.
///
/// The defaults are lean: a 4 KiB read buffer and no write buffering (each frame is written
/// at once, as tungstenite does with `write_buffer_size(0)`), so an idle connection costs a
/// few KiB instead of the 256 KiB tungstenite's defaults reserve.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Frames waiting for a connection's socket before the client counts as too slow and is
    /// disconnected with [`CLOSE_TOO_SLOW`] (default 64).
    pub queue_capacity: usize,
    /// The socket's read buffer, in bytes (default 4096).
    pub read_buffer_size: usize,
    /// How much the socket buffers before writing; 0 writes each frame at once (default).
    pub write_buffer_size: usize,
    /// The largest inbound message, in bytes (default 64 KiB).
    pub max_message_size: usize,
    /// The largest inbound frame, in bytes (default 64 KiB).
    pub max_frame_size: usize,
    /// How often an idle connection is pinged (default 30 s).
    pub ping_interval: Duration,
    /// How long after a ping with nothing heard back a connection counts as dead and is
    /// dropped (default 10 s).
    pub pong_timeout: Duration,
    /// Inbound messages allowed per second, on average (default 20); more and the client
    /// is disconnected with [`CLOSE_POLICY`].
    pub max_messages_per_second: u32,
    /// Inbound messages allowed in a burst (default 40).
    pub message_burst: u32,
    /// How long a close frame may take to go out before the socket is dropped (default 1 s).
    pub close_timeout: Duration,
    /// Binary (default) or text frames to clients.
    pub frames: FrameKind,
}

/// The close code for a client that did not keep up with its messages: 1008, policy
/// violation.
pub const CLOSE_TOO_SLOW: u16 = 1008;
/// The close code for a client that broke a limit (message rate): 1008, policy violation.
pub const CLOSE_POLICY: u16 = 1008;
/// The close code when the server shuts down: 1001, going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            read_buffer_size: 4096,
            write_buffer_size: 0,
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            max_messages_per_second: 20,
            message_burst: 40,
            close_timeout: Duration::from_secs(1),
            frames: FrameKind::Binary,
        }
    }
}

impl WsConfig {
    /// Sets [`WsConfig::queue_capacity`].
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.queue_capacity = frames.max(1);
        self
    }

    /// Sets [`WsConfig::read_buffer_size`].
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`WsConfig::write_buffer_size`].
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`WsConfig::max_message_size`] and [`WsConfig::max_frame_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = bytes;
        self
    }

    /// Sets the keepalive: ping every `interval`, drop after `timeout` more of silence.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = timeout;
        self
    }

    /// Sets the inbound message rate: `per_second` on average, `burst` at once.
    pub fn message_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.max_messages_per_second = per_second;
        self.message_burst = burst.max(1);
        self
    }

    /// Sends text frames instead of binary ones.
    pub fn text_frames(mut self) -> Self {
        self.frames = FrameKind::Text;
        self
    }
}
