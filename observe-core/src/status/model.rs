//! The data behind the page: RED rows from the metrics' histograms, rates over a sliding
//! window of bounded samples, and the SDK's own health.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::metrics::{ErrorType, Metrics, Series, SeriesSnapshot, BUCKETS, DURATION_BUCKETS};

use super::quantile::histogram_quantile;
use super::recent::RouteRequests;
use super::waterfall::Waterfall;
use crate::context::TraceId;

/// Which instrument a row comes from.
///
/// ```
/// # use observe_core::status::RowKind;
/// assert!(RowKind::HttpServer < RowKind::HttpClient, "served requests are listed first");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKind {
    /// Requests this process served over HTTP, per method and route.
    HttpServer,
    /// gRPC calls this process served, per method.
    GrpcServer,
    /// HTTP requests this process made, per method and server address.
    HttpClient,
    /// gRPC calls this process made, per method.
    GrpcClient,
}

impl RowKind {
    /// A short name: `http_server`, `grpc_server`, `http_client`, `grpc_client`.
    ///
    /// ```
    /// # use observe_core::status::RowKind;
    /// assert_eq!(RowKind::GrpcServer.as_str(), "grpc_server");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::HttpServer => "http_server",
            RowKind::GrpcServer => "grpc_server",
            RowKind::HttpClient => "http_client",
            RowKind::GrpcClient => "grpc_client",
        }
    }
}

/// The row name of requests that matched no route.
///
/// ```
/// assert_eq!(observe_core::status::UNMATCHED, "(unmatched)");
/// ```
pub const UNMATCHED: &str = "(unmatched)";
/// The row name of the overflow series (past the cardinality limit).
///
/// ```
/// assert_eq!(observe_core::status::OVERFLOW, "(overflow)");
/// ```
pub const OVERFLOW: &str = "(overflow)";
/// The row name of client calls without a server address.
///
/// ```
/// assert_eq!(observe_core::status::UNKNOWN_SERVER, "(unknown)");
/// ```
pub const UNKNOWN_SERVER: &str = "(unknown)";

/// Identifies a row: kind, method (`GET`; empty for gRPC) and name. Every part is a
/// `&'static str` from the metrics' label interning, so keys are cheap to keep in samples.
pub(crate) type RowKey = (RowKind, &'static str, &'static str);

/// Totals of one row at one instant: requests, errors, cancelled.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    count: u64,
    errors: u64,
    cancelled: u64,
}

/// RED for one route, gRPC method or outgoing target.
///
/// `rate` and `error_ratio` are over [`StatusSnapshot::window`]; counts, the latency
/// quantiles and the buckets are over the life of the process, read from the same histograms
/// that `/metrics` serves.
///
/// ```
/// use std::time::Duration;
/// use observe_core::metrics::{HttpMethod, HttpServerLabels, Metrics, Route, UrlScheme};
/// use observe_core::status::{RowKind, StatusPage};
///
/// let metrics = Metrics::new(Default::default()).leak();
/// let page = StatusPage::builder().metrics(metrics).no_span_store().build();
/// for status in [200, 200, 200, 503] {
///     metrics.http_server().record(
///         HttpServerLabels { method: HttpMethod::Get, scheme: UrlScheme::Http,
///             route: Some(Route::intern("/cart")), status, error: None },
///         Duration::from_millis(30), None);
/// }
/// let row = &page.snapshot().rows[0];
/// assert_eq!((row.kind, row.method, row.name), (RowKind::HttpServer, "GET", "/cart"));
/// assert_eq!((row.count, row.errors, row.error_ratio), (4, 1, Some(0.25)));
/// assert!(row.p50.unwrap() > 0.025 && row.p50.unwrap() <= 0.05);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteRow {
    /// The instrument.
    pub kind: RowKind,
    /// HTTP method (`GET`, `_OTHER`); empty for gRPC.
    pub method: &'static str,
    /// Route template, gRPC method, server address, or [`UNMATCHED`] / [`OVERFLOW`].
    pub name: &'static str,
    /// Requests since the process started.
    pub count: u64,
    /// Failed requests (an `error_type` other than `cancelled`) since start.
    pub errors: u64,
    /// Requests cancelled before a response (`error_type="cancelled"`) since start.
    pub cancelled: u64,
    /// Requests per second over the window.
    pub rate: f64,
    /// Failed over all requests in the window; `None` when the window saw none.
    pub error_ratio: Option<f64>,
    /// Median latency, seconds (`None` without observations).
    pub p50: Option<f64>,
    /// 90th percentile latency, seconds.
    pub p90: Option<f64>,
    /// 99th percentile latency, seconds.
    pub p99: Option<f64>,
    /// Mean latency, seconds.
    pub mean: Option<f64>,
    /// Non-cumulative bucket counts; index `i` is `le = DURATION_BUCKETS[i]`, the last `+Inf`.
    pub buckets: [u64; BUCKETS],
}

/// An export queue's fill level.
///
/// ```
/// use std::sync::Arc;
/// use observe_core::status::{QueueUse, StatusPage};
/// let page = StatusPage::builder()
///     .export_queue(Arc::new(|| Some(QueueUse { len: 3, capacity: 2048 })))
///     .build();
/// assert_eq!(page.snapshot().health.export_queue, Some(QueueUse { len: 3, capacity: 2048 }));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueueUse {
    /// Items queued now.
    pub len: usize,
    /// The queue's bound.
    pub capacity: usize,
}

/// The SDK's own health.
///
/// ```
/// let page = observe_core::status::StatusPage::builder().no_span_store().build();
/// let health = page.snapshot().health;
/// assert_eq!(health.span_store_len, None);
/// assert_eq!(health.series.len(), 4);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// Span export queue use, when the exporter reports it.
    pub export_queue: Option<QueueUse>,
    /// `observe_spans_dropped_total`.
    pub spans_dropped: u64,
    /// `observe_log_records_dropped_total`.
    pub log_records_dropped: u64,
    /// `observe_metric_overflow_total`: observations that went to an overflow series.
    pub metric_overflow: u64,
    /// `observe_export_errors_total`.
    pub export_errors: u64,
    /// `observe_propagation_invalid_headers_total`.
    pub propagation_invalid: u64,
    /// Label sets held per instrument, `(kind, series)`.
    pub series: Vec<(RowKind, usize)>,
    /// Spans held by the in-process span store; `None` when none is installed.
    pub span_store_len: Option<usize>,
}

/// A slow or failed request with its waterfall (when its spans are still stored).
///
/// ```
/// let page = observe_core::status::StatusPage::builder().no_span_store().build();
/// let snap = page.snapshot();
/// assert!(snap.recent.is_empty(), "no span store, no recent requests");
/// assert_eq!(snap.slow_threshold, std::time::Duration::from_millis(250));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RequestView {
    /// The request.
    pub request: super::RecentRequest,
    /// Its trace's spans known to this process; `None` once the store evicted them.
    pub waterfall: Option<Waterfall>,
}

/// One route's recent slow and failed requests, each with its waterfall.
///
/// ```
/// let page = observe_core::status::StatusPage::builder().no_span_store().build();
/// let snap = page.snapshot();
/// assert!(snap.recent.is_empty(), "no span store, no recent requests");
/// assert_eq!(snap.slow_threshold, std::time::Duration::from_millis(250));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteRecent {
    /// The route.
    pub route: String,
    /// Slow requests, newest first.
    pub slow: Vec<RequestView>,
    /// Failed requests, newest first.
    pub failed: Vec<RequestView>,
}

/// Everything the page shows, read at one instant. Both renderers read this.
///
/// ```
/// let page = observe_core::status::StatusPage::builder().no_span_store().build();
/// let snap = page.snapshot();
/// assert!(snap.recent.is_empty(), "no span store, no recent requests");
/// assert_eq!(snap.slow_threshold, std::time::Duration::from_millis(250));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StatusSnapshot {
    /// The service's name.
    pub service: String,
    /// When this was read.
    pub generated_at: SystemTime,
    /// The span over which `rate` and `error_ratio` are computed (the sliding window, or the
    /// time since the page started while it is younger than the window).
    pub window: Duration,
    /// Requests at least this long are listed as slow.
    pub slow_threshold: Duration,
    /// RED rows, by kind, then name, then method.
    pub rows: Vec<RouteRow>,
    /// Recent slow and failed requests per route.
    pub recent: Vec<RouteRecent>,
    /// The SDK's own health.
    pub health: Health,
}

impl StatusSnapshot {
    /// The trace ids of every listed request, newest first per route.
    ///
    /// ```
    /// # use observe_core::status::StatusPage;
    /// let page = StatusPage::builder()
    ///     .metrics(observe_core::metrics::Metrics::new(Default::default()).leak())
    ///     .build();
    /// assert!(page.snapshot().trace_ids().is_empty());
    /// ```
    pub fn trace_ids(&self) -> Vec<TraceId> {
        self.recent
            .iter()
            .flat_map(|r| r.slow.iter().chain(&r.failed))
            .map(|v| v.request.trace_id)
            .collect()
    }
}

/// Per-row totals and merged histograms, read from the metrics.
pub(crate) struct Reading {
    rows: HashMap<RowKey, (Totals, [u64; BUCKETS], f64)>,
}

fn classify(error: Option<ErrorType>) -> Totals {
    match error {
        None => Totals::default(),
        Some(ErrorType::Cancelled) => Totals {
            cancelled: 1,
            ..Default::default()
        },
        Some(_) => Totals {
            errors: 1,
            ..Default::default()
        },
    }
}

fn add_series<L>(
    rows: &mut HashMap<RowKey, (Totals, [u64; BUCKETS], f64)>,
    kind: RowKind,
    snaps: Vec<SeriesSnapshot<L>>,
    key: impl Fn(&L) -> (&'static str, &'static str, Option<ErrorType>),
) {
    for s in snaps {
        let (method, name, error) = match &s.series {
            Series::Labels(l) => key(l),
            Series::Overflow => ("", OVERFLOW, None),
        };
        let h = &s.histogram;
        let entry =
            rows.entry((kind, method, name))
                .or_insert((Totals::default(), [0; BUCKETS], 0.0));
        let flags = classify(error);
        entry.0.count += h.count;
        entry.0.errors += flags.errors * h.count;
        entry.0.cancelled += flags.cancelled * h.count;
        for (acc, b) in entry.1.iter_mut().zip(h.buckets) {
            *acc += b;
        }
        entry.2 += h.sum;
    }
}

impl Reading {
    pub(crate) fn read(metrics: &Metrics) -> Reading {
        let mut rows = HashMap::new();
        add_series(
            &mut rows,
            RowKind::HttpServer,
            metrics.http_server().snapshot(),
            |l| {
                (
                    l.method.as_str(),
                    l.route.map_or(UNMATCHED, |r| r.as_str()),
                    l.error,
                )
            },
        );
        add_series(
            &mut rows,
            RowKind::GrpcServer,
            metrics.rpc_server().snapshot(),
            |l| ("", l.method.as_str(), l.error),
        );
        add_series(
            &mut rows,
            RowKind::HttpClient,
            metrics.http_client().snapshot(),
            |l| {
                (
                    l.method.as_str(),
                    l.server_address.map_or(UNKNOWN_SERVER, |a| a.as_str()),
                    l.error,
                )
            },
        );
        add_series(
            &mut rows,
            RowKind::GrpcClient,
            metrics.rpc_client().snapshot(),
            |l| ("", l.method.as_str(), l.error),
        );
        Reading { rows }
    }

    fn totals(&self) -> HashMap<RowKey, Totals> {
        self.rows.iter().map(|(k, v)| (*k, v.0)).collect()
    }

    /// The rows, with rates against `base` over `elapsed`.
    pub(crate) fn rows(&self, base: &HashMap<RowKey, Totals>, elapsed: Duration) -> Vec<RouteRow> {
        let secs = elapsed.as_secs_f64();
        let mut rows: Vec<RouteRow> = self
            .rows
            .iter()
            .map(|(&(kind, method, name), (t, buckets, sum))| {
                let b = base.get(&(kind, method, name)).copied().unwrap_or_default();
                let d_count = t.count.saturating_sub(b.count);
                let d_errors = t.errors.saturating_sub(b.errors);
                let cumulative: [u64; BUCKETS] = {
                    let mut acc = 0;
                    std::array::from_fn(|i| {
                        acc += buckets[i];
                        acc
                    })
                };
                let q = |q| {
                    let v = histogram_quantile(q, &DURATION_BUCKETS, &cumulative);
                    v.is_finite().then_some(v)
                };
                RouteRow {
                    kind,
                    method,
                    name,
                    count: t.count,
                    errors: t.errors,
                    cancelled: t.cancelled,
                    rate: if secs > 0.0 {
                        d_count as f64 / secs
                    } else {
                        0.0
                    },
                    error_ratio: (d_count > 0).then(|| d_errors as f64 / d_count as f64),
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    mean: (t.count > 0).then(|| sum / t.count as f64),
                    buckets: *buckets,
                }
            })
            .collect();
        rows.sort_by(|a, b| (a.kind, a.name, a.method).cmp(&(b.kind, b.name, b.method)));
        rows
    }
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    totals: HashMap<RowKey, Totals>,
}

/// A sliding window of per-row totals, sampled at most once per `interval`.
///
/// Bounded: at most `window / interval + 2` samples, each one entry per row (rows are bounded
/// by the metrics' cardinality limit).
#[derive(Debug)]
pub(crate) struct RateWindow {
    samples: VecDeque<Sample>,
    interval: Duration,
    window: Duration,
}

impl RateWindow {
    pub(crate) fn new(window: Duration, interval: Duration) -> Self {
        RateWindow {
            samples: VecDeque::new(),
            interval: interval.max(Duration::from_millis(1)),
            window: window.max(interval),
        }
    }

    fn max_samples(&self) -> usize {
        (self.window.as_nanos() / self.interval.as_nanos()) as usize + 2
    }

    /// Records `reading` at `now` if the newest sample is at least one interval old.
    pub(crate) fn sample(&mut self, now: Instant, reading: &Reading) {
        let due = self
            .samples
            .back()
            .is_none_or(|s| now.saturating_duration_since(s.at) >= self.interval);
        if !due {
            return;
        }
        self.samples.push_back(Sample {
            at: now,
            totals: reading.totals(),
        });
        // Keep one sample at or beyond the window's start, so the rate always spans it.
        while self.samples.len() > self.max_samples()
            || (self.samples.len() > 1
                && now.saturating_duration_since(self.samples[1].at) >= self.window)
        {
            self.samples.pop_front();
        }
    }

    /// The baseline for rates at `now`: the oldest sample inside the window, or failing that
    /// the newest older one; and the time since it.
    pub(crate) fn baseline(&self, now: Instant) -> (Option<&HashMap<RowKey, Totals>>, Duration) {
        let pick = self
            .samples
            .iter()
            .find(|s| now.saturating_duration_since(s.at) <= self.window)
            .or_else(|| self.samples.back());
        match pick {
            Some(s) => (Some(&s.totals), now.saturating_duration_since(s.at)),
            None => (None, Duration::ZERO),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

/// Reads the SDK's own counters and the metrics' series counts.
pub(crate) fn health(
    metrics: &Metrics,
    export_queue: Option<QueueUse>,
    span_store_len: Option<usize>,
) -> Health {
    use crate::counters;
    Health {
        export_queue,
        spans_dropped: counters::SPANS_DROPPED.get(),
        log_records_dropped: counters::LOG_RECORDS_DROPPED.get(),
        metric_overflow: counters::METRIC_OVERFLOW.get(),
        export_errors: counters::EXPORT_ERRORS.get(),
        propagation_invalid: counters::PROPAGATION_INVALID.get(),
        series: vec![
            (RowKind::HttpServer, metrics.http_server().series_count()),
            (RowKind::GrpcServer, metrics.rpc_server().series_count()),
            (RowKind::HttpClient, metrics.http_client().series_count()),
            (RowKind::GrpcClient, metrics.rpc_client().series_count()),
        ],
        span_store_len,
    }
}

/// Attaches waterfalls (from `lookup`) to the rings' requests.
pub(crate) fn with_waterfalls(
    routes: Vec<RouteRequests>,
    mut lookup: impl FnMut(TraceId) -> Option<Waterfall>,
) -> Vec<RouteRecent> {
    let mut cache: HashMap<TraceId, Option<Waterfall>> = HashMap::new();
    let mut view = |reqs: Vec<super::RecentRequest>| -> Vec<RequestView> {
        reqs.into_iter()
            .map(|request| {
                let waterfall = cache
                    .entry(request.trace_id)
                    .or_insert_with(|| lookup(request.trace_id))
                    .clone();
                RequestView { request, waterfall }
            })
            .collect()
    };
    routes
        .into_iter()
        .map(|r| RouteRecent {
            route: r.route,
            slow: view(r.slow),
            failed: view(r.failed),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{HttpMethod, HttpServerLabels, MetricsConfig, Route, UrlScheme};

    fn rec(m: &Metrics, route: &str, status: u16, ms: u64) {
        m.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: Some(Route::intern(route)),
                status,
                error: None,
            },
            Duration::from_millis(ms),
            None,
        );
    }

    #[test]
    fn rows_merge_series_of_a_route_and_count_errors() {
        let m = Metrics::new(MetricsConfig::default());
        for _ in 0..8 {
            rec(&m, "/model/a", 200, 20);
        }
        rec(&m, "/model/a", 404, 20);
        rec(&m, "/model/a", 503, 600);
        m.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: Some(Route::intern("/model/a")),
                status: 0,
                error: Some(ErrorType::Cancelled),
            },
            Duration::from_millis(1),
            None,
        );
        let rows = Reading::read(&m).rows(&HashMap::new(), Duration::from_secs(10));
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.kind, r.method, r.name),
            (RowKind::HttpServer, "GET", "/model/a")
        );
        assert_eq!((r.count, r.errors, r.cancelled), (11, 1, 1));
        assert!((r.rate - 1.1).abs() < 1e-9);
        assert!((r.error_ratio.unwrap() - 1.0 / 11.0).abs() < 1e-9);
        // 9 of 11 in (0.01, 0.025] (index 2), 1 in (0, 0.005], 1 in (0.5, 0.75].
        assert_eq!(r.buckets[2], 9);
        assert_eq!(r.buckets[0], 1);
        assert_eq!(r.buckets[8], 1);
        assert!((r.p50.unwrap() - (0.01 + 0.015 * (5.5 - 1.0) / 9.0)).abs() < 1e-9);
        assert!((r.p99.unwrap() - (0.5 + 0.25 * (10.89 - 10.0))).abs() < 1e-9);
    }

    #[test]
    fn rates_are_over_the_window_not_since_start() {
        let m = Metrics::new(MetricsConfig::default());
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::from_secs(60), Duration::from_secs(10));
        for _ in 0..100 {
            rec(&m, "/model/w", 500, 1);
        }
        w.sample(t0, &Reading::read(&m));
        // 2 minutes later, 30 more requests, all fine, sampled every 10 s.
        for i in 1..=12u64 {
            if i == 12 {
                for _ in 0..30 {
                    rec(&m, "/model/w", 200, 1);
                }
            }
            w.sample(t0 + Duration::from_secs(10 * i), &Reading::read(&m));
        }
        assert!(w.len() <= 8, "bounded: {}", w.len());
        let now = t0 + Duration::from_secs(125);
        let (base, elapsed) = w.baseline(now);
        assert_eq!(elapsed, Duration::from_secs(55));
        let rows = Reading::read(&m).rows(base.unwrap(), elapsed);
        let r = &rows[0];
        assert!((r.rate - 30.0 / 55.0).abs() < 1e-9, "{}", r.rate);
        // The 100 old failures are outside the window.
        assert_eq!(r.error_ratio, Some(0.0));
        assert_eq!(r.errors, 100);
    }

    #[test]
    fn a_sample_is_taken_at_most_once_per_interval() {
        let m = Metrics::new(MetricsConfig::default());
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::from_secs(60), Duration::from_secs(10));
        for ms in 0..1000u64 {
            w.sample(t0 + Duration::from_millis(ms), &Reading::read(&m));
        }
        assert_eq!(w.len(), 1);
        // Without a sample inside the window the newest older one is the baseline.
        let (_, elapsed) = w.baseline(t0 + Duration::from_secs(600));
        assert_eq!(elapsed, Duration::from_secs(600));
        let empty = RateWindow::new(Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(empty.baseline(t0), (None, Duration::ZERO));
    }

    #[test]
    fn overflow_and_unmatched_get_their_own_rows() {
        let m = Metrics::new(MetricsConfig::default().with_cardinality_limit(1));
        rec(&m, "/model/o1", 200, 1);
        rec(&m, "/model/o2", 200, 1);
        m.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Post,
                scheme: UrlScheme::Http,
                route: None,
                status: 404,
                error: None,
            },
            Duration::from_millis(1),
            None,
        );
        let names: Vec<&str> = Reading::read(&m)
            .rows(&HashMap::new(), Duration::ZERO)
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, [OVERFLOW, "/model/o1"]);
        let m = Metrics::new(MetricsConfig::default());
        m.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Post,
                scheme: UrlScheme::Http,
                route: None,
                status: 404,
                error: None,
            },
            Duration::from_millis(1),
            None,
        );
        let rows = Reading::read(&m).rows(&HashMap::new(), Duration::ZERO);
        assert_eq!(
            (rows[0].name, rows[0].method, rows[0].rate),
            (UNMATCHED, "POST", 0.0)
        );
    }
}
