//! The layers on in-memory services: when a call ends, with which status, in which context.
//!
//! The loopback tests in `tests/tests/tonic_rpc.rs` run real tonic servers and clients; these
//! drive the response future and body by hand, frame by frame, to pin down the moments at
//! which a call is recorded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use observe_core::context::RequestContext;
use observe_core::metrics::{GrpcCode, Metrics, MetricsConfig, RpcLabels, Series};
use observe_tonic::ServerLayer;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A body that yields prepared frames and notes the context installed at each poll.
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    seen: Arc<Mutex<Vec<Option<RequestContext>>>>,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.seen.lock().unwrap().push(RequestContext::current());
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

fn trailers(code: &'static str) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static(code));
    Frame::trailers(t)
}

fn data() -> Frame<Bytes> {
    Frame::data(Bytes::from_static(b"\0\0\0\0\0"))
}

type Seen = Arc<Mutex<Vec<Option<RequestContext>>>>;

/// A server whose every call answers with `headers` (e.g. a trailers-only status) and `frames`.
fn server(
    layer: ServerLayer,
    headers: &'static [(&'static str, &'static str)],
    frames: Vec<Frame<Bytes>>,
) -> (
    impl Service<
        Request<()>,
        Response = Response<observe_tonic::ResponseBody<Frames>>,
        Error = observe_tonic::BoxError,
        Future: Unpin,
    >,
    Seen,
) {
    let seen: Seen = Arc::default();
    let frames = Arc::new(Mutex::new(Some(VecDeque::from(frames))));
    let seen2 = seen.clone();
    let svc = service_fn(move |_req: Request<()>| {
        let mut response = Response::new(Frames {
            frames: frames.lock().unwrap().take().unwrap_or_default(),
            seen: seen2.clone(),
        });
        for (k, v) in headers {
            response
                .headers_mut()
                .insert(*k, HeaderValue::from_static(v));
        }
        std::future::ready(Ok::<_, Infallible>(response))
    });
    (layer.layer(svc), seen)
}

fn fresh() -> &'static Metrics {
    Metrics::leak(Metrics::new(MetricsConfig::default()))
}

fn recorded(m: &Metrics) -> Vec<(String, GrpcCode, u64)> {
    m.rpc_server()
        .snapshot()
        .into_iter()
        .filter_map(|s| match s.series {
            Series::Labels(RpcLabels { method, code, .. }) => {
                Some((method.as_str().to_owned(), code, s.histogram.count))
            }
            Series::Overflow => None,
        })
        .collect()
}

fn call(path: &str) -> Request<()> {
    Request::post(path).body(()).unwrap()
}

async fn next_frame<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
    poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

#[tokio::test]
async fn trailers_end_the_call_not_the_headers() {
    let m = fresh();
    let (svc, seen) = server(
        ServerLayer::new().metrics(m),
        &[],
        vec![data(), trailers("5")],
    );
    let mut body = svc.oneshot(call("/pkg.S/M")).await.unwrap().into_body();
    assert!(recorded(m).is_empty(), "headers alone do not end a call");
    assert_eq!(m.rpc_server().active(), 1);
    assert!(!body.is_end_stream());
    assert!(next_frame(&mut body).await.unwrap().unwrap().is_data());
    assert!(recorded(m).is_empty());
    assert!(next_frame(&mut body).await.unwrap().unwrap().is_trailers());
    assert_eq!(recorded(m), [("pkg.S/M".into(), GrpcCode::NotFound, 1)]);
    assert_eq!(m.rpc_server().active(), 0);
    // Every poll of the body ran inside one request context.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].is_some() && seen[0] == seen[1]);
    assert_eq!(RequestContext::current(), None, "and left it afterwards");
}

#[tokio::test]
async fn trailers_only_ends_at_the_headers() {
    let m = fresh();
    let (svc, _) = server(
        ServerLayer::new().metrics(m),
        &[("grpc-status", "13"), ("grpc-message", "boom")],
        vec![],
    );
    let response = svc.oneshot(call("/pkg.S/M")).await.unwrap();
    assert_eq!(recorded(m), [("pkg.S/M".into(), GrpcCode::Internal, 1)]);
    assert!(response.body().is_end_stream());
}

#[tokio::test]
async fn the_routers_bare_unimplemented_is_other() {
    let m = fresh();
    let (svc, _) = server(
        ServerLayer::new().metrics(m),
        &[("grpc-status", "12")],
        vec![],
    );
    svc.oneshot(call("/pkg.Nope/Never")).await.unwrap();
    // A handler's own UNIMPLEMENTED (with a message) keeps the method name.
    let (svc, _) = server(
        ServerLayer::new().metrics(m),
        &[("grpc-status", "12"), ("grpc-message", "later")],
        vec![],
    );
    svc.oneshot(call("/pkg.S/Later")).await.unwrap();
    let mut got = recorded(m);
    got.sort();
    assert_eq!(
        got,
        [
            ("_OTHER".into(), GrpcCode::Unimplemented, 1),
            ("pkg.S/Later".into(), GrpcCode::Unimplemented, 1)
        ]
    );
}

#[tokio::test]
async fn known_methods_allow_list() {
    let m = fresh();
    let layer = ServerLayer::new()
        .metrics(m)
        .known_methods(["pkg.S/Listed"]);
    for path in ["/pkg.S/Listed", "/pkg.S/Unlisted", "/not-a-method"] {
        let (svc, _) = server(layer.clone(), &[("grpc-status", "0")], vec![]);
        svc.oneshot(call(path)).await.unwrap();
    }
    let mut got = recorded(m);
    got.sort();
    assert_eq!(
        got,
        [
            ("_OTHER".into(), GrpcCode::Ok, 2),
            ("pkg.S/Listed".into(), GrpcCode::Ok, 1)
        ]
    );
}

#[tokio::test]
async fn end_of_stream_without_status_and_garbage_status_are_unknown() {
    let m = fresh();
    let (svc, _) = server(ServerLayer::new().metrics(m), &[], vec![data()]);
    let mut body = svc.oneshot(call("/pkg.S/A")).await.unwrap().into_body();
    while next_frame(&mut body).await.is_some() {}
    let (svc, _) = server(ServerLayer::new().metrics(m), &[], vec![trailers("99")]);
    let mut body = svc.oneshot(call("/pkg.S/B")).await.unwrap().into_body();
    while next_frame(&mut body).await.is_some() {}
    let mut got = recorded(m);
    got.sort();
    assert_eq!(
        got,
        [
            ("pkg.S/A".into(), GrpcCode::Unknown, 1),
            ("pkg.S/B".into(), GrpcCode::Unknown, 1)
        ]
    );
}

#[tokio::test]
async fn dropped_body_or_future_is_cancelled_once() {
    let m = fresh();
    let (svc, _) = server(
        ServerLayer::new().metrics(m),
        &[],
        vec![data(), data(), trailers("0")],
    );
    let mut body = svc.oneshot(call("/pkg.S/M")).await.unwrap().into_body();
    next_frame(&mut body).await.unwrap().unwrap();
    drop(body);
    assert_eq!(recorded(m), [("pkg.S/M".into(), GrpcCode::Cancelled, 1)]);
    assert_eq!(m.rpc_server().active(), 0);

    // A handler that never answers, dropped while pending.
    let m = fresh();
    let mut svc = ServerLayer::new()
        .metrics(m)
        .layer(service_fn(|_r: Request<()>| {
            std::future::pending::<Result<Response<Frames>, Infallible>>()
        }));
    let mut fut = svc.call(call("/pkg.S/Slow"));
    assert!(poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx).is_pending())).await);
    assert_eq!(m.rpc_server().active(), 1);
    drop(fut);
    assert_eq!(recorded(m), [("pkg.S/Slow".into(), GrpcCode::Cancelled, 1)]);
    assert_eq!(m.rpc_server().active(), 0);
}

#[tokio::test]
async fn handler_error_carrying_a_status_uses_its_code() {
    let m = fresh();
    let svc = ServerLayer::new()
        .metrics(m)
        .layer(service_fn(|_r: Request<()>| {
            std::future::ready(Err::<Response<Frames>, _>(tonic::Status::not_found("gone")))
        }));
    let err = svc.oneshot(call("/pkg.S/M")).await.unwrap_err();
    assert!(err.downcast_ref::<tonic::Status>().is_some());
    let svc = ServerLayer::new()
        .metrics(m)
        .layer(service_fn(|_r: Request<()>| {
            std::future::ready(Err::<Response<Frames>, _>(std::io::Error::other("io")))
        }));
    svc.oneshot(call("/pkg.S/N")).await.unwrap_err();
    let mut got = recorded(m);
    got.sort();
    assert_eq!(
        got,
        [
            ("pkg.S/M".into(), GrpcCode::NotFound, 1),
            ("pkg.S/N".into(), GrpcCode::Unknown, 1)
        ]
    );
}

#[tokio::test]
async fn incoming_traceparent_is_continued() {
    let m = fresh();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let svc = ServerLayer::new()
        .metrics(m)
        .layer(service_fn(move |_r: Request<()>| {
            seen2.lock().unwrap().push(RequestContext::current());
            std::future::ready(Ok::<_, Infallible>(Response::new(Frames {
                frames: VecDeque::from([trailers("0")]),
                seen: Arc::default(),
            })))
        }));
    let mut req = call("/pkg.S/M");
    req.headers_mut().insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    svc.oneshot(req).await.unwrap();
    let cx = seen.lock().unwrap()[0].unwrap();
    assert_eq!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(cx.span_id.to_string(), "00f067aa0ba902b7");
    assert!(cx.is_sampled());
}

#[tokio::test]
async fn client_injects_the_current_context_and_counts_transport_errors_as_unavailable() {
    let m = fresh();
    let sent: Arc<Mutex<Vec<Option<HeaderValue>>>> = Arc::default();
    let sent2 = sent.clone();
    let layer = observe_tonic::ClientLayer::new().metrics(m);
    let svc = layer.layer(service_fn(move |req: Request<()>| {
        sent2
            .lock()
            .unwrap()
            .push(req.headers().get("traceparent").cloned());
        std::future::ready(Err::<Response<Frames>, _>(std::io::Error::other("refused")))
    }));

    let cx = RequestContext::new_root(true);
    // `oneshot` calls the service when first polled: poll it inside the context.
    let traced = svc.clone().oneshot(call("/pkg.S/M"));
    observe_core::context::FutureExt::with_context(traced, cx)
        .await
        .unwrap_err();
    svc.oneshot(call("/pkg.S/M")).await.unwrap_err();

    let sent = sent.lock().unwrap();
    let expected = format!("00-{}-{}-03", cx.trace_id, cx.span_id);
    assert_eq!(sent[0].as_ref().unwrap(), expected.as_str());
    assert_eq!(sent[1], None, "no context, nothing injected");
    let got: Vec<_> = m
        .rpc_client()
        .snapshot()
        .into_iter()
        .filter_map(|s| match s.series {
            Series::Labels(l) => Some((l.method.as_str(), l.code, s.histogram.count)),
            Series::Overflow => None,
        })
        .collect();
    assert_eq!(got, [("pkg.S/M", GrpcCode::Unavailable, 2)]);
    assert_eq!(m.rpc_client().active(), 0);
}
