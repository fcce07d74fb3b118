//! Spans exported by observe reach a real OTLP receiver over gRPC and HTTP/protobuf, with the
//! resource attributes, parent/child links (local and remote), and the unsampled-request filter.

use std::sync::Mutex;
use std::time::Duration;

use observe_core::config::{BatchConfig, Config, OtlpCompression, OtlpProtocol};
use observe_core::context::RequestContext;
use observe_core::otel::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use observe_core::otel::opentelemetry::Context;
use observe_core::trace;
use observe_tests::otlp::OtlpReceiver;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

/// trace::install is process-wide: one test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn fast_batch() -> BatchConfig {
    let mut b = BatchConfig::default();
    b.schedule_delay = Duration::from_millis(100);
    b
}

fn config(endpoint: String, protocol: OtlpProtocol) -> Config {
    Config::default()
        .service_name("trace-export-test")
        .service_version("1.2.3")
        .deployment_environment("test")
        .resource_attribute("team", "observability")
        .otlp_endpoint(endpoint)
        .otlp_protocol(protocol)
        .batch(fast_batch())
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// Parent and child spans, made both directly on the tracer and through `tracing` with the
/// otel layer; returns nothing, the receiver is the witness.
fn emit_spans() {
    let tracer = trace::tracer().expect("tracer installed");
    tracer.in_span("parent", |cx| {
        let _child = tracer.start_with_context("child", &cx);
    });
    let subscriber = tracing_subscriber::registry().with(trace::otel_layer());
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("user_outer");
        let _e = outer.enter();
        tracing::info_span!("user_inner").in_scope(|| {});
    });
}

fn check_export(receiver: &OtlpReceiver, protocol: OtlpProtocol, transport: &str) {
    let mut cfg = config(
        match protocol {
            OtlpProtocol::Grpc => receiver.grpc_endpoint(),
            OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
        },
        protocol,
    );
    cfg = cfg.otlp_compression(OtlpCompression::Gzip);
    let guard = trace::install(&cfg).expect("install");
    emit_spans();
    let report = guard.shutdown(Duration::from_secs(10));
    assert_eq!(report.spans_exported, 4, "{report:?}");
    assert_eq!(report.spans_dropped, 0);
    assert!(!report.timed_out);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for s in &spans {
        assert_eq!(s["transport"], transport);
        let r = &s["resource"];
        assert_eq!(r["service.name"], "trace-export-test");
        assert_eq!(r["service.version"], "1.2.3");
        assert_eq!(r["deployment.environment.name"], "test");
        assert_eq!(r["team"], "observability");
        assert_eq!(r["telemetry.sdk.language"], "rust");
        assert_eq!(r["process.pid"], u64::from(std::process::id()));
        assert!(r["host.name"].as_str().is_some_and(|h| !h.is_empty()));
        assert_eq!(r["service.instance.id"].as_str().map(str::len), Some(36));
    }
    let parent = by_name(&spans, "parent");
    let child = by_name(&spans, "child");
    assert_eq!(child["trace_id"], parent["trace_id"]);
    assert_eq!(child["parent_span_id"], parent["span_id"]);
    assert_eq!(parent["parent_span_id"], "");
    let outer = by_name(&spans, "user_outer");
    let inner = by_name(&spans, "user_inner");
    assert_eq!(inner["trace_id"], outer["trace_id"]);
    assert_eq!(inner["parent_span_id"], outer["span_id"]);
}

#[test]
fn spans_reach_the_receiver_over_grpc_with_resource() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    check_export(&receiver, OtlpProtocol::Grpc, "grpc");
}

#[test]
fn spans_reach_the_receiver_over_http_with_resource() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    check_export(&receiver, OtlpProtocol::HttpProtobuf, "http");
}

#[test]
fn child_of_a_remote_parent_keeps_its_trace() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let guard = trace::install(&config(receiver.grpc_endpoint(), OtlpProtocol::Grpc)).unwrap();
    // As if extracted from `traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(remote);
    let tracer = trace::tracer().unwrap();
    let _ = tracer.start_with_context("server", &cx);
    // An unsampled remote parent: parent-based sampling drops the span.
    let unsampled = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let _ = tracer.start_with_context(
        "not-sampled",
        &Context::new().with_remote_span_context(unsampled),
    );
    let report = guard.shutdown(Duration::from_secs(10));
    assert_eq!(report.spans_exported, 1);
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0]["name"], "server");
    assert_eq!(spans[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(spans[0]["parent_span_id"], "00f067aa0ba902b7");
}

#[test]
fn user_spans_in_unsampled_requests_are_not_exported() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let guard = trace::install(&config(receiver.grpc_endpoint(), OtlpProtocol::Grpc)).unwrap();
    let subscriber = tracing_subscriber::registry().with(trace::otel_layer());
    tracing::subscriber::with_default(subscriber, || {
        RequestContext::new_root(false).in_scope(|| {
            tracing::info_span!("inside_unsampled").in_scope(|| {
                tracing::info_span!("nested_unsampled").in_scope(|| {});
            });
        });
        RequestContext::new_root(true).in_scope(|| {
            tracing::info_span!("inside_sampled").in_scope(|| {});
        });
        tracing::info_span!("outside_any_request").in_scope(|| {});
    });
    let report = guard.shutdown(Duration::from_secs(10));
    let spans = receiver.spans();
    let mut names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["inside_sampled", "outside_any_request"]);
    assert_eq!(report.spans_exported, 2);
}
