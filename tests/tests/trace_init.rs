//! `observe_core::init!`: one call installs the propagator, tracer provider and subscriber;
//! the calling crate's name and version become the service's; a second init is an error.
//! (One test: the global subscriber can be set once per process.)

use std::time::Duration;

use observe_core::config::{BatchConfig, Config};
use observe_core::init::InitError;
use observe_tests::otlp::OtlpReceiver;

#[test]
fn init_macro_installs_everything_once() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let mut batch = BatchConfig::default();
    batch.schedule_delay = Duration::from_millis(100);
    let config = Config::default()
        .otlp_endpoint(receiver.grpc_endpoint())
        .batch(batch);
    let guard = observe_core::init!(config).expect("first init");
    assert!(matches!(
        observe_core::init!(),
        Err(InitError::AlreadyInitialized)
    ));

    // The global subscriber carries the otel layer: a plain `tracing` span is exported.
    tracing::info_span!("handled", user.id = 7).in_scope(|| {
        tracing::info!("inside");
    });
    // The global propagator is W3C trace context.
    let mut carrier = std::collections::HashMap::new();
    observe_core::otel::opentelemetry::global::get_text_map_propagator(|p| {
        use observe_core::otel::opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = observe_core::otel::opentelemetry::Context::new().with_remote_span_context(sc);
        p.inject_context(&cx, &mut carrier);
    });
    assert_eq!(
        carrier.get("traceparent").map(String::as_str),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );

    let report = guard
        .shutdown(Duration::from_secs(10))
        .expect("flushed in time");
    assert_eq!(report.spans_exported, 1);
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0]["name"], "handled");
    assert_eq!(spans[0]["attributes"]["user.id"], 7);
    assert_eq!(spans[0]["resource"]["service.name"], "observe-tests");
    assert_eq!(
        spans[0]["resource"]["service.version"],
        env!("CARGO_PKG_VERSION")
    );
    // After shutdown, the hot path sees no tracer, and init still refuses to run twice.
    assert!(observe_core::trace::tracer().is_none());
    assert!(matches!(
        observe_core::init::init(Config::default()),
        Err(InitError::AlreadyInitialized)
    ));
}
