//! observe-tonic over real loopback: a tonic server and tonic clients, both instrumented.
//!
//! What is proven here: trace context continues client → server → server (and the log events
//! emitted in each handler carry the same trace id); the gRPC status recorded in
//! `rpc_{server,client}_call_duration_seconds` is the one the call really ended with — from the
//! trailers after a unary reply or a stream, from the headers of a trailers-only error —, a
//! call the client drops mid-stream is `CANCELLED` on both sides, active gauges return to 0,
//! and calls to a service or method the server does not have collapse to `_OTHER`.
//!
//! Each test gets its own `Metrics` instance, so tests running in parallel never see each
//! other's series.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use observe_core::context::{FutureExt, RequestContext, TraceId};
use observe_core::metrics::{Format, Metrics, MetricsConfig};
use observe_core::otel::opentelemetry::trace::{
    SpanKind, Status as SpanStatus, TracerProvider as _,
};
use observe_core::otel::opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData};
use observe_core::trace::collector::SpanStore;
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};

mod pb {
    tonic::include_proto!("observe.test.v1");
}
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::unregistered_client::UnregisteredClient;
use pb::{EchoReply, EchoRequest};

type Client = EchoClient<observe_tonic::ClientService<Channel>>;

// ---------------------------------------------------------------------------------------------
// Log capture: a minimal tracing subscriber that records, for every event, its message and the
// RequestContext installed at that moment — exactly what the JSON log layer reads.

#[derive(Clone, Debug)]
struct Captured {
    message: String,
    cx: Option<RequestContext>,
}

static LOGS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

fn install_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other global subscriber");
    });
}

fn logs_containing(tag: &str) -> Vec<Captured> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|c| c.message.contains(tag))
        .cloned()
        .collect()
}

struct Capture;

struct MessageVisitor<'a>(&'a mut String);
impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut MessageVisitor(&mut message));
        let cx = RequestContext::current();
        LOGS.lock().unwrap().push(Captured { message, cx });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------------------------
// The test service.

#[derive(Clone)]
struct EchoService {
    metrics: &'static Metrics,
    tracer: Option<&'static SdkTracer>,
    tag: &'static str,
}

fn seen(seq: u32) -> EchoReply {
    let cx = RequestContext::current();
    EchoReply {
        trace_id: cx.map(|c| c.trace_id.to_string()).unwrap_or_default(),
        span_id: cx.map(|c| c.span_id.to_string()).unwrap_or_default(),
        sampled: cx.is_some_and(|c| c.is_sampled()),
        downstream: None,
        seq,
        tracestate: String::new(),
        baggage: String::new(),
    }
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let metadata = |key: &str| {
            request
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (tracestate, baggage) = (metadata("tracestate"), metadata("baggage"));
        let req = request.into_inner();
        tracing::info!("{} unary handler", self.tag);
        let mut reply = seen(0);
        reply.tracestate = tracestate;
        reply.baggage = baggage;
        if !req.downstream.is_empty() {
            let mut client = client_with(self.metrics, self.tracer, &req.downstream).await;
            let down = client
                .unary(EchoRequest {
                    code: req.code,
                    ..Default::default()
                })
                .await?;
            tracing::info!("{} after downstream call", self.tag);
            reply.downstream = Some(Box::new(down.into_inner()));
            return Ok(Response::new(reply));
        }
        match Code::from_i32(req.code) {
            Code::Ok => Ok(Response::new(reply)),
            code => Err(Status::new(code, "as requested")),
        }
    }

    type ServerStreamStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let req = request.into_inner();
        let code = Code::from_i32(req.code);
        if code != Code::Ok && req.fail_before_first_message {
            return Err(Status::new(code, "failed before the first message"));
        }
        let tag = self.tag;
        let wait = Duration::from_millis(req.wait_ms);
        let count = req.count;
        let stream = tokio_stream::iter(0..=count)
            .then(move |seq| async move {
                if seq == count {
                    return (code != Code::Ok).then(|| Err(Status::new(code, "ended with")));
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                // Polled by the response body, not the handler's future.
                tracing::info!("{tag} stream item {seq}");
                Some(Ok(seen(seq)))
            })
            .filter_map(|item| item);
        Ok(Response::new(Box::pin(stream)))
    }
}

// ---------------------------------------------------------------------------------------------
// Harness.

fn metrics() -> &'static Metrics {
    Metrics::leak(Metrics::new(MetricsConfig::default()))
}

async fn serve(metrics: &'static Metrics, tag: &'static str) -> SocketAddr {
    serve_with(metrics, None, tag).await
}

async fn serve_with(
    metrics: &'static Metrics,
    tracer: Option<&'static SdkTracer>,
    tag: &'static str,
) -> SocketAddr {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let mut layer = observe_tonic::ServerLayer::new().metrics(metrics);
    if let Some(tracer) = tracer {
        layer = layer.tracer(tracer);
    }
    let router = Server::builder()
        .layer(layer)
        .add_service(EchoServer::new(EchoService {
            metrics,
            tracer,
            tag,
        }));
    tokio::spawn(router.serve_with_incoming(incoming));
    addr
}

async fn client(metrics: &'static Metrics, addr: &str) -> Client {
    client_with(metrics, None, addr).await
}

async fn client_with(
    metrics: &'static Metrics,
    tracer: Option<&'static SdkTracer>,
    addr: &str,
) -> Client {
    let channel = Endpoint::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut layer = observe_tonic::ClientLayer::new().metrics(metrics);
    if let Some(tracer) = tracer {
        layer = layer.tracer(tracer);
    }
    let channel = tower::ServiceBuilder::new().layer(layer).service(channel);
    EchoClient::new(channel)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn scrape(metrics: &Metrics) -> String {
    let mut out = Vec::new();
    metrics.encode(Format::PrometheusText, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The value of the first sample named `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, v) = line.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let body = rest.strip_suffix('}')?;
            let has = |k: &str, v: &str| body.split(',').any(|p| p == format!("{k}=\"{v}\""));
            labels
                .iter()
                .all(|(k, v)| has(k, v))
                .then(|| v.parse().ok())
                .flatten()
        })
}

/// The number of calls recorded for `side` ("server"/"client") with these labels.
fn calls(metrics: &Metrics, side: &str, method: &str, code: &str) -> f64 {
    let text = scrape(metrics);
    value(
        &text,
        &format!("rpc_{side}_call_duration_seconds_count"),
        &[
            ("rpc_system_name", "grpc"),
            ("rpc_method", method),
            ("rpc_response_status_code", code),
        ],
    )
    .unwrap_or(0.0)
}

/// Waits (bounded) for the server side of a call to be recorded: the server ends its call when
/// hyper polls the trailers, which can be just after the client has read them.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

const UNARY: &str = "observe.test.v1.Echo/Unary";
const STREAM: &str = "observe.test.v1.Echo/ServerStream";

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_continues_client_to_server_to_server() {
    install_capture();
    let m = metrics();
    let back = serve(m, "prop-back").await;
    let front = serve(m, "prop-front").await;
    let mut client = client(m, &url(front)).await;

    let root = RequestContext::new_root(true);
    // The client layer reads the caller's context when the call starts.
    let call = client.unary(EchoRequest {
        downstream: url(back),
        ..Default::default()
    });
    let reply = FutureExt::with_context(call, root)
        .await
        .unwrap()
        .into_inner();

    let trace = root.trace_id.to_string();
    let down = reply
        .downstream
        .expect("front relayed the downstream reply");
    assert_eq!(reply.trace_id, trace, "front continues the caller's trace");
    assert_eq!(down.trace_id, trace, "back continues the same trace");
    assert!(reply.sampled && down.sampled, "sampled flag propagates");
    let ids = [&root.span_id.to_string(), &reply.span_id, &down.span_id];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "every hop has its own span id: {ids:?}"
    );

    // Logs emitted in both handlers carry the same trace id, and each the span id of its hop.
    let want = TraceId::from_hex(&trace).unwrap();
    for (tag, span) in [("prop-front", &reply.span_id), ("prop-back", &down.span_id)] {
        let logs = logs_containing(tag);
        assert!(!logs.is_empty(), "{tag} logged");
        for log in logs {
            let cx = log
                .cx
                .unwrap_or_else(|| panic!("{tag} log without context: {log:?}"));
            assert_eq!(cx.trace_id, want, "{log:?}");
            assert_eq!(&cx.span_id.to_string(), span, "{log:?}");
        }
    }

    // Two server calls (front, back), two client calls (test → front, front → back).
    assert!(eventually(|| calls(m, "server", UNARY, "OK") == 2.0).await);
    assert_eq!(calls(m, "client", UNARY, "OK"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_status_codes_come_from_the_response() {
    let m = metrics();
    let addr = serve(m, "unary-status").await;
    let mut client = client(m, &url(addr)).await;

    let ok = client.unary(EchoRequest::default()).await;
    assert!(ok.is_ok());
    for code in [Code::NotFound, Code::Internal] {
        let err = client
            .unary(EchoRequest {
                code: code as i32,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    for (code, n) in [("OK", 1.0), ("NOT_FOUND", 1.0), ("INTERNAL", 1.0)] {
        assert!(
            eventually(|| calls(m, "server", UNARY, code) == n).await,
            "server {code}:\n{}",
            scrape(m)
        );
        assert_eq!(calls(m, "client", UNARY, code), n, "client {code}");
    }
    let text = scrape(m);
    // INTERNAL is a server error; NOT_FOUND is the caller's, so it carries no error_type.
    assert!(value(
        &text,
        "rpc_server_call_duration_seconds_count",
        &[
            ("rpc_response_status_code", "INTERNAL"),
            ("error_type", "INTERNAL")
        ]
    )
    .is_some());
    assert!(!text
        .lines()
        .any(|l| l.starts_with("rpc_server_call_duration_seconds_count")
            && l.contains("NOT_FOUND")
            && l.contains("error_type")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_status_comes_from_trailers_after_the_stream() {
    install_capture();
    let m = metrics();
    let addr = serve(m, "stream-status").await;
    let mut client = client(m, &url(addr)).await;

    // OK after three messages, each produced while the body is polled: the context is there.
    let mut stream = client
        .server_stream(EchoRequest {
            count: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut traces = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        traces.push(item.trace_id);
    }
    assert_eq!(traces.len(), 3);
    assert!(
        traces.iter().all(|t| !t.is_empty() && *t == traces[0]),
        "{traces:?}"
    );
    let logs = logs_containing("stream-status stream item");
    assert_eq!(logs.len(), 3);
    assert!(logs
        .iter()
        .all(|l| l.cx.map(|c| c.trace_id.to_string()) == Some(traces[0].clone())));

    // NOT_FOUND and INTERNAL in the trailers after two messages.
    for code in [Code::NotFound, Code::Internal] {
        let mut stream = client
            .server_stream(EchoRequest {
                count: 2,
                code: code as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(stream.message().await.unwrap().is_some());
        assert!(stream.message().await.unwrap().is_some());
        assert_eq!(stream.message().await.unwrap_err().code(), code);
    }

    // INTERNAL before the first message: a trailers-only response, status in the headers.
    let err = client
        .server_stream(EchoRequest {
            count: 2,
            code: Code::Internal as i32,
            fail_before_first_message: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);

    for (code, n) in [("OK", 1.0), ("NOT_FOUND", 1.0), ("INTERNAL", 2.0)] {
        assert!(
            eventually(|| calls(m, "server", STREAM, code) == n).await,
            "server {code}:\n{}",
            scrape(m)
        );
        assert!(
            eventually(|| calls(m, "client", STREAM, code) == n).await,
            "client {code}:\n{}",
            scrape(m)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_is_cancelled_and_gauges_return_to_zero() {
    let m = metrics();
    let addr = serve(m, "cancel").await;
    let mut client = client(m, &url(addr)).await;

    let mut stream = client
        .server_stream(EchoRequest {
            count: 1000,
            wait_ms: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert_eq!(
        m.rpc_server().active(),
        1,
        "one call in flight on the server"
    );
    assert_eq!(
        m.rpc_client().active(),
        1,
        "one call in flight on the client"
    );
    drop(stream);

    assert!(
        eventually(|| calls(m, "server", STREAM, "CANCELLED") == 1.0).await,
        "server records the client's cancellation:\n{}",
        scrape(m)
    );
    assert_eq!(calls(m, "client", STREAM, "CANCELLED"), 1.0);
    assert_eq!(calls(m, "server", STREAM, "OK"), 0.0);
    assert_eq!(m.rpc_server().active(), 0, "server gauge back to zero");
    assert_eq!(m.rpc_client().active(), 0, "client gauge back to zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_and_methods_are_other() {
    let m = metrics();
    let addr = serve(m, "other").await;

    // A service the server does not register.
    let channel = Endpoint::from_shared(url(addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut unregistered = UnregisteredClient::new(
        tower::ServiceBuilder::new()
            .layer(observe_tonic::ClientLayer::new().metrics(m))
            .service(channel.clone()),
    );
    let err = unregistered
        .nothing(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    // A method the registered service does not have.
    let mut grpc = tonic::client::Grpc::new(
        tower::ServiceBuilder::new()
            .layer(observe_tonic::ClientLayer::new().metrics(m))
            .service(channel),
    );
    grpc.ready().await.unwrap();
    let err = grpc
        .unary::<EchoRequest, EchoReply, _>(
            Request::new(EchoRequest::default()),
            http::uri::PathAndQuery::from_static("/observe.test.v1.Echo/NoSuchMethod"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    assert!(
        eventually(|| calls(m, "server", "_OTHER", "UNIMPLEMENTED") == 2.0).await,
        "{}",
        scrape(m)
    );
    assert_eq!(calls(m, "client", "_OTHER", "UNIMPLEMENTED"), 2.0);
    let text = scrape(m);
    assert!(
        !text.contains("NoSuchMethod") && !text.contains("Unregistered"),
        "{text}"
    );
}

/// A tracer whose finished spans land in an in-process store (simple processor: on `end`).
fn tracer_with_store() -> (&'static SdkTracer, Arc<SpanStore>) {
    let store = Arc::new(SpanStore::new(1000));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(store.processor())
        .build();
    let tracer: &'static SdkTracer = Box::leak(Box::new(provider.tracer("tonic-test")));
    // The provider must outlive the tracer's use; the test process ends soon anyway.
    Box::leak(Box::new(provider));
    (tracer, store)
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_calls_export_one_connected_span_tree_with_the_logged_ids() {
    let m = metrics();
    let (tracer, store) = tracer_with_store();
    let back = serve_with(m, Some(tracer), "span-back").await;
    let front = serve_with(m, Some(tracer), "span-front").await;
    let mut client = client_with(m, Some(tracer), &url(front)).await;

    let root = RequestContext::new_root(true);
    let call = client.unary(EchoRequest {
        downstream: url(back),
        ..Default::default()
    });
    let reply = FutureExt::with_context(call, root)
        .await
        .unwrap()
        .into_inner();
    let down = reply.downstream.unwrap();

    // test client → front server → front's client → back server, all in the caller's trace.
    assert!(eventually(|| store.trace(root.trace_id).len() == 4).await);
    let spans = store.trace(root.trace_id);
    let find = |kind: SpanKind, parent: &str| {
        spans
            .iter()
            .find(|s| s.span_kind == kind && s.parent_span_id.to_string() == parent)
            .unwrap_or_else(|| panic!("no {kind:?} span with parent {parent}: {spans:#?}"))
    };
    let client1 = find(SpanKind::Client, &root.span_id.to_string());
    let server1 = find(
        SpanKind::Server,
        &client1.span_context.span_id().to_string(),
    );
    let client2 = find(
        SpanKind::Client,
        &server1.span_context.span_id().to_string(),
    );
    let server2 = find(
        SpanKind::Server,
        &client2.span_context.span_id().to_string(),
    );

    // The ids the handlers saw (and logged) are the exported server spans' own.
    assert_eq!(server1.span_context.span_id().to_string(), reply.span_id);
    assert_eq!(server2.span_context.span_id().to_string(), down.span_id);
    for span in [client1, server1, client2, server2] {
        assert_eq!(span.name, UNARY);
        assert_eq!(attr(span, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(attr(span, "rpc.method").as_deref(), Some(UNARY));
        assert_eq!(
            attr(span, "rpc.response.status_code").as_deref(),
            Some("OK")
        );
        assert_eq!(span.status, SpanStatus::Unset);
    }
    assert!(server1.parent_span_is_remote && server2.parent_span_is_remote);

    // NOT_FOUND is the caller's error: the client span says so, the server span does not.
    // INTERNAL is a server error: both say so.
    for (code, server_error) in [(Code::NotFound, false), (Code::Internal, true)] {
        let root = RequestContext::new_root(true);
        let call = client.unary(EchoRequest {
            code: code as i32,
            ..Default::default()
        });
        let err = FutureExt::with_context(call, root).await.unwrap_err();
        assert_eq!(err.code(), code);
        assert!(eventually(|| store.trace(root.trace_id).len() == 2).await);
        let spans = store.trace(root.trace_id);
        let name = observe_core::metrics::GrpcCode::from_i32(code as i32).as_str();
        for span in &spans {
            assert_eq!(
                attr(span, "rpc.response.status_code").as_deref(),
                Some(name)
            );
            let error = span.span_kind == SpanKind::Client || server_error;
            assert_eq!(
                matches!(span.status, SpanStatus::Error { .. }),
                error,
                "{span:#?}"
            );
            assert_eq!(attr(span, "error.type").as_deref(), error.then_some(name));
        }
    }

    // An unsampled caller: no spans at all, but the context still continues.
    let root = RequestContext::new_root(false);
    let call = client.unary(EchoRequest::default());
    let reply = FutureExt::with_context(call, root)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.trace_id, root.trace_id.to_string());
    assert!(!reply.sampled);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.trace(root.trace_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracestate_and_baggage_are_forwarded_by_the_next_hop() {
    let m = metrics();
    let back = serve(m, "carry-back").await;
    let front = serve(m, "carry-front").await;
    // A caller from another stack: it writes the W3C metadata itself (no observe client layer).
    let channel = Endpoint::from_shared(url(front))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = EchoClient::new(channel);
    let mut request = Request::new(EchoRequest {
        downstream: url(back),
        ..Default::default()
    });
    let md = request.metadata_mut();
    md.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    md.insert("tracestate", "vendor=abc,other=1".parse().unwrap());
    md.insert("baggage", "tenant=acme".parse().unwrap());
    let reply = client.unary(request).await.unwrap().into_inner();
    let down = reply.downstream.unwrap();

    assert_eq!(reply.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(down.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(down.tracestate, "vendor=abc,other=1");
    assert_eq!(down.baggage, "tenant=acme");

    // Malformed context is not forwarded: a new trace starts, nothing raw goes onward.
    let mut request = Request::new(EchoRequest {
        downstream: url(back),
        ..Default::default()
    });
    let md = request.metadata_mut();
    md.insert("traceparent", "00-zz-yy-01".parse().unwrap());
    md.insert("tracestate", "vendor=abc".parse().unwrap());
    let reply = client.unary(request).await.unwrap().into_inner();
    let down = reply.downstream.unwrap();
    assert_eq!(reply.trace_id.len(), 32);
    assert_eq!(down.trace_id, reply.trace_id, "the new trace continues");
    assert_eq!(
        down.tracestate, "",
        "tracestate without a valid traceparent is dropped"
    );
}
