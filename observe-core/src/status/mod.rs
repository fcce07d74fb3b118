//! The opt-in status page (HTML and JSON): RED per route, latency distributions, recent slow
//! or failed requests with their span waterfalls, and the SDK's own health — for a developer
//! or an operator with no Prometheus, Grafana or trace backend at hand.
//!
//! [`StatusPage`] reads the same histograms that `/metrics` serves (one source of truth) and
//! the in-process span store ([`crate::trace::collector`]). It answers `GET /observe` (HTML,
//! one self-contained document: inline CSS, no script, no external asset) and
//! `GET /observe.json` through [`StatusPage::handle`], which the framework glue calls.
//!
//! Safe by default:
//! - it is off unless enabled ([`StatusPage::from_config`] returns `None` unless
//!   `Config::status_page` / `OBSERVE_STATUS_PAGE=true`);
//! - it answers only loopback peers (403 otherwise, and when the peer is unknown) unless
//!   [`StatusPageBuilder::allow_remote`] says so;
//! - it never shows header values, query strings, paths or bodies: only route templates,
//!   status codes, error types, span names and event messages — all HTML-escaped — and the
//!   responses carry a `Content-Security-Policy` that forbids scripts altogether;
//! - memory is bounded: per-route rings of fixed size, a bounded number of routes, a bounded
//!   window of rate samples, and span trees looked up in the (bounded) store when rendering.
//!
//! Rates and error ratios are over a sliding window (60 s by default) of samples taken at most
//! every 10 s — by each page view, and by [`StatusPage::spawn_sampler`] when it runs; while the
//! page is younger than the window, they are since the page was built. Latency quantiles and
//! distributions are since the process started, like the histograms they come from.
//!
//! ```
//! use observe_core::metrics::{HttpMethod, HttpServerLabels, Metrics, Route, UrlScheme};
//! use observe_core::status::StatusPage;
//! use std::time::Duration;
//!
//! let metrics = Metrics::new(Default::default()).leak();
//! let page = StatusPage::builder().metrics(metrics).service_name("checkout").build();
//! metrics.http_server().record(
//!     HttpServerLabels { method: HttpMethod::Get, scheme: UrlScheme::Http,
//!         route: Some(Route::intern("/users/{id}")), status: 200, error: None },
//!     Duration::from_millis(7), None);
//!
//! let html = page.render_html();
//! assert!(html.contains(r#"data-route="/users/{id}""#));
//! let json: serde_json::Value = serde_json::from_str(&page.render_json()).unwrap();
//! assert_eq!(json["routes"][0]["count"], 1);
//!
//! let request = http::Request::get("/observe").body(()).unwrap();
//! let remote = Some("10.1.2.3:5555".parse().unwrap());
//! assert_eq!(page.handle(&request, remote).unwrap().status(), 403);
//! let local = Some("127.0.0.1:5555".parse().unwrap());
//! assert_eq!(page.handle(&request, local).unwrap().status(), 200);
//! assert!(page.handle(&http::Request::get("/metrics").body(()).unwrap(), local).is_none());
//! ```

mod html;
mod json;
mod model;
mod quantile;
mod recent;
mod waterfall;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::trace::collector::{self, SpanStore};

pub use html::escape as escape_html;
pub use model::{
    Health, QueueUse, RequestView, RouteRecent, RouteRow, RowKind, StatusSnapshot, OVERFLOW,
    UNKNOWN_SERVER, UNMATCHED,
};
pub use quantile::histogram_quantile;
pub use recent::{RecentProcessor, RecentRequest, RecentRequests, RouteRequests, OTHER_ROUTES};
pub use waterfall::{ServiceShare, Waterfall, WaterfallSpan, MAX_WATERFALL_SPANS};

use model::{RateWindow, Reading};

/// The path the page answers by default; the JSON form is at the same path plus `.json`.
///
/// ```
/// assert_eq!(observe_core::status::DEFAULT_PATH, "/observe");
/// ```
pub const DEFAULT_PATH: &str = "/observe";

/// Reports the span export queue's use, for the health section.
///
/// ```
/// use observe_core::status::{QueueProbe, QueueUse};
/// let probe: QueueProbe = std::sync::Arc::new(|| None::<QueueUse>);
/// assert!(probe().is_none());
/// ```
pub type QueueProbe = Arc<dyn Fn() -> Option<QueueUse> + Send + Sync>;

/// Where the page finds its span store.
#[derive(Clone)]
enum StoreSource {
    /// Whatever [`collector::global`] holds at render time (the store `init` installs).
    Global,
    /// A given store, or none at all.
    Fixed(Option<Arc<SpanStore>>),
}

struct Inner {
    metrics: &'static Metrics,
    store: StoreSource,
    allow_remote: bool,
    service: String,
    path: String,
    json_path: String,
    recent: Arc<RecentRequests>,
    rates: Mutex<RateWindow>,
    export_queue: Option<QueueProbe>,
}

/// The status page. Cheap to clone (shared state); see the [module docs](self).
///
/// ```
/// let page = observe_core::status::StatusPage::builder().service_name("checkout").build();
/// let clone = page.clone(); // shares the rings and the rate window
/// assert!(clone.render_html().contains("<h1 id=\"service\">checkout</h1>"));
/// ```
#[derive(Clone)]
pub struct StatusPage {
    inner: Arc<Inner>,
}

impl fmt::Debug for StatusPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusPage")
            .field("service", &self.inner.service)
            .field("path", &self.inner.path)
            .field("allow_remote", &self.inner.allow_remote)
            .finish_non_exhaustive()
    }
}

/// Builds a [`StatusPage`]; every setting has a default.
///
/// ```
/// use std::time::Duration;
/// use observe_core::status::StatusPage;
/// let page = StatusPage::builder()
///     .service_name("checkout")
///     .path("/_status")
///     .slow_threshold(Duration::from_millis(50))
///     .recent_per_route(10)
///     .build();
/// assert_eq!(page.path(), "/_status");
/// ```
#[must_use]
pub struct StatusPageBuilder {
    metrics: Option<&'static Metrics>,
    store: StoreSource,
    allow_remote: bool,
    service: String,
    path: String,
    slow_threshold: Duration,
    per_route: usize,
    max_routes: usize,
    window: Duration,
    interval: Duration,
    export_queue: Option<QueueProbe>,
}

impl fmt::Debug for StatusPageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusPageBuilder")
            .field("service", &self.service)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Default for StatusPageBuilder {
    fn default() -> Self {
        StatusPageBuilder {
            metrics: None,
            store: StoreSource::Global,
            allow_remote: false,
            service: "unknown_service".to_owned(),
            path: DEFAULT_PATH.to_owned(),
            slow_threshold: Duration::from_millis(250),
            per_route: 5,
            max_routes: 100,
            window: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            export_queue: None,
        }
    }
}

impl StatusPageBuilder {
    /// The metrics to read (default: [`Metrics::global`]).
    ///
    /// ```
    /// let metrics = observe_core::metrics::Metrics::new(Default::default()).leak();
    /// let page = observe_core::status::StatusPage::builder().metrics(metrics).build();
    /// assert!(page.snapshot().rows.is_empty());
    /// ```
    pub fn metrics(mut self, metrics: &'static Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The span store to read recent requests and waterfalls from (default: the one
    /// [`crate::trace::install`] installs, looked up at each render).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use observe_core::trace::collector::SpanStore;
    /// let store = Arc::new(SpanStore::new(1000));
    /// let page = observe_core::status::StatusPage::builder().span_store(store).build();
    /// assert_eq!(page.snapshot().health.span_store_len, Some(0));
    /// ```
    pub fn span_store(mut self, store: Arc<SpanStore>) -> Self {
        self.store = StoreSource::Fixed(Some(store));
        self
    }

    /// Reads no span store: the page then shows RED and health only.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().no_span_store().build();
    /// assert_eq!(page.snapshot().health.span_store_len, None);
    /// ```
    pub fn no_span_store(mut self) -> Self {
        self.store = StoreSource::Fixed(None);
        self
    }

    /// Answers peers that are not on loopback too (default `false`: 403 for them). Only
    /// turn this on behind something that authenticates.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().allow_remote(true).build();
    /// let req = http::Request::get("/observe").body(()).unwrap();
    /// assert_eq!(page.handle(&req, Some("10.0.0.7:4000".parse().unwrap())).unwrap().status(), 200);
    /// ```
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// The service name shown in the title and used for spans without one.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().service_name("checkout").build();
    /// assert_eq!(page.snapshot().service, "checkout");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// The HTML path (default `/observe`); the JSON is at the same path plus `.json`.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().path("debug/status").build();
    /// assert_eq!((page.path(), page.json_path()), ("/debug/status", "/debug/status.json"));
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        self.path = path;
        self
    }

    /// Requests at least this long are listed as slow (default 250 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let page = observe_core::status::StatusPage::builder().slow_threshold(Duration::from_millis(50)).build();
    /// assert_eq!(page.recent().slow_threshold(), Duration::from_millis(50));
    /// ```
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = threshold;
        self
    }

    /// How many slow and how many failed requests are kept per route (default 5 each).
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().recent_per_route(20).build();
    /// # let _ = page;
    /// ```
    pub fn recent_per_route(mut self, n: usize) -> Self {
        self.per_route = n;
        self
    }

    /// How many routes keep recent requests (default 100; later ones share one entry).
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().max_routes(20).build();
    /// # let _ = page;
    /// ```
    pub fn max_routes(mut self, n: usize) -> Self {
        self.max_routes = n;
        self
    }

    /// The rate window and the spacing of its samples (default 60 s and 10 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let page = observe_core::status::StatusPage::builder()
    ///     .rate_window(Duration::from_secs(300), Duration::from_secs(15))
    ///     .build();
    /// assert!(page.snapshot().window < Duration::from_secs(300));
    /// ```
    pub fn rate_window(mut self, window: Duration, sample_interval: Duration) -> Self {
        self.window = window;
        self.interval = sample_interval;
        self
    }

    /// A probe reporting the span export queue's use, shown in the health section.
    ///
    /// ```
    /// use observe_core::status::{QueueUse, StatusPage};
    /// let page = StatusPage::builder()
    ///     .export_queue(std::sync::Arc::new(|| Some(QueueUse { len: 0, capacity: 2048 })))
    ///     .build();
    /// assert!(page.render_html().contains("0 / 2048"));
    /// ```
    pub fn export_queue(mut self, probe: QueueProbe) -> Self {
        self.export_queue = Some(probe);
        self
    }

    /// Builds the page and takes the first rate sample.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().build();
    /// assert_eq!(page.path(), "/observe");
    /// ```
    pub fn build(self) -> StatusPage {
        let metrics = self.metrics.unwrap_or_else(Metrics::global);
        let mut rates = RateWindow::new(self.window, self.interval);
        rates.sample(Instant::now(), &Reading::read(metrics));
        let json_path = format!("{}.json", self.path.trim_end_matches('/'));
        StatusPage {
            inner: Arc::new(Inner {
                metrics,
                store: self.store,
                allow_remote: self.allow_remote,
                service: self.service,
                path: self.path,
                json_path,
                recent: Arc::new(RecentRequests::new(
                    self.per_route,
                    self.max_routes,
                    self.slow_threshold,
                )),
                rates: Mutex::new(rates),
                export_queue: self.export_queue,
            }),
        }
    }
}

/// The page [`init`](crate::init::init) installed (when the config enables it), served by
/// `observe_axum::metrics_router()` and [`metrics::serve`](crate::metrics::serve).
///
/// ```
/// // Nothing installed in this process: the routers serve no status page.
/// assert!(observe_core::status::global().is_none());
/// ```
#[inline]
pub fn global() -> Option<&'static StatusPage> {
    GLOBAL.get()
}

/// Installs `page` as the process's page; `false` when one was installed already.
///
/// ```
/// use observe_core::status::{self, StatusPage};
/// assert!(status::set_global(StatusPage::builder().no_span_store().build()));
/// assert!(!status::set_global(StatusPage::builder().build()));
/// assert!(status::global().is_some());
/// ```
pub fn set_global(page: StatusPage) -> bool {
    GLOBAL.set(page).is_ok()
}

static GLOBAL: std::sync::OnceLock<StatusPage> = std::sync::OnceLock::new();

impl StatusPage {
    /// A builder with defaults.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().build();
    /// assert_eq!(page.path(), "/observe");
    /// ```
    pub fn builder() -> StatusPageBuilder {
        StatusPageBuilder::default()
    }

    /// The page `config` asks for: `None` unless `config.status_page` is set (code or
    /// `OBSERVE_STATUS_PAGE`), else a loopback-only page named after `config.service_name`
    /// reading the global metrics and span store.
    ///
    /// ```
    /// use observe_core::config::Config;
    /// use observe_core::status::StatusPage;
    /// assert!(StatusPage::from_config(&Config::default()).is_none());
    /// assert!(StatusPage::from_config(&Config::default().status_page(true)).is_some());
    /// ```
    pub fn from_config(config: &Config) -> Option<StatusPage> {
        if !config.status_page {
            return None;
        }
        let mut b = StatusPage::builder().export_queue(Arc::new(|| {
            crate::trace::export_queue_use().map(|(len, capacity)| QueueUse { len, capacity })
        }));
        if let Some(name) = &config.service_name {
            b = b.service_name(name.clone());
        }
        Some(b.build())
    }

    /// The HTML path.
    ///
    /// ```
    /// assert_eq!(observe_core::status::StatusPage::builder().build().path(), "/observe");
    /// ```
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The JSON path (the HTML path plus `.json`).
    ///
    /// ```
    /// assert_eq!(observe_core::status::StatusPage::builder().build().json_path(), "/observe.json");
    /// ```
    pub fn json_path(&self) -> &str {
        &self.inner.json_path
    }

    /// The rings of recent slow and failed requests. Adding `page.recent().processor()` to
    /// the tracer provider feeds them directly, and the page then no longer scans the span
    /// store for new requests (see [`RecentRequests::processor`]).
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().build();
    /// assert!(page.recent().is_empty());
    /// ```
    pub fn recent(&self) -> &Arc<RecentRequests> {
        &self.inner.recent
    }

    fn store(&self) -> Option<Arc<SpanStore>> {
        match &self.inner.store {
            StoreSource::Global => collector::global(),
            StoreSource::Fixed(s) => s.clone(),
        }
    }

    /// Takes a rate sample (when one is due) and moves newly stored slow or failed requests
    /// into the rings. Every render does this; [`StatusPage::spawn_sampler`] does it
    /// periodically so the window and the rings stay current between views.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().no_span_store().build();
    /// page.tick();
    /// ```
    pub fn tick(&self) {
        let reading = Reading::read(self.inner.metrics);
        self.sample(Instant::now(), &reading);
        if !self.inner.recent.fed_directly() {
            if let Some(store) = self.store() {
                self.inner.recent.ingest(&store);
            }
        }
    }

    fn sample(&self, now: Instant, reading: &Reading) {
        self.inner
            .rates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sample(now, reading);
    }

    /// Everything the page shows, read now.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder()
    ///     .metrics(observe_core::metrics::Metrics::new(Default::default()).leak())
    ///     .service_name("checkout")
    ///     .build();
    /// let snap = page.snapshot();
    /// assert_eq!(snap.service, "checkout");
    /// assert!(snap.rows.is_empty());
    /// ```
    pub fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let reading = Reading::read(self.inner.metrics);
        let (rows, window) = {
            let rates = self
                .inner
                .rates
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (base, elapsed) = rates.baseline(now);
            let empty = Default::default();
            (reading.rows(base.unwrap_or(&empty), elapsed), elapsed)
        };
        self.sample(now, &reading);
        let store = self.store();
        match &store {
            Some(store) if !self.inner.recent.fed_directly() => {
                self.inner.recent.ingest(store);
            }
            _ => {}
        }
        let recent = model::with_waterfalls(self.inner.recent.routes(), |id| {
            let spans = store.as_ref()?.trace(id);
            (!spans.is_empty()).then(|| Waterfall::from_spans(spans, &self.inner.service))
        });
        let queue = self.inner.export_queue.as_ref().and_then(|p| p());
        StatusSnapshot {
            service: self.inner.service.clone(),
            generated_at: SystemTime::now(),
            window,
            slow_threshold: self.inner.recent.slow_threshold(),
            rows,
            recent,
            health: model::health(self.inner.metrics, queue, store.map(|s| s.len())),
        }
    }

    /// The page as one self-contained HTML document.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().service_name("<b>x</b>").build();
    /// let html = page.render_html();
    /// assert!(html.starts_with("<!doctype html>"));
    /// assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"));
    /// ```
    pub fn render_html(&self) -> String {
        let json_href = self
            .inner
            .json_path
            .rsplit('/')
            .next()
            .unwrap_or("observe.json");
        html::render(&self.snapshot(), json_href)
    }

    /// The same data as JSON.
    ///
    /// ```
    /// let page = observe_core::status::StatusPage::builder().build();
    /// let v: serde_json::Value = serde_json::from_str(&page.render_json()).unwrap();
    /// assert!(v["routes"].is_array());
    /// ```
    pub fn render_json(&self) -> String {
        json::render(&self.snapshot())
    }

    /// Answers a request for the page: `Some` for the HTML and JSON paths (any query string is
    /// ignored), `None` for any other path so the caller routes it on.
    ///
    /// `remote_addr` is the peer's address. Unless [`StatusPageBuilder::allow_remote`] was
    /// set, a peer that is not on loopback — or an unknown peer (`None`) — gets 403. Methods
    /// other than `GET` and `HEAD` get 405.
    ///
    /// ```
    /// use observe_core::status::StatusPage;
    /// let page = StatusPage::builder().build();
    /// let local = Some("[::1]:40000".parse().unwrap());
    /// let json = page.handle(&http::Request::get("/observe.json?x=1").body(()).unwrap(), local).unwrap();
    /// assert_eq!(json.headers()["content-type"], "application/json");
    /// let post = http::Request::post("/observe").body(()).unwrap();
    /// assert_eq!(page.handle(&post, local).unwrap().status(), 405);
    /// assert_eq!(page.handle(&http::Request::get("/observe").body(()).unwrap(), None).unwrap().status(), 403);
    /// ```
    pub fn handle<B>(
        &self,
        request: &Request<B>,
        remote_addr: Option<SocketAddr>,
    ) -> Option<Response<Full<Bytes>>> {
        let path = request.uri().path();
        let is_json = path == self.inner.json_path;
        if !is_json && path != self.inner.path {
            return None;
        }
        if !self.inner.allow_remote && !remote_addr.is_some_and(is_loopback) {
            return Some(plain(
                StatusCode::FORBIDDEN,
                "the status page answers loopback peers only\n",
            ));
        }
        let head = request.method() == Method::HEAD;
        if request.method() != Method::GET && !head {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(r);
        }
        let (body, content_type) = if is_json {
            (self.render_json(), "application/json")
        } else {
            (self.render_html(), "text/html; charset=utf-8")
        };
        let mut response = Response::new(Full::new(if head {
            Bytes::new()
        } else {
            Bytes::from(body)
        }));
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        secure_headers(h);
        Some(response)
    }

    /// Runs [`StatusPage::tick`] every `interval` on a background thread, so rates and the
    /// recent-request rings stay current between page views. The thread stops when the
    /// returned handle or every clone of the page is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// let page = observe_core::status::StatusPage::builder().no_span_store().build();
    /// let sampler = page.spawn_sampler(Duration::from_secs(10)).unwrap();
    /// drop(sampler); // stops and joins the thread
    /// ```
    pub fn spawn_sampler(&self, interval: Duration) -> std::io::Result<SamplerHandle> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let interval = interval.max(Duration::from_millis(10));
        let thread = std::thread::Builder::new()
            .name("observe-status".into())
            .spawn(move || loop {
                std::thread::park_timeout(interval);
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                match weak.upgrade() {
                    Some(inner) => StatusPage { inner }.tick(),
                    None => return,
                }
            })?;
        Ok(SamplerHandle {
            stop,
            thread: Some(thread),
        })
    }
}

/// Stops the sampler thread of [`StatusPage::spawn_sampler`] when dropped.
///
/// ```
/// # use std::time::Duration;
/// let page = observe_core::status::StatusPage::builder().no_span_store().build();
/// let handle = page.spawn_sampler(Duration::from_secs(10)).unwrap();
/// drop(handle); // the thread stops now, not at the next tick
/// ```
#[derive(Debug)]
pub struct SamplerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn is_loopback(addr: SocketAddr) -> bool {
    // `::ffff:127.0.0.1` is how a dual-stack listener sees an IPv4 loopback peer.
    addr.ip().to_canonical().is_loopback()
}

fn secure_headers(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // No script at all; inline styles only; not frameable.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure_headers(r.headers_mut());
    r
}
