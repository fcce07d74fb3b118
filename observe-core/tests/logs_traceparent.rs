//! Issue "Foundation" acceptance: the JSON log output of a real subscriber, inside a span whose
//! remote parent comes from an incoming `traceparent` header, carries that trace's ids — both
//! the way the server layer does it (a `RequestContext` from the parsed header, sampled or not)
//! and the OpenTelemetry way (a `tracing` span with the extracted context as parent).

use std::io;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};
use observe_core::context::{RequestContext, SpanId};
use observe_core::logs::JsonLayer;
use observe_core::propagation::{self, W3cPropagator};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const HEADER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(HEADER));
    h
}

#[test]
fn request_context_from_traceparent_header_is_on_every_line_sampled_or_not() {
    let out = Capture::default();
    let w = out.clone();
    let json = JsonLayer::builder()
        .service_name("checkout")
        .writer(move || w.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(json);

    let extracted = propagation::extract(&headers());
    let parent = extracted.traceparent.expect("valid traceparent");
    // This service's span for the request: same trace, a new span id (what the layer does).
    let cx = RequestContext::new(parent.trace_id, SpanId::random(), parent.flags);
    let unsampled = RequestContext::new(
        parent.trace_id,
        SpanId::random(),
        parent.flags.with_sampled(false),
    );

    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("before the request");
        {
            let _entered = cx.enter();
            let span = tracing::info_span!("handler", user = "u-42");
            span.in_scope(|| tracing::info!(order = 7, "inside the request"));
        }
        {
            let _entered = unsampled.enter();
            tracing::warn!("unsampled request");
        }
        tracing::info!("after the request");
    });

    let lines = out.lines();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].get("trace_id").is_none(),
        "no ids outside a request"
    );
    assert_eq!(lines[1]["trace_id"], TRACE_ID);
    assert_eq!(lines[1]["span_id"], cx.span_id.to_string());
    assert_ne!(lines[1]["span_id"], PARENT_ID, "our span, not the caller's");
    assert_eq!(lines[1]["span"]["name"], "handler");
    assert_eq!(lines[1]["service.name"], "checkout");
    assert_eq!(
        lines[2]["trace_id"], TRACE_ID,
        "unsampled requests are correlated too"
    );
    assert_eq!(lines[2]["span_id"], unsampled.span_id.to_string());
    assert!(lines[3].get("trace_id").is_none());
}

#[test]
fn tracing_span_with_remote_parent_from_header_logs_the_remote_trace_id() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let w = out.clone();
    let json = JsonLayer::builder().writer(move || w.clone()).build();
    let subscriber = tracing_subscriber::registry().with(otel).with(json);

    struct Carrier(HeaderMap);
    impl opentelemetry::propagation::Extractor for Carrier {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let remote = W3cPropagator.extract(&Carrier(headers()));
    assert_eq!(
        remote.span().span_context().trace_id().to_string(),
        TRACE_ID
    );

    let mut span_id = String::new();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("GET /users/{id}");
        let _ = span.set_parent(remote);
        span.in_scope(|| tracing::info!("handling"));
        span_id = span.context().span().span_context().span_id().to_string();
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["trace_id"], TRACE_ID);
    assert_eq!(lines[0]["span_id"], span_id.as_str());
    assert_ne!(span_id, PARENT_ID);
}
