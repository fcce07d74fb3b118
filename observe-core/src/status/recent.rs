//! The bounded per-route rings of recent slow and failed requests.
//!
//! Fed with finished, sampled server spans (a span exists only for sampled requests), either
//! by [`RecentRequests::ingest`] reading the in-process [`SpanStore`] or by the span processor
//! from [`RecentRequests::processor`]. Memory is bounded whatever the traffic: at most
//! `max_routes` routes (later routes share one `(other routes)` entry), and per route at most
//! `per_route` slow and `per_route` failed requests, each a small fixed-size record whose
//! strings are truncated. Span trees are not copied: the page looks them up in the store when
//! it renders.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::context::{SpanId, TraceId};
use crate::trace::collector::SpanStore;

/// Longest route or error text kept per request, in bytes.
pub(crate) const MAX_TEXT: usize = 200;
/// The route entry that collects requests once `max_routes` routes are held.
///
/// ```
/// assert_eq!(observe_core::status::OTHER_ROUTES, "(other routes)");
/// ```
pub const OTHER_ROUTES: &str = "(other routes)";

/// One slow or failed request, as kept in a ring.
///
/// Only what is safe to show: the route template (never the path or query), the status and
/// error type, timing and ids. No header, query string or body is ever read into it.
///
/// Made from spans by [`RecentRequest::from_span`] (see there).
///
/// ```
/// # use observe_core::status::RecentRequest;
/// fn is_listed(r: &RecentRequest) -> bool { r.slow || r.failed }
/// # let _ = is_listed;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecentRequest {
    /// The request's trace.
    pub trace_id: TraceId,
    /// The server span of the request.
    pub span_id: SpanId,
    /// `http.route` (or `rpc.method`, else the span name), at most 200 bytes.
    pub route: String,
    /// The span name (`GET /users/{id}`), at most 200 bytes.
    pub name: String,
    /// `http.response.status_code` (or a numeric `rpc.grpc.status_code`) when one was sent.
    pub status_code: Option<i64>,
    /// The gRPC status by name (`rpc.response.status_code`, e.g. `UNAVAILABLE`), at most 200
    /// bytes.
    pub grpc_status: Option<String>,
    /// `error.type` or the span's error description, at most 200 bytes.
    pub error: Option<String>,
    /// How long the request took.
    pub duration: Duration,
    /// When it finished.
    pub end: SystemTime,
    /// Slower than the page's threshold.
    pub slow: bool,
    /// Failed: error status, a 5xx, or an `error.type`.
    pub failed: bool,
}

impl RecentRequest {
    /// The request behind a finished server span, or `None` for any other span (client,
    /// internal, unsampled) — only requests served by this process are listed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use observe_core::status::RecentRequest;
    /// use observe_core::otel::opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
    /// use observe_core::otel::opentelemetry::KeyValue;
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// use observe_core::trace::collector::SpanStore;
    ///
    /// let store = std::sync::Arc::new(SpanStore::new(10));
    /// let provider = SdkTracerProvider::builder().with_span_processor(store.processor()).build();
    /// let tracer = provider.tracer("doc");
    /// let mut span = tracer.span_builder("GET /users/{id}")
    ///     .with_kind(SpanKind::Server)
    ///     .with_attributes([KeyValue::new("http.route", "/users/{id}"),
    ///                       KeyValue::new("http.response.status_code", 503)])
    ///     .start(&tracer);
    /// let trace_id = span.span_context().trace_id();
    /// span.end();
    /// let data = &store.trace(trace_id.into())[0];
    /// let req = RecentRequest::from_span(data, Duration::from_secs(1)).unwrap();
    /// assert_eq!((req.route.as_str(), req.status_code, req.failed, req.slow),
    ///            ("/users/{id}", Some(503), true, false));
    /// ```
    pub fn from_span(span: &SpanData, slow_threshold: Duration) -> Option<RecentRequest> {
        if span.span_kind != SpanKind::Server || !span.span_context.is_sampled() {
            return None;
        }
        let attr = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| &kv.value)
        };
        let route = match attr("http.route").or_else(|| attr("rpc.method")) {
            Some(v) => v.as_str().into_owned(),
            None => span.name.to_string(),
        };
        let status_code = ["http.response.status_code", "rpc.grpc.status_code"]
            .iter()
            .find_map(|k| match attr(k) {
                Some(Value::I64(n)) => Some(*n),
                Some(Value::String(s)) => s.as_str().parse().ok(),
                _ => None,
            });
        let grpc_status =
            attr("rpc.response.status_code").map(|v| truncate(v.as_str().into_owned()));
        let error = match (&span.status, attr("error.type")) {
            (_, Some(v)) => Some(v.as_str().into_owned()),
            (Status::Error { description }, None) => Some(if description.is_empty() {
                "error".to_owned()
            } else {
                description.to_string()
            }),
            _ => None,
        };
        let http_5xx =
            attr("http.response.status_code").is_some() && status_code.is_some_and(|c| c >= 500);
        let failed = error.is_some() || http_5xx;
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let slow = duration >= slow_threshold;
        Some(RecentRequest {
            trace_id: span.span_context.trace_id().into(),
            span_id: span.span_context.span_id().into(),
            route: truncate(route),
            name: truncate(span.name.to_string()),
            status_code,
            grpc_status,
            error: error.map(truncate),
            duration,
            end: span.end_time,
            slow,
            failed,
        })
    }
}

/// Cuts `s` to at most [`MAX_TEXT`] bytes on a character boundary.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[derive(Debug, Default)]
struct RouteRing {
    slow: VecDeque<RecentRequest>,
    failed: VecDeque<RecentRequest>,
}

/// Keeps the `cap` most recent (by end time) requests, once each.
fn push_ring(ring: &mut VecDeque<RecentRequest>, req: &RecentRequest, cap: usize) -> bool {
    if ring.iter().any(|r| r.span_id == req.span_id) {
        return false;
    }
    if ring.len() >= cap {
        match ring.front() {
            Some(oldest) if oldest.end >= req.end => return false,
            _ => {
                ring.pop_front();
            }
        }
    }
    // Ordered oldest first; most inserts are the newest, so search from the back.
    let at = ring
        .iter()
        .rposition(|r| r.end <= req.end)
        .map_or(0, |i| i + 1);
    ring.insert(at, req.clone());
    true
}

/// Bounded per-route rings of the most recent slow and failed requests.
///
/// ```
/// use std::time::Duration;
/// use observe_core::status::RecentRequests;
///
/// let recent = RecentRequests::new(5, 100, Duration::from_millis(250));
/// assert_eq!(recent.len(), 0);
/// ```
#[derive(Debug)]
pub struct RecentRequests {
    per_route: usize,
    max_routes: usize,
    slow_threshold: Duration,
    routes: Mutex<HashMap<String, RouteRing>>,
    // Set once a processor feeds the rings: reading the store is then unnecessary.
    fed_directly: AtomicBool,
}

impl RecentRequests {
    /// Rings of `per_route` slow and `per_route` failed requests for each of at most
    /// `max_routes` routes (both at least 1); requests at least `slow_threshold` long are slow.
    pub fn new(per_route: usize, max_routes: usize, slow_threshold: Duration) -> Self {
        RecentRequests {
            per_route: per_route.max(1),
            max_routes: max_routes.max(1),
            slow_threshold,
            routes: Mutex::new(HashMap::new()),
            fed_directly: AtomicBool::new(false),
        }
    }

    /// The latency from which a request counts as slow.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// let r = RecentRequests::new(5, 100, Duration::from_millis(250));
    /// assert_eq!(r.slow_threshold(), Duration::from_millis(250));
    /// ```
    pub fn slow_threshold(&self) -> Duration {
        self.slow_threshold
    }

    /// Keeps `req` if it is slow or failed and among the most recent of its route; returns
    /// whether it was kept. A request already held (same span) is not added twice, so the same
    /// spans may be offered again.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// let r = RecentRequests::new(5, 100, Duration::from_millis(250));
    /// // Requests come from spans: see `RecentRequest::from_span` and `RecentRequests::offer_span`.
    /// assert!(r.routes().is_empty());
    /// ```
    pub fn offer(&self, req: &RecentRequest) -> bool {
        if !req.slow && !req.failed {
            return false;
        }
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if routes.contains_key(&req.route) || routes.len() < self.max_routes {
            req.route.as_str()
        } else if routes.contains_key(OTHER_ROUTES) || routes.len() <= self.max_routes {
            // One extra entry collects every route past the limit.
            OTHER_ROUTES
        } else {
            return false;
        };
        let ring = match routes.get_mut(key) {
            Some(ring) => ring,
            None => routes.entry(key.to_owned()).or_default(),
        };
        let mut kept = false;
        if req.slow {
            kept |= push_ring(&mut ring.slow, req, self.per_route);
        }
        if req.failed {
            kept |= push_ring(&mut ring.failed, req, self.per_route);
        }
        kept
    }

    /// Offers the request behind a finished span (see [`RecentRequest::from_span`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// use observe_core::otel::opentelemetry::trace::{Span, SpanKind, Status, Tracer, TracerProvider};
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// use observe_core::trace::collector::SpanStore;
    /// let store = std::sync::Arc::new(SpanStore::new(10));
    /// let provider = SdkTracerProvider::builder().with_span_processor(store.processor()).build();
    /// let tracer = provider.tracer("doc");
    /// let mut span = tracer.span_builder("POST /pay").with_kind(SpanKind::Server).start(&tracer);
    /// span.set_status(Status::error("card declined"));
    /// let trace_id = span.span_context().trace_id();
    /// span.end();
    /// let r = RecentRequests::new(5, 100, Duration::from_secs(1));
    /// assert!(r.offer_span(&store.trace(trace_id.into())[0]));
    /// assert_eq!(r.routes()[0].failed[0].error.as_deref(), Some("card declined"));
    /// ```
    pub fn offer_span(&self, span: &SpanData) -> bool {
        match RecentRequest::from_span(span, self.slow_threshold) {
            Some(req) => self.offer(&req),
            None => false,
        }
    }

    /// Reads the slow or failed traces from `store` and offers their server spans. Cheap
    /// when nothing is slow or failed: only those traces' spans are looked at.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// use observe_core::trace::collector::SpanStore;
    /// let r = RecentRequests::new(5, 100, Duration::from_secs(1));
    /// assert_eq!(r.ingest(&SpanStore::new(16)), 0);
    /// ```
    pub fn ingest(&self, store: &SpanStore) -> usize {
        let mut kept = 0;
        for t in store.recent_traces(store.len()) {
            // The trace's extent bounds each of its spans, so a fast trace with no error
            // status holds no slow request and (the HTTP layer gives every 5xx an error
            // status) no failed one.
            if !t.error && t.duration < self.slow_threshold {
                continue;
            }
            for span in store.trace(t.trace_id) {
                kept += usize::from(self.offer_span(&span));
            }
        }
        kept
    }

    /// Requests held, counting a request that is both slow and failed once per ring.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// assert_eq!(RecentRequests::new(1, 1, Duration::ZERO).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.values().map(|r| r.slow.len() + r.failed.len()).sum()
    }

    /// Whether nothing is held.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// assert!(RecentRequests::new(1, 1, Duration::ZERO).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route with its rings, newest request first, routes sorted by name.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// assert!(RecentRequests::new(1, 1, Duration::ZERO).routes().is_empty());
    /// ```
    pub fn routes(&self) -> Vec<RouteRequests> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<RouteRequests> = routes
            .iter()
            .map(|(route, ring)| RouteRequests {
                route: route.clone(),
                slow: ring.slow.iter().rev().cloned().collect(),
                failed: ring.failed.iter().rev().cloned().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.route.cmp(&b.route));
        out
    }

    /// A span processor that offers every finished span to these rings, for a tracer provider
    /// that should feed them directly (no request is missed even when the span store evicts
    /// it before the page reads it). Once one is made, [`RecentRequests::fed_directly`] is
    /// true and the status page stops reading the store for new requests (which holds the
    /// store's lock for a few milliseconds with thousands of spans), so install it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use observe_core::status::RecentRequests;
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// let recent = Arc::new(RecentRequests::new(5, 100, Duration::from_millis(250)));
    /// let provider = SdkTracerProvider::builder().with_span_processor(recent.processor()).build();
    /// # drop(provider);
    /// ```
    pub fn processor(self: &Arc<Self>) -> RecentProcessor {
        self.fed_directly.store(true, Ordering::Release);
        RecentProcessor(Arc::clone(self))
    }

    /// Whether a processor from [`RecentRequests::processor`] feeds these rings.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use observe_core::status::RecentRequests;
    /// let recent = Arc::new(RecentRequests::new(5, 100, Duration::ZERO));
    /// assert!(!recent.fed_directly());
    /// let _processor = recent.processor();
    /// assert!(recent.fed_directly());
    /// ```
    pub fn fed_directly(&self) -> bool {
        self.fed_directly.load(Ordering::Acquire)
    }
}

/// One route's recent slow and failed requests, newest first.
///
/// ```
/// # use std::time::Duration;
/// # use observe_core::status::RecentRequests;
/// let routes = RecentRequests::new(5, 100, Duration::from_millis(250)).routes();
/// assert!(routes.iter().all(|r| r.slow.len() <= 5 && r.failed.len() <= 5));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteRequests {
    /// The route.
    pub route: String,
    /// Slow requests, newest first.
    pub slow: Vec<RecentRequest>,
    /// Failed requests, newest first.
    pub failed: Vec<RecentRequest>,
}

/// The span processor returned by [`RecentRequests::processor`].
///
/// ```
/// # use std::{sync::Arc, time::Duration};
/// # use observe_core::status::{RecentProcessor, RecentRequests};
/// let p: RecentProcessor = Arc::new(RecentRequests::new(5, 100, Duration::ZERO)).processor();
/// # drop(p);
/// ```
#[derive(Debug)]
pub struct RecentProcessor(Arc<RecentRequests>);

impl SpanProcessor for RecentProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.offer_span(&span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
