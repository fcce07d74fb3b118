//! Hostile gRPC metadata against observe-tonic's server layer.
//!
//! Over real loopback HTTP/2 to a tonic server with the layer: arbitrary `grpc-timeout`,
//! `traceparent`, `tracestate`, `baggage`, `grpc-status` request metadata and arbitrary method
//! paths never panic or hang the server, every call ends with a status, and only methods the
//! server routes are interned (the rest are `_OTHER`). In process: arbitrary `grpc-status`
//! bytes in response headers or trailers are read the way gRPC reads them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use observe_core::metrics::{GrpcCode, Metrics, RpcMethod, Series};
use proptest::prelude::*;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tower::{service_fn, Layer, ServiceExt};

mod pb {
    tonic::include_proto!("observe.test.v1");
}
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let code = tonic::Code::from_i32(request.get_ref().code);
        if code != tonic::Code::Ok {
            return Err(tonic::Status::new(code, "as requested"));
        }
        let cx = observe_core::context::RequestContext::current();
        Ok(tonic::Response::new(EchoReply {
            trace_id: cx.map(|c| c.trace_id.to_string()).unwrap_or_default(),
            ..Default::default()
        }))
    }

    type ServerStreamStream =
        Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send + 'static>>;

    async fn server_stream(
        &self,
        _request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<Self::ServerStreamStream>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(vec![
            Ok(EchoReply::default()),
        ]))))
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    metrics: &'static Metrics,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Metrics::new(Default::default()).leak();
        let addr = rt.block_on(async {
            let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = incoming.local_addr().unwrap();
            let router = Server::builder()
                .layer(observe_tonic::server_layer().metrics(metrics))
                .add_service(EchoServer::new(EchoService));
            tokio::spawn(router.serve_with_incoming(incoming));
            addr
        });
        let client = {
            let _g = rt.enter();
            Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http()
        };
        World {
            rt,
            addr,
            metrics,
            client,
        }
    })
}

/// A gRPC frame holding an `EchoRequest` with `code` (field 1, varint).
fn frame(code: u8) -> Bytes {
    let msg: &[u8] = if code == 0 { &[] } else { &[0x08, code] };
    let mut b = vec![0u8, 0, 0, 0, msg.len() as u8];
    b.extend_from_slice(msg);
    Bytes::from(b)
}

const UNARY: &str = "/observe.test.v1.Echo/Unary";
const PATH_CHARS: &[char] = &['/', 'a', 'Z', '.', '_', '0', '-', '~', '%', '2'];
const META_CHARS: &[char] = &[
    '0', '9', 'H', 'M', 'S', 'm', 'u', 'n', '-', ' ', 'f', ',', '=',
];

fn text(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn meta() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        text(META_CHARS, 24).prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..60),
        (
            1u64..u64::MAX,
            proptest::sample::select(&["H", "M", "S", "m", "u", "n", "x", ""][..])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}").into_bytes()),
        Just(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(UNARY.to_string()),
        text(PATH_CHARS, 30).prop_map(|s| format!("/{s}")),
        text(PATH_CHARS, 12).prop_map(|s| format!("/observe.test.v1.Echo/{s}")),
        text(PATH_CHARS, 12).prop_map(|s| format!("/{s}.Svc/Unary")),
    ]
}

fn rpc_methods(metrics: &Metrics) -> Vec<String> {
    metrics
        .rpc_server()
        .snapshot()
        .into_iter()
        .map(|s| match s.series {
            Series::Labels(l) => l.method.as_str().to_string(),
            Series::Overflow => "overflow".to_string(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_metadata_and_paths_never_break_the_server(
        path in path(),
        headers in proptest::collection::vec(
            (proptest::sample::select(&["grpc-timeout", "traceparent", "tracestate", "baggage",
                "grpc-status", "grpc-message", "grpc-encoding", "te"][..]), meta()),
            0..6,
        ),
        code in 0u8..20,
    ) {
        let w = world();
        let Ok(uri) = http::Uri::try_from(format!("http://{}{path}", w.addr)) else {
            return Ok(());
        };
        let mut req = Request::post(uri).header("content-type", "application/grpc");
        for (name, value) in &headers {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                req = req.header(*name, v);
            }
        }
        let req = req.body(Full::new(frame(code))).unwrap();
        let outcome = w.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                let response = w.client.request(req).await?;
                let status = response.headers().get("grpc-status").cloned();
                let collected = response.into_body().collect().await?;
                let trailer = collected.trailers().and_then(|t| t.get("grpc-status").cloned());
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status.or(trailer))
            })
            .await
        });
        let Ok(result) = outcome else {
            return Err(TestCaseError::fail(format!("call hung: {path} {headers:?}")));
        };
        let status = result.map_err(|e| TestCaseError::fail(format!("{path} {headers:?}: {e}")))?;
        prop_assert!(status.is_some(), "every call ends with a grpc-status: {path} {headers:?}");
    }
}

/// Runs after (or alongside) the property: whatever paths were called, only the routed method
/// and `_OTHER` are labels, and the interner holds at most those.
#[test]
fn only_routed_methods_are_interned() {
    let w = world();
    // Enough hostile calls of our own that the check means something even if run first.
    for i in 0..300 {
        let path = format!("/evil{i}.Svc/M{i}");
        let req = Request::post(format!("http://{}{path}", w.addr))
            .header("content-type", "application/grpc")
            .body(Full::new(frame(0)))
            .unwrap();
        w.rt.block_on(async {
            w.client
                .request(req)
                .await
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
        });
    }
    let methods = rpc_methods(w.metrics);
    for m in &methods {
        assert!(
            m == "observe.test.v1.Echo/Unary" || m == "_OTHER",
            "{methods:?}"
        );
    }
    assert!(methods.iter().any(|m| m == "_OTHER"), "{methods:?}");
    assert!(
        RpcMethod::interned_count() <= 1,
        "{}",
        RpcMethod::interned_count()
    );
}

type TestBody =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn code_count(metrics: &Metrics, code: GrpcCode) -> u64 {
    metrics
        .rpc_server()
        .snapshot()
        .into_iter()
        .filter(|s| matches!(&s.series, Series::Labels(l) if l.code == code))
        .map(|s| s.histogram.count)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// `grpc-status` as any bytes, in the headers (trailers-only) or the trailers: never a
    /// panic, and the recorded code is what gRPC makes of those bytes (garbage is UNKNOWN).
    #[test]
    fn arbitrary_grpc_status_bytes_are_read_as_grpc_reads_them(
        value in meta(),
        in_trailers in any::<bool>(),
        http_status in proptest::sample::select(&[200u16, 400, 404, 429, 500, 503][..]),
    ) {
        static METRICS: OnceLock<&'static Metrics> = OnceLock::new();
        let metrics = *METRICS.get_or_init(|| Metrics::new(Default::default()).leak());
        let header = HeaderValue::from_bytes(&value).ok();
        let expected = match &header {
            Some(v) => GrpcCode::from_i32(tonic::Code::from_bytes(v.as_bytes()) as i32),
            None if http_status == 200 => GrpcCode::Unknown,
            None => GrpcCode::from_i32(match http_status {
                400 => tonic::Code::Internal,
                404 => tonic::Code::Unimplemented,
                429 | 503 => tonic::Code::Unavailable,
                _ => tonic::Code::Unknown,
            } as i32),
        };
        let svc = observe_tonic::server_layer().metrics(metrics).layer(service_fn(
            move |_r: Request<Full<Bytes>>| {
                let header = header.clone();
                async move {
                    let mut frames = vec![Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))];
                    let mut response = Response::builder()
                        .status(http_status)
                        .header("content-type", "application/grpc");
                    if let Some(v) = header {
                        if in_trailers {
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", v);
                            frames.push(Ok(Frame::trailers(t)));
                        } else {
                            frames.clear();
                            response = response.header("grpc-status", v);
                        }
                    }
                    let body: TestBody = StreamBody::new(tokio_stream::iter(frames));
                    Ok::<_, Infallible>(response.body(body).unwrap())
                }
            },
        ));
        let before = code_count(metrics, expected);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let req = Request::post("/observe.test.v1.Echo/Unary").body(Full::new(Bytes::new())).unwrap();
            let response = svc.oneshot(req).await.unwrap();
            let _ = response.into_body().collect().await;
        });
        prop_assert_eq!(code_count(metrics, expected) - before, 1, "{:?} -> {:?}", value, expected);
    }
}
