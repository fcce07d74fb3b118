//! The application every row serves, the requests sent to it, and the ways of driving it:
//! in-process (`Router` as a tower `Service`), over loopback HTTP/1.1 with keep-alive, and
//! from several threads at once.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use tracing::Dispatch;

/// The route every row serves.
pub const ROUTE: &str = "/users/{id}";
/// The path requested (the handler does not log for it).
pub const PATH: &str = "/users/42";
/// The path requested by the rows whose handler logs (an odd id: see [`user`]).
pub const PATH_LOGGED: &str = "/users/43";

/// A valid W3C `traceparent` whose parent was not sampled (flags `00`).
pub const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
/// A valid W3C `traceparent` whose parent was sampled (flags `01`).
pub const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The handler of every row: extracts the id and answers a static body (no allocation of its
/// own). For an odd id it also emits one `info!` event: rows whose handler logs request
/// [`PATH_LOGGED`], the others [`PATH`].
///
/// One handler for both, chosen by the request, rather than a second handler: two handlers
/// compile differently (the compiler inlined axum's extractor into one and not the other,
/// which moved with unrelated changes), about 40 instructions per request
/// (`benches/instructions.sh`) that were charged to whichever layer served the other one.
pub async fn user(Path(id): Path<u64>) -> &'static str {
    if id % 2 == 1 {
        log_fetched(id);
    } else {
        black_box(id);
    }
    "user"
}

/// The event, out of line like any function a handler calls.
#[inline(never)]
fn log_fetched(id: u64) {
    tracing::info!(user_id = id, "fetched user");
}

/// `Router::new().route("/users/{id}", get(user))`: the bare-axum baseline app.
pub fn app() -> Router {
    Router::new().route(ROUTE, get(user))
}

/// Extra routes registered in the route-scaling rows: with [`ROUTE`], 10,000 routes in all
/// (observe interns at most 10,000 route templates per process).
pub const MANY_ROUTES: usize = 9_999;

/// The app with `n` extra routes registered (`/r{i}/users/{id}`) besides [`ROUTE`].
pub fn app_with_routes(n: usize) -> Router {
    let mut r = app();
    for i in 0..n {
        r = r.route(&format!("/r{i}/users/{{id}}"), get(user));
    }
    r
}

/// A fresh request for `path` with a `traceparent`, built the way a server would hand it over.
pub fn request_to(path: &'static str, traceparent: &'static str) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = http::Uri::from_static(path);
    req.headers_mut()
        .insert("traceparent", HeaderValue::from_static(traceparent));
    req
}

/// Sends one request to each of the `n` extra routes of [`app_with_routes`], so that per-route
/// state (metric series) exists for all of them before measuring.
pub fn visit_routes(rt: &Runtime, router: &Router, n: usize, tp: &'static str) {
    let mut svc = router.clone();
    rt.block_on(async {
        for i in 0..n {
            let mut req = request(tp);
            *req.uri_mut() = http::Uri::try_from(format!("/r{i}/users/{i}")).expect("uri");
            let status = call(&mut svc, req).await;
            assert_eq!(status, StatusCode::OK, "route /r{i}/users/{{id}}");
        }
    });
}

/// A fresh `GET /users/42` with a `traceparent`.
pub fn request(traceparent: &'static str) -> Request<Body> {
    request_to(PATH, traceparent)
}

/// A single-threaded runtime for in-process driving.
pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sends one request through the router and reads the body to the end; returns the status.
pub async fn call(svc: &mut Router, req: Request<Body>) -> StatusCode {
    let svc = match ServiceExt::<Request<Body>>::ready(svc).await {
        Ok(s) => s,
        Err(e) => match e {},
    };
    let resp = match svc.call(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = resp.status();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        black_box(frame.ok());
    }
    status
}

/// Sends `n` fresh requests for `path` through `router`, one after the other, on `rt`.
pub fn run_in_process(rt: &Runtime, router: &Router, path: &'static str, tp: &'static str, n: u64) {
    let mut svc = router.clone();
    rt.block_on(async {
        for _ in 0..n {
            black_box(call(&mut svc, request_to(path, tp)).await);
        }
    });
}

/// Checks that the router answers 200 on `path`; panics with the row name otherwise.
pub fn assert_ok(rt: &Runtime, router: &Router, path: &'static str, tp: &'static str, row: &str) {
    let mut svc = router.clone();
    let status = rt.block_on(call(&mut svc, request_to(path, tp)));
    assert_eq!(
        status,
        StatusCode::OK,
        "row {row}: GET {path} answered {status}"
    );
}

/// An axum server on `127.0.0.1:0`, on its own thread with a current-thread runtime (and the
/// row's subscriber as that thread's default, if any). Stops when dropped.
pub struct LoopbackServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts serving `router`.
    pub fn start(router: Router, dispatch: Option<Dispatch>) -> Self {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let _guard = dispatch.map(|d| tracing::dispatcher::set_default(&d));
                let rt = current_thread_runtime();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind loopback");
                    addr_tx
                        .send(listener.local_addr().expect("addr"))
                        .expect("send addr");
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await
                        .expect("serve");
                });
            })
            .expect("spawn server thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        LoopbackServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One keep-alive HTTP/1.1 connection (hyper's client connection) to a [`LoopbackServer`].
pub struct LoopbackClient {
    rt: Runtime,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

impl LoopbackClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let rt = current_thread_runtime();
        let sender = rt.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        });
        let host = HeaderValue::from_str(&addr.to_string()).expect("host");
        LoopbackClient { rt, sender, host }
    }

    /// Sends `n` requests one after the other on the connection; returns the last status.
    pub fn run(&mut self, path: &'static str, tp: &'static str, n: u64) -> StatusCode {
        let LoopbackClient { rt, sender, host } = self;
        rt.block_on(async {
            let mut status = StatusCode::OK;
            for _ in 0..n {
                let mut req = Request::new(Empty::<Bytes>::new());
                *req.uri_mut() = http::Uri::from_static(path);
                req.headers_mut().insert(http::header::HOST, host.clone());
                req.headers_mut()
                    .insert("traceparent", HeaderValue::from_static(tp));
                sender.ready().await.expect("connection ready");
                let resp = sender.send_request(req).await.expect("response");
                status = resp.status();
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    black_box(frame.ok());
                }
            }
            status
        })
    }
}

/// `k` worker threads, each with its own current-thread runtime and clone of the router (and
/// `dispatch` as its default subscriber), waiting for batches of requests to `path`; run with
/// [`Workers::run_split`](crate::workers::Workers::run_split).
pub fn hammer(
    router: &Router,
    path: &'static str,
    tp: &'static str,
    k: usize,
    dispatch: Option<Dispatch>,
) -> crate::workers::Workers {
    let router = router.clone();
    crate::workers::Workers::start(k, "bench-worker", move || {
        let guard = dispatch
            .clone()
            .map(|d| tracing::dispatcher::set_default(&d));
        let rt = current_thread_runtime();
        let router = router.clone();
        move |n| {
            // The thread's default subscriber for as long as the job lives.
            let _guard = &guard;
            run_in_process(&rt, &router, path, tp, n);
        }
    })
}
