//! A trace's spans laid out as a waterfall, with each service's share of the latency.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

use super::recent::truncate;

/// Spans shown per waterfall; a trace with more is cut (and says so).
///
/// ```
/// assert_eq!(observe_core::status::MAX_WATERFALL_SPANS, 64);
/// ```
pub const MAX_WATERFALL_SPANS: usize = 64;
/// Event messages shown per span.
const MAX_EVENTS: usize = 3;

/// One span of a [`Waterfall`].
///
/// ```
/// use std::sync::Arc;
/// use observe_core::status::Waterfall;
/// use observe_core::trace::collector::SpanStore;
/// use observe_core::otel::opentelemetry::trace::{Tracer, TracerProvider};
/// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let store = Arc::new(SpanStore::new(16));
/// let provider = SdkTracerProvider::builder().with_span_processor(store.processor()).build();
/// let tracer = provider.tracer("inventory");
/// let trace_id = tracer.in_span("GET /stock", |cx| {
///     use observe_core::otel::opentelemetry::trace::TraceContextExt;
///     tracer.in_span("db.query", |_| {});
///     cx.span().span_context().trace_id()
/// });
/// let w = Waterfall::from_spans(store.trace(trace_id.into()), "shop");
/// assert_eq!(w.spans[1].name, "db.query");
/// assert_eq!(w.spans[1].depth, 1);
/// assert_eq!(w.services[0].service, "inventory");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WaterfallSpan {
    /// Span name, at most 200 bytes.
    pub name: String,
    /// The service the span belongs to (see [`Waterfall::from_spans`]).
    pub service: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: &'static str,
    /// Nesting depth below the earliest span's tree (0 for roots).
    pub depth: usize,
    /// Start, relative to the earliest span's start.
    pub offset: Duration,
    /// Duration.
    pub duration: Duration,
    /// The span has status `Error`.
    pub error: bool,
    /// Messages of its first events (log lines recorded on the span), at most 200 bytes
    /// each; attributes of events are never shown.
    pub events: Vec<String>,
}

/// How much of a trace's time one service spent itself (not waiting on children).
///
/// ```
/// use std::sync::Arc;
/// use observe_core::status::Waterfall;
/// use observe_core::trace::collector::SpanStore;
/// use observe_core::otel::opentelemetry::trace::{Tracer, TracerProvider};
/// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let store = Arc::new(SpanStore::new(16));
/// let provider = SdkTracerProvider::builder().with_span_processor(store.processor()).build();
/// let tracer = provider.tracer("inventory");
/// let trace_id = tracer.in_span("GET /stock", |cx| {
///     use observe_core::otel::opentelemetry::trace::TraceContextExt;
///     tracer.in_span("db.query", |_| {});
///     cx.span().span_context().trace_id()
/// });
/// let w = Waterfall::from_spans(store.trace(trace_id.into()), "shop");
/// assert_eq!(w.spans[1].name, "db.query");
/// assert_eq!(w.spans[1].depth, 1);
/// assert_eq!(w.services[0].service, "inventory");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServiceShare {
    /// The service.
    pub service: String,
    /// The sum of its spans' self time (duration minus time covered by child spans).
    pub self_time: Duration,
    /// `self_time` over the sum of all spans' self time, 0..=1.
    pub share: f64,
}

/// A trace's spans, earliest first, with depth and offsets, and per-service latency shares.
///
/// ```
/// use std::sync::Arc;
/// use observe_core::status::Waterfall;
/// use observe_core::trace::collector::SpanStore;
/// use observe_core::otel::opentelemetry::trace::{Tracer, TracerProvider};
/// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let store = Arc::new(SpanStore::new(16));
/// let provider = SdkTracerProvider::builder().with_span_processor(store.processor()).build();
/// let tracer = provider.tracer("inventory");
/// let trace_id = tracer.in_span("GET /stock", |cx| {
///     use observe_core::otel::opentelemetry::trace::TraceContextExt;
///     tracer.in_span("db.query", |_| {});
///     cx.span().span_context().trace_id()
/// });
/// let w = Waterfall::from_spans(store.trace(trace_id.into()), "shop");
/// assert_eq!(w.spans[1].name, "db.query");
/// assert_eq!(w.spans[1].depth, 1);
/// assert_eq!(w.services[0].service, "inventory");
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
#[non_exhaustive]
pub struct Waterfall {
    /// The spans (at most [`MAX_WATERFALL_SPANS`]), earliest start first.
    pub spans: Vec<WaterfallSpan>,
    /// Services by descending share.
    pub services: Vec<ServiceShare>,
    /// From the earliest start to the latest end.
    pub total: Duration,
    /// More spans were stored than shown.
    pub truncated: bool,
}

fn kind_str(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn since(t: SystemTime, t0: SystemTime) -> Duration {
    t.duration_since(t0).unwrap_or_default()
}

impl Waterfall {
    /// Lays out the spans of one trace (any order).
    ///
    /// A span's service is its `service.name` attribute if it has one; otherwise a span with
    /// a parent in the trace that is not a server span belongs to its parent's service; a
    /// server span or a root is named by its instrumentation scope when that is not
    /// `observe`'s own, else by `default_service`.
    ///
    /// ```
    /// use observe_core::status::Waterfall;
    /// let w = Waterfall::from_spans(Vec::new(), "checkout");
    /// assert!(w.spans.is_empty() && w.services.is_empty());
    /// ```
    pub fn from_spans(mut spans: Vec<SpanData>, default_service: &str) -> Waterfall {
        spans.sort_by_key(|s| s.start_time);
        let truncated = spans.len() > MAX_WATERFALL_SPANS;
        spans.truncate(MAX_WATERFALL_SPANS);
        let Some(t0) = spans.first().map(|s| s.start_time) else {
            return Waterfall::default();
        };
        let parent_of = |i: usize| {
            let pid = spans[i].parent_span_id;
            spans.iter().position(|p| p.span_context.span_id() == pid)
        };
        let parents: Vec<Option<usize>> = (0..spans.len()).map(parent_of).collect();

        // Depth and service follow the parent chain; parents start no later than children, so
        // with spans sorted by start most parents come first, but resolve recursively to be
        // safe (bounded by the span count against cycles).
        let mut depth = vec![usize::MAX; spans.len()];
        let mut service: Vec<Option<String>> = vec![None; spans.len()];
        for i in 0..spans.len() {
            resolve(
                i,
                &spans,
                &parents,
                &mut depth,
                &mut service,
                default_service,
                0,
            );
        }

        let end = spans.iter().map(|s| s.end_time).max().unwrap_or(t0);
        let mut shares: Vec<ServiceShare> = Vec::new();
        let mut out = Vec::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            let duration = s.end_time.duration_since(s.start_time).unwrap_or_default();
            let svc = service[i]
                .clone()
                .unwrap_or_else(|| default_service.to_owned());
            let own = self_time(i, &spans, &parents);
            match shares.iter_mut().find(|x| x.service == svc) {
                Some(x) => x.self_time += own,
                None => shares.push(ServiceShare {
                    service: svc.clone(),
                    self_time: own,
                    share: 0.0,
                }),
            }
            out.push(WaterfallSpan {
                name: truncate(s.name.to_string()),
                service: svc,
                kind: kind_str(&s.span_kind),
                depth: depth[i].min(spans.len()),
                offset: since(s.start_time, t0),
                duration,
                error: matches!(s.status, Status::Error { .. }),
                events: s
                    .events
                    .iter()
                    .take(MAX_EVENTS)
                    .map(|e| truncate(e.name.to_string()))
                    .collect(),
            });
        }
        let all: Duration = shares.iter().map(|s| s.self_time).sum();
        for s in &mut shares {
            s.share = if all.is_zero() {
                0.0
            } else {
                s.self_time.as_secs_f64() / all.as_secs_f64()
            };
        }
        shares.sort_by_key(|s| std::cmp::Reverse(s.self_time));
        Waterfall {
            spans: out,
            services: shares,
            total: since(end, t0),
            truncated,
        }
    }
}

fn resolve(
    i: usize,
    spans: &[SpanData],
    parents: &[Option<usize>],
    depth: &mut [usize],
    service: &mut [Option<String>],
    default_service: &str,
    hops: usize,
) {
    if depth[i] != usize::MAX {
        return;
    }
    let s = &spans[i];
    let parent = parents[i].filter(|&p| p != i && hops < spans.len());
    if let Some(p) = parent {
        resolve(p, spans, parents, depth, service, default_service, hops + 1);
    }
    depth[i] = parent.map_or(0, |p| depth[p].saturating_add(1));
    let own = s
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "service.name")
        .map(|kv| truncate(kv.value.as_str().into_owned()));
    service[i] = Some(match (own, parent) {
        (Some(own), _) => own,
        (None, Some(p)) if s.span_kind != SpanKind::Server => service[p]
            .clone()
            .unwrap_or_else(|| default_service.to_owned()),
        _ => {
            let scope = s.instrumentation_scope.name();
            if scope.is_empty() || scope == "observe" {
                default_service.to_owned()
            } else {
                truncate(scope.to_owned())
            }
        }
    });
}

/// The span's duration minus the union of its children's intervals (clipped to the span).
fn self_time(i: usize, spans: &[SpanData], parents: &[Option<usize>]) -> Duration {
    let s = &spans[i];
    let (start, end) = (s.start_time, s.end_time.max(s.start_time));
    let mut children: Vec<(SystemTime, SystemTime)> = parents
        .iter()
        .enumerate()
        .filter(|&(c, p)| c != i && *p == Some(i))
        .map(|(c, _)| {
            let c = &spans[c];
            (c.start_time.clamp(start, end), c.end_time.clamp(start, end))
        })
        .filter(|(a, b)| a < b)
        .collect();
    children.sort();
    let mut covered = Duration::ZERO;
    let mut cur: Option<(SystemTime, SystemTime)> = None;
    for (a, b) in children {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += since(cb, ca);
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = cur {
        covered += since(cb, ca);
    }
    since(end, start).saturating_sub(covered)
}
