//! Issue #8, scenario 3: W3C trace context crosses the language boundary both ways.
//!
//! - Python -> Rust: the Python OpenTelemetry SDK client calls the tour gateway with its own
//!   traceparent, tracestate and baggage; the spans the Rust services export continue that
//!   trace, tracestate is forwarded unchanged, and the baggage reaches the backend.
//! - Rust -> Python: observe's `ClientLayer` over hyper-util calls a Python
//!   OpenTelemetry-instrumented HTTP server, which sees the Rust client span as its parent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use observe_core::config::{BatchConfig, Config, OtlpProtocol};
use observe_core::context::{FutureExt, RequestContext};
use observe_core::http::ClientLayer;
use observe_core::metrics::{Format, Metrics};
use observe_core::trace;
use observe_tests::otlp::OtlpReceiver;
use observe_tests::services::PeerServer;
use serde_json::Value;
use tower::ServiceExt;

fn fast_batch() -> BatchConfig {
    let mut b = BatchConfig::default();
    b.schedule_delay = Duration::from_millis(100);
    b
}

fn spans_of_trace(spans: &[Value], trace_id: &str) -> Vec<Value> {
    spans
        .iter()
        .filter(|s| s["trace_id"] == trace_id)
        .cloned()
        .collect()
}

/// Rust -> Python, sampled and unsampled, through a real hyper-util client and a real Python
/// OpenTelemetry SDK on the other side; the OTLP receiver holds both sides' spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_sees_the_rust_client_span_as_its_parent() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let Some(peer) = PeerServer::start(Some(&receiver.http_endpoint())) else {
        return;
    };
    let guard = trace::install(
        &Config::default()
            .service_name("e2e-rust-client")
            .otlp_endpoint(receiver.grpc_endpoint())
            .otlp_protocol(OtlpProtocol::Grpc)
            .batch(fast_batch()),
    )
    .expect("install the tracer");
    let metrics = Metrics::new(Default::default()).leak();
    let hyper_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
    let client = tower::ServiceBuilder::new()
        .layer(ClientLayer::new().metrics(metrics))
        .service(hyper_client);

    let call = |cx: RequestContext, path: &'static str| {
        let client = client.clone();
        let uri = format!("http://{}{path}", peer.addr());
        async move {
            let request = http::Request::get(uri)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = tokio::time::timeout(Duration::from_secs(10), client.oneshot(request))
                .await
                .expect("the Python server answers within 10 s")
                .expect("the call succeeds");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&body).expect("JSON"),
            )
        }
        .with_context(cx)
    };

    let sampled = RequestContext::new_root(true);
    let (status, seen) = call(sampled, "/sampled").await;
    assert_eq!(status, 200, "{seen}");
    let unsampled = RequestContext::new_root(false);
    let (status, seen_unsampled) = call(unsampled, "/status/503").await;
    assert_eq!(status, 503, "{seen_unsampled}");

    let report = guard.shutdown(Duration::from_secs(10));
    assert_eq!(report.spans_dropped, 0, "{report:?}");

    // What the Python SDK's propagator extracted: the Rust trace, the Rust client span.
    let trace_hex = sampled.trace_id.to_string();
    let parent = &seen["parent"];
    assert_eq!(parent["trace_id"], trace_hex.as_str(), "{seen}");
    assert_eq!(parent["sampled"], true, "{seen}");
    assert_eq!(parent["is_remote"], true, "{seen}");
    assert_ne!(
        parent["span_id"],
        sampled.span_id.to_string().as_str(),
        "a sampled call gets its own client span, which is the Python side's parent: {seen}"
    );

    // Both sides' spans, as the receiver got them.
    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    let trace = spans_of_trace(&spans, &trace_hex);
    assert_eq!(
        trace.len(),
        2,
        "one Rust client span + one Python server span: {spans:#?}"
    );
    let rust = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "e2e-rust-client")
        .unwrap_or_else(|| panic!("no Rust span in {trace:#?}"));
    let python = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "python-peer-server")
        .unwrap_or_else(|| panic!("no Python span in {trace:#?}"));
    assert_eq!(rust["kind"], "client");
    assert_eq!(rust["parent_span_id"], sampled.span_id.to_string().as_str());
    assert_eq!(rust["attributes"]["http.response.status_code"], 200);
    assert_eq!(python["kind"], "server");
    assert_eq!(python["span_id"], seen["span"]["span_id"]);
    assert_eq!(
        python["parent_span_id"], rust["span_id"],
        "the Python server span is a child of the Rust client span"
    );
    assert_eq!(parent["span_id"], rust["span_id"]);

    // Unsampled: the ids still propagate (log correlation on the Python side), with the
    // sampled flag off, and nobody exports a span for it.
    let parent = &seen_unsampled["parent"];
    assert_eq!(parent["trace_id"], unsampled.trace_id.to_string().as_str());
    assert_eq!(parent["span_id"], unsampled.span_id.to_string().as_str());
    assert_eq!(parent["sampled"], false, "{seen_unsampled}");
    assert!(
        spans_of_trace(&receiver.spans(), &unsampled.trace_id.to_string()).is_empty(),
        "an unsampled trace is exported by neither side"
    );
    assert_eq!(peer.requests().len(), 2, "{}", peer.stderr());

    // The client calls are measured, with the status each one got.
    let mut text = Vec::new();
    metrics.encode(Format::PrometheusText, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    for status in ["200", "503"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("http_client_request_duration_seconds_count{")
                    && l.contains(&format!("http_response_status_code=\"{status}\""))
            })
            .unwrap_or_else(|| panic!("no client count for {status} in\n{text}"));
        assert!(line.ends_with(" 1"), "{line}");
    }
}
