//! One trace across hops: a message published from a route carries a `traceparent` naming
//! the route's `PUBLISH` span, and the handler's unit links to it (the default boundary) or
//! continues it (`child`).

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use jararaca::bus::{BusSettings, Delivery, Message, MessageController, MessageKind, UnitBus};
use jararaca::http::{Controller, HttpApp};
use jararaca::prelude::*;
use jararaca::trace::{AsyncBoundary, TraceContext, TraceLink};
use jararaca::{BoxError, Envelope, Microservice};
use tower::ServiceExt;

#[derive(serde::Serialize, serde::Deserialize)]
struct Linked;

impl Message for Linked {
    const TOPIC: &'static str = "trace.linked";
    const KIND: MessageKind = MessageKind::Event;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continued;

impl Message for Continued {
    const TOPIC: &'static str = "trace.continued";
    const KIND: MessageKind = MessageKind::Event;
    const TRACE_BOUNDARY: Option<AsyncBoundary> = Some(AsyncBoundary::Child);
}

/// What each handler saw: its message's `traceparent` and its unit's trace context.
#[derive(Default)]
struct Seen(Mutex<Vec<(&'static str, String, TraceContext)>>);

async fn record(name: &'static str, delivery: &Delivery) -> Result<(), BoxError> {
    let header = delivery
        .headers()
        .get("traceparent")
        .and_then(|v| v.as_text().map(|t| t.into_owned()))
        .ok_or("no traceparent on the message")?;
    let unit = jararaca::UnitOfWork::current()?;
    let context = unit.trace().ok_or("the handler's unit has no trace")?;
    assert_eq!(delivery.extensions().get::<TraceContext>(), Some(&context));
    jararaca::inject::<Seen>()
        .await?
        .0
        .lock()
        .unwrap()
        .push((name, header, context));
    Ok(())
}

async fn on_linked(_: Linked, delivery: Delivery) -> Result<(), BoxError> {
    record("linked", &delivery).await
}

async fn on_continued(_: Continued, delivery: Delivery) -> Result<(), BoxError> {
    record("continued", &delivery).await
}

async fn publish(bus: UnitBus) -> StatusCode {
    match (bus.publish(&Linked), bus.publish(&Continued)) {
        (Ok(()), Ok(())) => StatusCode::ACCEPTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::test]
async fn a_handler_links_to_or_continues_the_trace_of_the_route_that_published() {
    let app = Microservice::new("traced")
        .providers(|c| c.value(Seen::default()))
        .controller(Controller::new("Publish", "/publish").post("/", publish))
        .controller(
            MessageController::new("Traced")
                .handler::<Linked, _, _>("on_linked", on_linked)
                .handler::<Continued, _, _>("on_continued", on_continued),
        )
        .with(BusSettings::default())
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(app.worker().unwrap().run(async move {
        let _ = stopped.await;
    }));

    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .router()
        .oneshot(
            Request::post("/publish")
                .header("traceparent", caller)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let request_span = TraceLink::parse(response.headers()["traceparent"].to_str().unwrap())
        .expect("the response names the request's span");
    assert_eq!(request_span.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);

    let seen = app.container().get::<Seen>().unwrap();
    for _ in 0..500 {
        if seen.0.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort_by_key(|(name, ..)| *name);
    let [(_, continued_header, continued), (_, linked_header, linked)] = &seen[..] else {
        panic!("both handlers ran: {seen:?}");
    };

    // Each message names its own PUBLISH span, in the request's trace.
    let linked_publish = TraceLink::parse(linked_header).unwrap();
    let continued_publish = TraceLink::parse(continued_header).unwrap();
    for publish in [linked_publish, continued_publish] {
        assert_eq!(publish.trace_id, request_span.trace_id);
        assert_ne!(publish.span_id, request_span.span_id, "a span of its own");
    }
    assert_ne!(linked_publish.span_id, continued_publish.span_id);

    // `link`: a new trace; `child`: the publisher's trace, under its PUBLISH span.
    assert_ne!(linked.trace_id, request_span.trace_id);
    assert_eq!(linked.parent_span_id, None);
    assert_eq!(continued.trace_id, request_span.trace_id);
    assert_eq!(continued.parent_span_id, Some(continued_publish.span_id));
}
