//! A standalone `/metrics` endpoint (hyper 1) for services without an HTTP router, such as
//! gRPC-only services.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! // Serves Metrics::global() on 0.0.0.0:9464/metrics until the process exits.
//! observe_core::metrics::serve(("0.0.0.0", observe_core::metrics::DEFAULT_PORT)).await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Semaphore;

use super::encode::accepts_gzip;
use super::{Format, Metrics};

/// The port the OpenTelemetry Prometheus exporter uses by default.
pub const DEFAULT_PORT: u16 = 9464;

/// Connections served at once; more wait in the kernel's accept queue (bounded memory).
const MAX_CONNECTIONS: usize = 64;
/// A scraper must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it is doing.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves [`Metrics::global`] on `addr` at `GET /metrics` until an I/O error on the listener.
/// For a port chosen at runtime, other metrics or a forced format, use [`MetricsServer`].
pub async fn serve(addr: impl ToSocketAddrs) -> io::Result<()> {
    MetricsServer::bind(addr).await?.run().await
}

/// A bound `/metrics` server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use observe_core::metrics::{Format, Metrics, MetricsConfig, MetricsServer};
/// let server = MetricsServer::bind("127.0.0.1:0").await?
///     .with_metrics(Metrics::new(MetricsConfig::default()).leak())
///     .with_format(Format::PrometheusText); // ignore Accept: always Prometheus text
/// let addr = server.local_addr()?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(server.run_until(async { let _ = stopped.await; }));
/// # let _ = addr;
/// stop.send(()).unwrap();
/// task.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    metrics: &'static Metrics,
    format: Option<Format>,
}

impl MetricsServer {
    /// Binds `addr`; serves [`Metrics::global`] unless [`MetricsServer::with_metrics`] says otherwise.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<MetricsServer> {
        Ok(Self::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: TcpListener) -> MetricsServer {
        MetricsServer {
            listener,
            metrics: Metrics::global(),
            format: None,
        }
    }

    /// Serves these metrics instead of the global ones.
    pub fn with_metrics(mut self, metrics: &'static Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Always answers in `format`, whatever the scraper's `Accept` says.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the listener fails.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes; connections in progress finish on their own tasks.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let metrics = self.metrics;
        let format = self.format;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                p = limit.clone().acquire_owned() => p.map_err(io::Error::other)?,
            };
            let stream = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_transient(&e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let (stream, peer) = stream;
            tokio::spawn(async move {
                let _permit = permit;
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        Ok::<_, Infallible>(handle(metrics, format, &req, Some(peer)))
                    });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                // Errors here are the scraper's (reset, timeout); nothing to report.
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            });
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    )
}

fn handle<B>(
    metrics: &Metrics,
    format: Option<Format>,
    req: &Request<B>,
    peer: Option<std::net::SocketAddr>,
) -> Response<Full<Bytes>> {
    // The status page, when `init` enabled it, sits beside /metrics (loopback peers only
    // unless configured otherwise; the page decides).
    if let Some(response) = crate::status::global().and_then(|page| page.handle(req, peer)) {
        return response;
    }
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match format {
        Some(f) => metrics.http_response_in(f, accepts_gzip(req.headers())),
        None => metrics.http_response(req.headers()),
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
