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
use observe_tests::services::{peer_client, PeerServer, TourOptions, TourService};
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

const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
const BAGGAGE: &str = "tenant=acme,user.id=42";

/// Python client -> gateway (axum) -> backend (tonic) -> Python server. The Rust services keep
/// the Python trace, forward its tracestate unchanged and carry its baggage to the hop after
/// the backend; the receiver holds one connected trace from four processes.
#[test]
fn python_trace_continues_through_the_rust_services_with_tracestate_and_baggage() {
    // This crate's own binary, built for every test.
    let bin = env!("CARGO_BIN_EXE_tour-service");
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    // The Python server stands in for the tour's dependency: it answers `GET /stock/{sku}`
    // with 200 and reports the headers the backend sent.
    let Some(peer) = PeerServer::start(Some(&receiver.http_endpoint())) else {
        return;
    };
    let options = TourOptions {
        otlp_endpoint: Some(receiver.grpc_endpoint()),
        otlp_protocol: Some("grpc".into()),
        ..Default::default()
    };
    let mut backend = TourService::start(bin, "backend", Some(peer.addr()), &options)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut gateway = TourService::start(bin, "gateway", Some(backend.addr()), &options)
        .unwrap_or_else(|e| panic!("{e}"));

    let Some(sent) = peer_client(
        &format!("http://{}/orders/5", gateway.addr()),
        TRACESTATE,
        BAGGAGE,
        Some(&receiver.http_endpoint()),
    ) else {
        return;
    };
    assert_eq!(
        sent["status"],
        200,
        "{sent}\ngateway: {}\nbackend: {}",
        gateway.stderr(),
        backend.stderr()
    );
    assert_eq!(
        sent["tracestate"], TRACESTATE,
        "the Python SDK sent our tracestate"
    );
    let trace_id = sent["trace_id"].as_str().unwrap().to_string();
    let python_client_span = sent["span_id"].as_str().unwrap().to_string();
    let body: Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["trace_id"],
        trace_id.as_str(),
        "the gateway answers in the Python trace"
    );

    // What reached the hop after the backend: the same trace, the tracestate byte for byte,
    // the baggage.
    let seen = peer.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let hop = &seen[0];
    assert_eq!(hop["path"], "/stock/sku-5");
    assert_eq!(hop["parent"]["trace_id"], trace_id.as_str(), "{hop}");
    assert_eq!(hop["parent"]["sampled"], true, "{hop}");
    // Stop the services so their batch processors flush, then read the whole trace.
    gateway.stop();
    backend.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace = spans_of_trace(&receiver.spans(), &trace_id);
        let services: std::collections::BTreeSet<String> = trace
            .iter()
            .filter_map(|s| s["resource"]["service.name"].as_str().map(str::to_string))
            .collect();
        if services.len() >= 4 || std::time::Instant::now() > deadline {
            break trace;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let of = |service: &str, kind: &str| -> Vec<&Value> {
        trace
            .iter()
            .filter(|s| s["resource"]["service.name"] == service && s["kind"] == kind)
            .collect()
    };
    let py_client = of("python-peer-client", "client");
    let gw_server = of("tour-gateway", "server");
    let gw_client = of("tour-gateway", "client");
    let be_server = of("tour-backend", "server");
    let be_client = of("tour-backend", "client");
    let py_server = of("python-peer-server", "server");
    for (name, spans) in [
        ("python client", &py_client),
        ("gateway server", &gw_server),
        ("gateway client", &gw_client),
        ("backend server", &be_server),
        ("backend client", &be_client),
        ("python server", &py_server),
    ] {
        assert_eq!(spans.len(), 1, "one {name} span in the trace: {trace:#?}");
    }
    assert_eq!(py_client[0]["span_id"], python_client_span.as_str());
    assert_eq!(
        gw_server[0]["parent_span_id"], py_client[0]["span_id"],
        "the gateway continues the Python span"
    );
    assert_eq!(gw_client[0]["parent_span_id"], gw_server[0]["span_id"]);
    assert_eq!(be_server[0]["parent_span_id"], gw_client[0]["span_id"]);
    assert_eq!(be_client[0]["parent_span_id"], be_server[0]["span_id"]);
    assert_eq!(py_server[0]["parent_span_id"], be_client[0]["span_id"]);
    assert_eq!(hop["parent"]["span_id"], be_client[0]["span_id"]);
    // Last, so a failure here comes after the trace shape was checked.
    assert_eq!(
        hop["headers"]["tracestate"], TRACESTATE,
        "tracestate forwarded unchanged: {hop}"
    );
    assert_eq!(hop["parent"]["tracestate"], TRACESTATE, "{hop}");
    assert_eq!(
        hop["baggage"]["tenant"], "acme",
        "baggage reached the backend: {hop}"
    );
    assert_eq!(hop["baggage"]["user.id"], "42", "{hop}");
}
