//! Logs and traces: a `tracing-subscriber` for logs (`RUST_LOG`, text or JSON) and, with the
//! `otel` feature, an OpenTelemetry layer exporting spans over OTLP/HTTP.

use std::fmt;

use jararaca_di::EnvVar;
use jararaca_di::trace::AsyncBoundary;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The variables logging and tracing read, listed in the role commands' help.
pub(crate) const ENVIRONMENT: &[EnvVar] = &[
    EnvVar::new(
        "RUST_LOG",
        "Log filter: `info` (the default), `warn`, `info,jararaca_bus=debug`, …",
    ),
    EnvVar::new(
        AsyncBoundary::ENV,
        "How handling a message joins the trace of the unit that published it: link (the default) or child",
    ),
    #[cfg(feature = "otel")]
    EnvVar::new(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP/HTTP collector to export spans to (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT too); unset: no export",
    ),
    #[cfg(feature = "otel")]
    EnvVar::new(
        "OTEL_SERVICE_NAME",
        "The service name on exported spans (default: the service's name)",
    ),
];

/// What [`init`] installed; [`Telemetry::shutdown`] flushes spans not yet exported.
#[must_use = "call `shutdown` before exiting so pending spans are exported"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Telemetry");
        #[cfg(feature = "otel")]
        d.field("exporting", &self.provider.is_some());
        d.finish()
    }
}

impl Telemetry {
    /// Exports what is still buffered and stops exporting.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("OpenTelemetry shutdown: {error}");
        }
    }
}

/// Installs the global subscriber: logs filtered by `RUST_LOG` (default `info`) in `format`
/// (`json` or text) on standard error. Does nothing if a subscriber is installed already.
///
/// In text, a field's value has its control characters escaped (a newline is written `\n`,
/// an ANSI escape `\u{1b}`), so user input logged as a field cannot forge a line or drive the
/// terminal, and a value longer than 2048 characters is cut; colours are used only when
/// standard error is a terminal.
///
/// With the `otel` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported
/// over OTLP/HTTP under `service_name` (unless `OTEL_SERVICE_NAME` says otherwise): every
/// `info` span, plus the request spans of [`TraceLayer`](crate::http::TraceLayer), which
/// continue the caller's `traceparent`.
pub fn init(format: Option<&str>, service_name: &str) -> Telemetry {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        // JSON strings escape control characters already.
        Some("json") => fmt.json().with_filter(filter()).boxed(),
        _ => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(crate::log_fields::SafeFields)
            .with_filter(filter())
            .boxed(),
    };
    #[cfg(feature = "otel")]
    {
        let (traces, provider) = match otel::layer(service_name) {
            Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
            Ok(None) => (None, None),
            Err(error) => {
                eprintln!("OpenTelemetry export disabled: {error}");
                (None, None)
            }
        };
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init();
        Telemetry { provider }
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = service_name;
        let _ = tracing_subscriber::registry().with(logs).try_init();
        Telemetry {}
    }
}

#[cfg(feature = "otel")]
pub(crate) mod otel {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Subscriber;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::registry::LookupSpan;

    use crate::BoxError;

    type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

    /// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` asks for one.
    pub(crate) fn layer<S>(
        service_name: &str,
    ) -> Result<Option<(BoxedLayer<S>, SdkTracerProvider)>, BoxError>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(name).build())
            .build();
        Ok(Some((export_layer(&provider), provider)))
    }

    /// A layer exporting `info` spans, the request spans and the bus's publish and delivery
    /// spans through `provider`.
    pub(crate) fn export_layer<S>(provider: &SdkTracerProvider) -> BoxedLayer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = provider.tracer("jararaca");
        let targets = Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("jararaca_http", tracing::Level::DEBUG)
            .with_target("jararaca_bus::trace", tracing::Level::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(targets)
            .boxed()
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use crate::Microservice;
    use crate::http::{Controller, HttpApp, Json};

    async fn hello() -> Json<String> {
        Json("hello".into())
    }

    #[tokio::test]
    async fn request_spans_are_exported_as_children_of_the_callers_span() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::otel::export_layer(&provider));
        let _guard = tracing::subscriber::set_default(subscriber);

        let app = Microservice::new("t")
            .controller(Controller::new("Hello", "/hello").get("/", hello))
            .build()
            .await
            .unwrap();
        let request = http::Request::get("/hello")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.router().oneshot(request).await.unwrap();
        let echoed = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        provider.force_flush().unwrap();

        let spans = exporter.get_finished_spans().unwrap();
        let span = spans
            .iter()
            .find(|s| s.name == "http.request")
            .expect("the request span is exported");
        assert_eq!(
            span.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            span.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(
            echoed,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                span.span_context.span_id()
            ),
            "the echoed traceparent names the exported span"
        );
    }
}

#[cfg(all(test, feature = "otel", feature = "bus"))]
mod bus_tests {
    use std::time::Duration;

    use opentelemetry::trace::SpanId;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use crate::Microservice;
    use crate::bus::{BusSettings, Delivery, Message, MessageController, MessageKind, UnitBus};
    use crate::http::{Controller, HttpApp};
    use crate::prelude::BusApp;
    use crate::trace::AsyncBoundary;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Linked;

    impl Message for Linked {
        const TOPIC: &'static str = "otel.linked";
        const KIND: MessageKind = MessageKind::Event;
        const TRACE_BOUNDARY: Option<AsyncBoundary> = Some(AsyncBoundary::Link);
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Continued;

    impl Message for Continued {
        const TOPIC: &'static str = "otel.continued";
        const KIND: MessageKind = MessageKind::Event;
        const TRACE_BOUNDARY: Option<AsyncBoundary> = Some(AsyncBoundary::Child);
    }

    async fn publish(bus: UnitBus) -> http::StatusCode {
        match (bus.publish(&Linked), bus.publish(&Continued)) {
            (Ok(()), Ok(())) => http::StatusCode::ACCEPTED,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    async fn handled(_: Linked, _: Delivery) -> Result<(), crate::BoxError> {
        Ok(())
    }

    async fn continued(_: Continued, _: Delivery) -> Result<(), crate::BoxError> {
        Ok(())
    }

    fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no `{name}` span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    }

    #[tokio::test]
    async fn request_publish_and_handler_spans_are_tied_together() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::otel::export_layer(&provider));
        let _guard = tracing::subscriber::set_default(subscriber);

        let app = Microservice::new("t")
            .controller(Controller::new("Publish", "/publish").post("/", publish))
            .controller(
                MessageController::new("Traced")
                    .handler::<Linked, _, _>("handled", handled)
                    .handler::<Continued, _, _>("continued", continued),
            )
            .with(BusSettings::default())
            .build()
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(app.worker().unwrap().run(async move {
            let _ = stopped.await;
        }));
        let request = http::Request::post("/publish")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::ACCEPTED);
        let mut spans = Vec::new();
        for _ in 0..200 {
            provider.force_flush().unwrap();
            spans = exporter.get_finished_spans().unwrap();
            if spans
                .iter()
                .filter(|s| s.name.starts_with("CONSUME"))
                .count()
                == 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
        worker.await.unwrap().unwrap();

        let request = named(&spans, "http.request");
        let linked_publish = named(&spans, "PUBLISH otel.linked");
        let continued_publish = named(&spans, "PUBLISH otel.continued");
        for publish in [linked_publish, continued_publish] {
            assert_eq!(
                publish.span_context.trace_id(),
                request.span_context.trace_id()
            );
            assert_eq!(publish.parent_span_id, request.span_context.span_id());
        }
        let linked = named(&spans, "CONSUME otel.linked");
        assert_ne!(
            linked.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(linked.parent_span_id, SpanId::INVALID);
        assert!(
            linked.links.iter().any(|l| l.span_context.trace_id()
                == linked_publish.span_context.trace_id()
                && l.span_context.span_id() == linked_publish.span_context.span_id()),
            "the handler's span links to the publish span: {:?}",
            linked.links
        );
        let continued = named(&spans, "CONSUME otel.continued");
        assert_eq!(
            continued.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(
            continued.parent_span_id,
            continued_publish.span_context.span_id()
        );
    }
}
