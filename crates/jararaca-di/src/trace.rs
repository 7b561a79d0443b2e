//! W3C trace context shared by every transport: the position of a unit of work in its trace,
//! carried from an HTTP request or a delivered message into its unit of work, onto the
//! messages the unit publishes, and across the bus into the handler that receives them.
//!
//! The transports put a [`TraceContext`] in the unit's extensions before the
//! [`UnitOfWorkLayer`](crate::UnitOfWorkLayer) runs; the unit keeps it
//! ([`UnitOfWork::trace`](crate::UnitOfWork::trace)) so that what it publishes continues the
//! trace. With the `otel` feature, [`TraceContext::export`] ties a `tracing` span to the
//! exported OpenTelemetry span, so the ids in the headers are the ones the collector receives.

use tracing::Span;

/// The trace position of one span: its trace, its own id, and its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The 128-bit trace id.
    pub trace_id: u128,
    /// The id of this span.
    pub span_id: u64,
    /// The parent span, when this span continues another.
    pub parent_span_id: Option<u64>,
    /// The sampling decision (sampled unless the caller said otherwise).
    pub sampled: bool,
}

/// A span in another process that a span links to rather than continues (a message
/// boundary in the reference's default `link` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLink {
    /// The linked span's trace.
    pub trace_id: u128,
    /// The linked span.
    pub span_id: u64,
    /// Its sampling decision.
    pub sampled: bool,
}

/// How a message's handler relates to the span that published it
/// (`JARARACA_OBSERVABILITY_TRACE_ASYNC_BOUNDARY`, as the reference reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsyncBoundary {
    /// A new trace whose first span links to the publisher (the default).
    #[default]
    Link,
    /// The handler's span is a child of the publisher's, in the same trace.
    Child,
}

impl AsyncBoundary {
    /// The environment variable that chooses it.
    pub const ENV: &'static str = "JARARACA_OBSERVABILITY_TRACE_ASYNC_BOUNDARY";

    /// From [`AsyncBoundary::ENV`]: `child`, else `link`.
    pub fn from_env() -> Self {
        match std::env::var(Self::ENV) {
            Ok(value) if value.trim().eq_ignore_ascii_case("child") => Self::Child,
            _ => Self::Link,
        }
    }
}

impl TraceContext {
    /// A context continuing `traceparent` (`00-<trace>-<parent>-<flags>`) when it is valid,
    /// otherwise a new trace.
    pub fn continue_from(traceparent: Option<&str>) -> Self {
        Self::continue_with(traceparent, &mut fastrand::Rng::new())
    }

    /// Like [`TraceContext::continue_from`], drawing the new ids from `rng`.
    pub fn continue_with(traceparent: Option<&str>, rng: &mut fastrand::Rng) -> Self {
        match traceparent.and_then(TraceLink::parse) {
            Some(parent) => Self {
                trace_id: parent.trace_id,
                span_id: rng.u64(1..),
                parent_span_id: Some(parent.span_id),
                sampled: parent.sampled,
            },
            None => Self::root(rng),
        }
    }

    /// A new trace.
    pub fn root(rng: &mut fastrand::Rng) -> Self {
        Self {
            trace_id: u128::from(rng.u64(1..)) << 64 | u128::from(rng.u64(..)),
            span_id: rng.u64(1..),
            parent_span_id: None,
            sampled: true,
        }
    }

    /// A new span under this one, in the same trace.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: fastrand::u64(1..),
            parent_span_id: Some(self.span_id),
            sampled: self.sampled,
        }
    }

    /// This span as a link target.
    pub fn as_link(&self) -> TraceLink {
        TraceLink {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled,
        }
    }

    /// The `traceparent` value naming this span.
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }

    /// The same as bytes, without allocating.
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        out[3..35].copy_from_slice(&hex::<16, 32>(self.trace_id.to_be_bytes()));
        out[36..52].copy_from_slice(&hex::<8, 16>(self.span_id.to_be_bytes()));
        out[53..].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        out
    }

    /// Ties `span` to this context for export: with the `otel` feature and an OpenTelemetry
    /// layer installed, the exported span gets this context's parent and the returned context
    /// the exported span's ids (so headers name the span the collector receives); otherwise
    /// the context is returned as it is.
    pub fn export(self, span: &Span) -> Self {
        #[cfg(feature = "otel")]
        {
            otel::export(span, self, None)
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = span;
            self
        }
    }

    /// Like [`TraceContext::export`], for a span that starts a trace linked to `link`.
    pub fn export_linked(self, span: &Span, link: TraceLink) -> Self {
        #[cfg(feature = "otel")]
        {
            otel::export(span, self, Some(link))
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = (span, link);
            self
        }
    }
}

impl TraceLink {
    /// Reads a `traceparent` value; `None` when it is not a valid one.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2
            || version == "ff"
            || trace.len() != 32
            || parent.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(parent, 16).ok().filter(|p| *p != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// Lower-case hex digits of `bytes` (`M` = 2 × `N`).
pub fn hex<const N: usize, const M: usize>(bytes: [u8; N]) -> [u8; M] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; M];
    // Every `traceparent` and request id goes through here: four bytes at a time, without a
    // table lookup or a branch per digit.
    let words = bytes.chunks_exact(4);
    let tail = words.remainder();
    let mut digits = out.chunks_exact_mut(8);
    for (word, digits) in words.zip(&mut digits) {
        let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        digits.copy_from_slice(&hex_word(word));
    }
    let done = 2 * (N - tail.len());
    for (i, byte) in tail.iter().enumerate() {
        out[done + 2 * i] = DIGITS[usize::from(byte >> 4)];
        out[done + 2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}

/// The eight lower-case hex digits of `word`, most significant first.
fn hex_word(word: u32) -> [u8; 8] {
    // Spread the nibbles one per byte, the most significant in the highest byte.
    let mut nibbles = u64::from(word);
    nibbles = (nibbles | nibbles << 16) & 0x0000_ffff_0000_ffff;
    nibbles = (nibbles | nibbles << 8) & 0x00ff_00ff_00ff_00ff;
    nibbles = (nibbles | nibbles << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10..=15, which then moves from `0`+10 up to `a`.
    let letters = ((nibbles + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (nibbles + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::{TraceContext, TraceLink};

    fn remote(trace_id: u128, span_id: u64, sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(span_id),
            flags,
            true,
            TraceState::default(),
        )
    }

    /// Parents the exported span on the context's parent (or links it), and takes the
    /// exported span's ids.
    pub(super) fn export(
        span: &Span,
        mut context: TraceContext,
        link: Option<TraceLink>,
    ) -> TraceContext {
        if span.is_disabled() {
            return context;
        }
        if let Some(parent) = context.parent_span_id {
            let parent = remote(context.trace_id, parent, context.sampled);
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
        }
        if let Some(link) = link {
            span.add_link(remote(link.trace_id, link.span_id, link.sampled));
        }
        let exported = span.context().span().span_context().clone();
        if exported.is_valid() {
            context.trace_id = u128::from_be_bytes(exported.trace_id().to_bytes());
            context.span_id = u64::from_be_bytes(exported.span_id().to_bytes());
        }
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_traceparent_and_starts_a_trace_otherwise() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::continue_from(Some(incoming));
        assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.parent_span_id, Some(0x00f067aa0ba902b7));
        assert!(ctx.sampled);
        let out = ctx.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(!out.contains("00f067aa0ba902b7"), "a new span id: {out}");

        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            let fresh = TraceContext::continue_from(Some(bad));
            assert_eq!(fresh.parent_span_id, None, "{bad}");
            assert_ne!(fresh.trace_id, 0);
        }
        assert_eq!(
            TraceLink::parse(&TraceContext::continue_from(None).traceparent()).map(|l| l.sampled),
            Some(true)
        );
    }

    #[test]
    fn hex_matches_the_formatter_for_every_nibble_and_length() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let wide = rng.u128(..);
            let expected = format!("{wide:032x}");
            assert_eq!(hex::<16, 32>(wide.to_be_bytes()), expected.as_bytes());
            let narrow = rng.u64(..);
            assert_eq!(
                hex::<8, 16>(narrow.to_be_bytes()),
                format!("{narrow:016x}").as_bytes()
            );
            // Lengths that are not whole words take the byte-wise tail.
            let odd: [u8; 7] = std::array::from_fn(|_| rng.u8(..));
            let expected: String = odd.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex::<7, 14>(odd), expected.as_bytes());
        }
        assert_eq!(&hex::<4, 8>([0x01, 0x23, 0xab, 0xff]), b"0123abff");
    }

    #[test]
    fn a_child_stays_in_the_trace_under_its_parent() {
        let parent = TraceContext::continue_from(None);
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.parent_span_id, Some(parent.span_id));
        assert_ne!(child.span_id, parent.span_id);
        let link = TraceLink::parse(&child.traceparent()).unwrap();
        assert_eq!(link, child.as_link());
    }
}
