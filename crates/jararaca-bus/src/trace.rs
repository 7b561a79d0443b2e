//! One trace across the bus: a `PUBLISH <topic>` producer span for each message a traced
//! unit publishes, its `traceparent` in the message's headers, and a consumer span for each
//! delivery that links to the publisher (the reference's default `link` boundary) or
//! continues its trace (`child`), chosen by `JARARACA_OBSERVABILITY_TRACE_ASYNC_BOUNDARY`.

use jararaca_di::trace::{AsyncBoundary, TraceContext, TraceLink};
use tracing::{Span, field};

use crate::headers::{HeaderValue, Headers};

/// The W3C trace-context header, in AMQP headers as in HTTP ones.
pub const TRACEPARENT: &str = "traceparent";

/// Opens the producer span of a message published from a unit at `parent`, and writes its
/// `traceparent` into `headers` (replacing one copied from a handled message).
pub(crate) fn publish(parent: TraceContext, topic: &str, headers: &mut Headers) {
    let span = tracing::debug_span!(
        "PUBLISH",
        otel.name = %format_args!("PUBLISH {topic}"),
        otel.kind = "producer",
        messaging.destination.name = %topic,
        trace_id = field::Empty,
        span_id = field::Empty,
        parent_span_id = %format_args!("{:016x}", parent.span_id),
    );
    let context = parent.child().export(&span);
    record(&span, &context);
    headers.insert(
        TRACEPARENT.to_string(),
        HeaderValue::String(context.traceparent()),
    );
}

/// The consumer span of a delivery from `queue` with `headers`, and the trace context its
/// unit of work continues.
pub(crate) fn deliver(
    boundary: AsyncBoundary,
    topic: &str,
    queue: &str,
    headers: &Headers,
) -> (Span, TraceContext) {
    let publisher = match headers.get(TRACEPARENT) {
        Some(HeaderValue::String(value)) => TraceLink::parse(value),
        _ => None,
    };
    let span = tracing::debug_span!(
        "bus.message",
        otel.name = %format_args!("CONSUME {topic}"),
        otel.kind = "consumer",
        messaging.destination.name = %queue,
        trace_id = field::Empty,
        span_id = field::Empty,
        parent_span_id = field::Empty,
        link.trace_id = field::Empty,
        link.span_id = field::Empty,
    );
    let mut rng = fastrand::Rng::new();
    let context = match (publisher, boundary) {
        (Some(link), AsyncBoundary::Link) => {
            if !span.is_disabled() {
                span.record(
                    "link.trace_id",
                    field::display(format_args!("{:032x}", link.trace_id)),
                );
                span.record(
                    "link.span_id",
                    field::display(format_args!("{:016x}", link.span_id)),
                );
            }
            let root = TraceContext {
                sampled: link.sampled,
                ..TraceContext::root(&mut rng)
            };
            root.export_linked(&span, link)
        }
        (Some(parent), AsyncBoundary::Child) => TraceContext {
            trace_id: parent.trace_id,
            span_id: rng.u64(1..),
            parent_span_id: Some(parent.span_id),
            sampled: parent.sampled,
        }
        .export(&span),
        (None, _) => TraceContext::root(&mut rng).export(&span),
    };
    record(&span, &context);
    (span, context)
}

fn record(span: &Span, context: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    span.record(
        "trace_id",
        field::display(format_args!("{:032x}", context.trace_id)),
    );
    span.record(
        "span_id",
        field::display(format_args!("{:016x}", context.span_id)),
    );
    if let Some(parent) = context.parent_span_id {
        span.record(
            "parent_span_id",
            field::display(format_args!("{parent:016x}")),
        );
    }
}
