//! HTTP server and client instruments: `http_{server,client}_request_duration_seconds` and
//! `http_{server,client}_active_requests`.
//!
//! ```
//! use std::time::Duration;
//! use observe_core::metrics::{HttpMethod, HttpServerLabels, Metrics, MetricsConfig, Route, UrlScheme};
//!
//! let metrics = Metrics::new(MetricsConfig::default());
//! let server = metrics.http_server();
//! let in_flight = server.start(HttpMethod::Get, UrlScheme::Http);
//! assert_eq!(server.active(HttpMethod::Get, UrlScheme::Http), 1);
//! let labels = HttpServerLabels {
//!     method: HttpMethod::Get,
//!     scheme: UrlScheme::Http,
//!     route: Some(Route::intern("/users/{id}")),
//!     status: 200,
//!     error: None,
//! };
//! server.record(labels, Duration::from_millis(12), None);
//! drop(in_flight);
//! assert_eq!(server.active(HttpMethod::Get, UrlScheme::Http), 0);
//! assert_eq!(server.snapshot()[0].histogram.count, 1);
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::encode::{LabelList, WriteLabels};
use super::family::{HistogramFamily, Identity, SeriesSnapshot};
use super::labels::{ErrorType, Exemplar, HttpMethod, Route, ServerAddress, UrlScheme};
use super::recorder::Shards;

/// Labels of one HTTP server request.
///
/// `status` is the response status code; `0` means no response was sent (the request's future
/// was dropped, e.g. the client went away): the `http_response_status_code` label is then
/// absent, and the layer sets `error: Some(ErrorType::Cancelled)` (with `error: None`, a
/// missing response is recorded as `error_type="_OTHER"`). When `error` is `None` and `status`
/// is 5xx, `error_type` is set to the status code, as semantic conventions ask.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct HttpServerLabels {
    /// `http_request_method`.
    pub method: HttpMethod,
    /// `url_scheme`.
    pub scheme: UrlScheme,
    /// `http_route`: the matched template; `None` (label absent) when no route matched.
    pub route: Option<Route>,
    /// `http_response_status_code`; `0` when no response was sent.
    pub status: u16,
    /// `error_type`, only on failure.
    pub error: Option<ErrorType>,
}

// Hashed on every request: the small fields packed into one word, then the route's stored
// hash, rather than one hasher call per field (equal label sets still hash equally).
impl std::hash::Hash for HttpServerLabels {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let small = self.method as u64
            | (self.scheme as u64) << 8
            | u64::from(self.status) << 16
            | u64::from(self.route.is_some()) << 32
            | u64::from(self.error.is_some()) << 33;
        state.write_u64(small);
        if let Some(route) = self.route {
            route.hash(state);
        }
        if let Some(error) = self.error {
            error.hash(state);
        }
    }
}

impl HttpServerLabels {
    /// The label set's identity for the family's per-thread cache: the small fields and the
    /// error packed into one word, the route's interned record by address in the other. Equal
    /// identities mean equal label sets. `None` for a `Named` error (its text is compared by
    /// content), which skips the cache.
    #[inline]
    fn identity(&self) -> Option<Identity> {
        let small = self.method as u64
            | (self.scheme as u64) << 8
            | u64::from(self.status) << 16
            | u64::from(self.route.is_some()) << 32
            | ErrorType::packed(self.error)? << 33;
        Some([small, self.route.map_or(0, Route::address)])
    }

    fn normalized(mut self) -> Self {
        if self.error.is_none() {
            if self.status >= 500 {
                self.error = Some(ErrorType::Status(self.status));
            } else if self.status == 0 {
                // No response and no reason given: still a failure, of unknown kind.
                self.error = Some(ErrorType::Other);
            }
        }
        self
    }
}

impl WriteLabels for HttpServerLabels {
    fn write_labels(&self, l: &mut LabelList) {
        l.push("http_request_method", self.method.as_str());
        l.push("url_scheme", self.scheme.as_str());
        if let Some(route) = self.route {
            l.push("http_route", route.as_str());
        }
        if self.status != 0 {
            l.push_u64("http_response_status_code", u64::from(self.status));
        }
        if let Some(e) = self.error {
            l.push_display("error_type", &e);
        }
    }
}

/// Labels of one HTTP client request.
///
/// As for the server, `status == 0` means no response was received (connection error,
/// timeout, cancellation) and the status label is then absent; set `error` to say why
/// (`_OTHER` if not). With `error: None`, a 4xx or 5xx status sets `error_type` to the status code.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct HttpClientLabels {
    /// `http_request_method`.
    pub method: HttpMethod,
    /// `server_address`: the host called (no port); `None` leaves the label out.
    pub server_address: Option<ServerAddress>,
    /// `http_response_status_code`; `0` when no response was received.
    pub status: u16,
    /// `error_type`, only on failure.
    pub error: Option<ErrorType>,
}

impl HttpClientLabels {
    /// The label set's identity for the family's per-thread cache, as the server's: small
    /// fields and the error in one word, the server address's record by address in the other.
    #[inline]
    fn identity(&self) -> Option<Identity> {
        let small = self.method as u64
            | u64::from(self.status) << 8
            | u64::from(self.server_address.is_some()) << 24
            | ErrorType::packed(self.error)? << 25;
        Some([small, self.server_address.map_or(0, ServerAddress::address)])
    }

    fn normalized(mut self) -> Self {
        if self.error.is_none() {
            if self.status >= 400 {
                self.error = Some(ErrorType::Status(self.status));
            } else if self.status == 0 {
                self.error = Some(ErrorType::Other);
            }
        }
        self
    }
}

impl WriteLabels for HttpClientLabels {
    fn write_labels(&self, l: &mut LabelList) {
        l.push("http_request_method", self.method.as_str());
        if let Some(a) = self.server_address {
            l.push("server_address", a.as_str());
        }
        if self.status != 0 {
            l.push_u64("http_response_status_code", u64::from(self.status));
        }
        if let Some(e) = self.error {
            l.push_display("error_type", &e);
        }
    }
}

/// Method and scheme combinations: one gauge each.
const COMBINATIONS: usize = HttpMethod::ALL.len() * UrlScheme::ALL.len();

/// The next gauge group's id; 0 marks an empty cache. A `u64` counter does not wrap, so an id
/// is never reused (as the histogram families' are not).
static NEXT_GAUGES_ID: AtomicU64 = AtomicU64::new(1);

/// Up-down counters of requests in flight, sharded per recorder number as the histograms are
/// (see [`super::recorder`]): raising or lowering one is a plain load and store on this
/// thread's shard, found through a one-entry per-thread cache. A request raised on one thread
/// and lowered on another leaves +1 in one shard and -1 in the other: the sum is right.
pub(crate) struct Gauges {
    id: u64,
    /// For threads without a recorder number.
    shared: [AtomicI64; COMBINATIONS],
    shards: Shards<GaugeShard>,
}

#[derive(Default)]
pub(crate) struct GaugeShard([AtomicI64; COMBINATIONS]);

thread_local! {
    /// The gauge group this thread changed last, and its shard of it. No destructor, so it is
    /// there while the thread's other destructors run.
    static GAUGES_CACHE: Cell<(u64, *const GaugeShard)> =
        const { Cell::new((0, std::ptr::null())) };
}

/// Empties this thread's gauge cache: called when the thread gives its recorder number back,
/// so that it never writes a shard of that number again.
pub(crate) fn forget_shards() {
    let _ = GAUGES_CACHE.try_with(|cache| cache.set((0, std::ptr::null())));
}

impl Gauges {
    pub(crate) fn new() -> Self {
        Gauges {
            id: NEXT_GAUGES_ID.fetch_add(1, Ordering::Relaxed),
            shared: std::array::from_fn(|_| AtomicI64::new(0)),
            shards: Shards::default(),
        }
    }

    #[inline(always)]
    fn add(&self, i: usize, delta: i64) {
        let (id, shard) = GAUGES_CACHE.with(Cell::get);
        let shard = if id == self.id {
            // SAFETY: cached by this group (ids are never reused) from its own shards, which
            // live as long as it does, and `&self` keeps it alive. The shard is this thread's:
            // the cache is emptied before the thread gives its number back.
            unsafe { &*shard }
        } else {
            match self.shard_uncached() {
                Some(shard) => shard,
                None => {
                    self.shared[i].fetch_add(delta, Ordering::Relaxed);
                    return;
                }
            }
        };
        // One writer: load and store are the whole update.
        let count = &shard.0[i];
        count.store(
            count.load(Ordering::Relaxed).wrapping_add(delta),
            Ordering::Relaxed,
        );
    }

    /// This thread's shard, found (or made) and cached; `None` without a recorder number.
    #[inline(never)]
    fn shard_uncached(&self) -> Option<&GaugeShard> {
        let shard = self.shards.of(super::recorder::current()?);
        GAUGES_CACHE.with(|cache| cache.set((self.id, shard)));
        Some(shard)
    }

    /// The gauge's value: the shared part and every shard added up.
    pub(crate) fn value(&self, i: usize) -> i64 {
        self.shards
            .iter()
            .fold(self.shared[i].load(Ordering::Relaxed), |sum, shard| {
                sum.wrapping_add(shard.0[i].load(Ordering::Relaxed))
            })
    }
}

/// Requests in flight by method and scheme: a fixed array, so no lookup and no lock.
pub(crate) struct ActiveByMethod {
    gauges: Gauges,
    // A combination once used stays exposed (at 0 when idle) so its series never goes stale.
    used: [AtomicBool; COMBINATIONS],
}

impl ActiveByMethod {
    fn new() -> Self {
        ActiveByMethod {
            gauges: Gauges::new(),
            used: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    fn index(method: HttpMethod, scheme: UrlScheme) -> usize {
        method as usize * UrlScheme::ALL.len() + scheme as usize
    }

    fn value(&self, method: HttpMethod, scheme: UrlScheme) -> i64 {
        self.gauges.value(Self::index(method, scheme))
    }

    #[inline]
    fn start(&self, method: HttpMethod, scheme: UrlScheme) -> InFlight<'_> {
        let index = Self::index(method, scheme);
        let used = &self.used[index];
        if !used.load(Ordering::Relaxed) {
            used.store(true, Ordering::Relaxed);
        }
        InFlight::new(&self.gauges, index)
    }

    /// `(method, scheme, value)` for every combination that was ever used.
    pub(crate) fn values(&self) -> impl Iterator<Item = (HttpMethod, UrlScheme, i64)> + '_ {
        HttpMethod::ALL.into_iter().flat_map(move |m| {
            UrlScheme::ALL
                .into_iter()
                .filter(move |&s| self.used[Self::index(m, s)].load(Ordering::Relaxed))
                .map(move |s| (m, s, self.value(m, s)))
        })
    }
}

/// An in-flight request: the active-requests gauge was raised by one when it was created and
/// is lowered by one, exactly once, when it is dropped (response sent, error, or the request's
/// future dropped).
///
/// ```
/// # use observe_core::metrics::{HttpMethod, Metrics, MetricsConfig, UrlScheme};
/// let metrics = Metrics::new(MetricsConfig::default());
/// let guard = metrics.http_client().start(HttpMethod::Post, UrlScheme::Https);
/// assert_eq!(metrics.http_client().active(HttpMethod::Post, UrlScheme::Https), 1);
/// drop(guard);
/// assert_eq!(metrics.http_client().active(HttpMethod::Post, UrlScheme::Https), 0);
/// ```
#[must_use = "the gauge is lowered when this guard is dropped"]
pub struct InFlight<'a> {
    gauges: &'a Gauges,
    index: usize,
}

impl<'a> InFlight<'a> {
    #[inline]
    pub(crate) fn new(gauges: &'a Gauges, index: usize) -> Self {
        gauges.add(index, 1);
        InFlight { gauges, index }
    }
}

impl Drop for InFlight<'_> {
    #[inline]
    fn drop(&mut self) {
        self.gauges.add(self.index, -1);
    }
}

impl fmt::Debug for InFlight<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// The HTTP server instruments. Get it from [`Metrics::http_server`](super::Metrics::http_server).
///
/// ```
/// # use std::time::Duration;
/// # use observe_core::metrics::*;
/// let metrics = Metrics::new(MetricsConfig::default().with_cardinality_limit(1));
/// let server = metrics.http_server();
/// let labels = |status| HttpServerLabels {
///     method: HttpMethod::Get, scheme: UrlScheme::Http, route: None, status, error: None,
/// };
/// server.record(labels(200), Duration::from_millis(1), None);
/// server.record(labels(503), Duration::from_millis(1), None); // past the limit of 1
/// assert_eq!((server.series_count(), server.overflowed()), (1, 1));
/// let overflow = server.snapshot().into_iter().find(|s| s.series == Series::Overflow).unwrap();
/// assert_eq!(overflow.histogram.count, 1);
/// ```
pub struct HttpServerMetrics {
    pub(crate) duration: HistogramFamily<HttpServerLabels>,
    pub(crate) active: ActiveByMethod,
}

impl HttpServerMetrics {
    pub(crate) fn new(limit: usize) -> Self {
        HttpServerMetrics {
            duration: HistogramFamily::new(limit),
            active: ActiveByMethod::new(),
        }
    }

    /// Raises `http_server_active_requests{method,scheme}`; the returned guard lowers it.
    #[inline]
    pub fn start(&self, method: HttpMethod, scheme: UrlScheme) -> InFlight<'_> {
        self.active.start(method, scheme)
    }

    /// Records one finished (or cancelled) request. No allocation for a label set seen before.
    #[inline]
    pub fn record(&self, labels: HttpServerLabels, elapsed: Duration, exemplar: Option<Exemplar>) {
        self.record_ns(labels, super::family::duration_ns(elapsed), exemplar);
    }

    /// [`record`](Self::record) with the duration in nanoseconds, as the server layer has it
    /// from its clock: no `Duration` built and taken apart again on every request.
    #[inline]
    pub(crate) fn record_ns(&self, labels: HttpServerLabels, ns: u64, exemplar: Option<Exemplar>) {
        // Normalizing is a function of the label set, so the identity of the label set as given
        // is as good a cache key as that of the normalized one; only a cache miss normalizes.
        self.duration
            .observe_ns_cached(labels.identity(), || labels.normalized(), ns, exemplar);
    }

    /// The current value of the active-requests gauge for one method and scheme.
    pub fn active(&self, method: HttpMethod, scheme: UrlScheme) -> i64 {
        self.active.value(method, scheme)
    }

    /// Every series of the duration histogram (the status page reads this too).
    pub fn snapshot(&self) -> Vec<SeriesSnapshot<HttpServerLabels>> {
        self.duration.snapshot()
    }

    /// Label sets held by the duration histogram (at most the configured limit).
    pub fn series_count(&self) -> usize {
        self.duration.len()
    }

    /// Observations that went to the overflow series.
    pub fn overflowed(&self) -> u64 {
        self.duration.overflowed()
    }
}

impl fmt::Debug for HttpServerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerMetrics")
            .field("series", &self.series_count())
            .finish()
    }
}

/// The HTTP client instruments. Get it from [`Metrics::http_client`](super::Metrics::http_client).
///
/// ```
/// # use std::time::Duration;
/// # use observe_core::metrics::*;
/// let metrics = Metrics::new(MetricsConfig::default());
/// let client = metrics.http_client();
/// let _in_flight = client.start(HttpMethod::Get, UrlScheme::Https);
/// client.record(
///     HttpClientLabels {
///         method: HttpMethod::Get,
///         server_address: Some(ServerAddress::intern("api.example.com")),
///         status: 0,
///         error: Some(ErrorType::Timeout),
///     },
///     Duration::from_secs(5),
///     None,
/// );
/// match client.snapshot()[0].series {
///     Series::Labels(l) => assert_eq!(l.error, Some(ErrorType::Timeout)),
///     Series::Overflow => unreachable!(),
/// }
/// ```
pub struct HttpClientMetrics {
    pub(crate) duration: HistogramFamily<HttpClientLabels>,
    pub(crate) active: ActiveByMethod,
}

impl HttpClientMetrics {
    pub(crate) fn new(limit: usize) -> Self {
        HttpClientMetrics {
            duration: HistogramFamily::new(limit),
            active: ActiveByMethod::new(),
        }
    }

    /// Raises `http_client_active_requests{method,scheme}`; the returned guard lowers it.
    #[inline]
    pub fn start(&self, method: HttpMethod, scheme: UrlScheme) -> InFlight<'_> {
        self.active.start(method, scheme)
    }

    /// Records one finished (or failed, or cancelled) outgoing request.
    #[inline]
    pub fn record(&self, labels: HttpClientLabels, elapsed: Duration, exemplar: Option<Exemplar>) {
        // As the server's: the identity of the label set as given keys the cache.
        self.duration.observe_ns_cached(
            labels.identity(),
            || labels.normalized(),
            super::family::duration_ns(elapsed),
            exemplar,
        );
    }

    /// The current value of the active-requests gauge for one method and scheme.
    pub fn active(&self, method: HttpMethod, scheme: UrlScheme) -> i64 {
        self.active.value(method, scheme)
    }

    /// Every series of the duration histogram.
    pub fn snapshot(&self) -> Vec<SeriesSnapshot<HttpClientLabels>> {
        self.duration.snapshot()
    }

    /// Label sets held by the duration histogram.
    pub fn series_count(&self) -> usize {
        self.duration.len()
    }
}

impl fmt::Debug for HttpClientMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientMetrics")
            .field("series", &self.series_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written `Hash` must give equal label sets equal hashes, and keep apart sets
    /// that differ only in a field's presence.
    #[test]
    fn server_labels_hash_follows_equality() {
        use std::hash::BuildHasher;
        let h = foldhash::fast::RandomState::default();
        let base = HttpServerLabels {
            method: HttpMethod::Get,
            scheme: UrlScheme::Http,
            route: Some(Route::intern("/hash-test/{id}")),
            status: 200,
            error: None,
        };
        let same = HttpServerLabels {
            route: Some(Route::intern(&String::from("/hash-test/{id}"))),
            ..base
        };
        assert_eq!(base, same);
        assert_eq!(h.hash_one(base), h.hash_one(same));
        let variants = [
            HttpServerLabels {
                route: None,
                ..base
            },
            HttpServerLabels {
                route: Some(Route::OTHER),
                ..base
            },
            HttpServerLabels {
                error: Some(ErrorType::Other),
                ..base
            },
            HttpServerLabels {
                error: Some(ErrorType::Status(200)),
                ..base
            },
            HttpServerLabels {
                status: 201,
                ..base
            },
            HttpServerLabels {
                method: HttpMethod::Post,
                ..base
            },
            HttpServerLabels {
                scheme: UrlScheme::Https,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v, base);
            assert_ne!(h.hash_one(v), h.hash_one(base), "{v:?}");
        }
    }
    /// Two label sets have the same cache identity only when they are equal: every field,
    /// the route's presence and the error's kind and value count. A `Named` error has none.
    #[test]
    fn server_identity_is_equal_only_for_equal_labels() {
        let route_a = Route::intern("/identity-test/a");
        let route_b = Route::intern("/identity-test/b");
        let mut sets = Vec::new();
        for method in [HttpMethod::Get, HttpMethod::Post, HttpMethod::Other] {
            for scheme in UrlScheme::ALL {
                for route in [None, Some(route_a), Some(route_b), Some(Route::OTHER)] {
                    for status in [0, 200, 404, 500, 503, u16::MAX] {
                        for error in [
                            None,
                            Some(ErrorType::Cancelled),
                            Some(ErrorType::Timeout),
                            Some(ErrorType::Status(503)),
                            Some(ErrorType::Status(0)),
                            Some(ErrorType::Grpc(crate::metrics::GrpcCode::Ok)),
                            Some(ErrorType::Grpc(crate::metrics::GrpcCode::Unavailable)),
                            Some(ErrorType::Other),
                        ] {
                            sets.push(HttpServerLabels {
                                method,
                                scheme,
                                route,
                                status,
                                error,
                            });
                        }
                    }
                }
            }
        }
        for a in &sets {
            let ia = a.identity().expect("an identity");
            for b in &sets {
                assert_eq!(ia == b.identity().unwrap(), a == b, "{a:?} / {b:?}");
            }
        }
        let named = HttpServerLabels {
            error: Some(ErrorType::Named("io")),
            ..sets[0]
        };
        assert_eq!(named.identity(), None);
    }

    /// Recording through the per-thread cache: alternating label sets (routes, statuses,
    /// named errors that skip the cache) each get exactly their own observations.
    #[test]
    fn server_records_alternating_label_sets_exactly() {
        let s = HttpServerMetrics::new(100);
        let routes = [
            Some(Route::intern("/alternate/{a}")),
            Some(Route::intern("/alternate/{b}")),
            None,
        ];
        let errors = [None, Some(ErrorType::Named("io")), Some(ErrorType::Timeout)];
        let statuses = [200, 404, 503];
        let mut n = 0u64;
        for i in 0..810usize {
            let labels = HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: routes[i % 3],
                status: statuses[(i / 3) % 3],
                error: errors[(i / 9) % 3],
            };
            s.record_ns(labels, 1_000 + i as u64, None);
            n += 1;
        }
        let snap = s.snapshot();
        assert_eq!(snap.len(), 27, "3 routes x 3 statuses x 3 errors");
        assert!(snap.iter().all(|x| x.histogram.count == n / 27));
        let sum: f64 = snap.iter().map(|x| x.histogram.sum).sum();
        let expected: u64 = (0..810u64).map(|i| 1_000 + i).sum();
        assert!((sum - expected as f64 / 1e9).abs() < 1e-9);
        assert_eq!(s.overflowed(), 0);
    }

    use crate::metrics::Series;

    fn recorded_error(status: u16, error: Option<ErrorType>, client: bool) -> Option<ErrorType> {
        let elapsed = Duration::from_millis(1);
        if client {
            let c = HttpClientMetrics::new(10);
            c.record(
                HttpClientLabels {
                    method: HttpMethod::Get,
                    server_address: None,
                    status,
                    error,
                },
                elapsed,
                None,
            );
            match c.snapshot()[0].series {
                Series::Labels(l) => l.error,
                Series::Overflow => unreachable!(),
            }
        } else {
            let s = HttpServerMetrics::new(10);
            s.record(
                HttpServerLabels {
                    method: HttpMethod::Get,
                    scheme: UrlScheme::Http,
                    route: None,
                    status,
                    error,
                },
                elapsed,
                None,
            );
            match s.snapshot()[0].series {
                Series::Labels(l) => l.error,
                Series::Overflow => unreachable!(),
            }
        }
    }

    #[test]
    fn error_type_follows_semantic_conventions() {
        assert_eq!(recorded_error(200, None, false), None);
        assert_eq!(recorded_error(404, None, false), None);
        assert_eq!(
            recorded_error(503, None, false),
            Some(ErrorType::Status(503))
        );
        assert_eq!(
            recorded_error(404, None, true),
            Some(ErrorType::Status(404))
        );
        assert_eq!(recorded_error(0, None, false), Some(ErrorType::Other));
        assert_eq!(
            recorded_error(0, Some(ErrorType::Cancelled), false),
            Some(ErrorType::Cancelled)
        );
        assert_eq!(
            recorded_error(500, Some(ErrorType::Named("io")), false),
            Some(ErrorType::Named("io"))
        );
    }

    /// Raised on one thread and lowered on another (a future that moved between workers):
    /// the shards hold +1 and -1, and the gauge reads the sum.
    #[test]
    fn in_flight_moved_between_threads_adds_up() {
        let s = HttpServerMetrics::new(10);
        let guards: Vec<_> = std::thread::scope(|scope| {
            (0..4)
                .map(|_| scope.spawn(|| s.start(HttpMethod::Get, UrlScheme::Http)))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(s.active(HttpMethod::Get, UrlScheme::Http), 4);
        let mut guards = guards.into_iter();
        std::thread::scope(|scope| {
            for guard in guards.by_ref().take(3) {
                scope.spawn(move || drop(guard));
            }
        });
        assert_eq!(s.active(HttpMethod::Get, UrlScheme::Http), 1);
        drop(guards);
        assert_eq!(s.active(HttpMethod::Get, UrlScheme::Http), 0);
    }

    /// A request whose guard is dropped while its thread exits, after the thread gave its
    /// recorder number back, is lowered through the shared counter: the gauge reads 0.
    #[test]
    fn in_flight_dropped_as_its_thread_exits_is_lowered() {
        thread_local! {
            static HELD: std::cell::RefCell<Option<InFlight<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let s: &'static HttpServerMetrics = Box::leak(Box::new(HttpServerMetrics::new(10)));
        for _ in 0..4 {
            std::thread::spawn(move || {
                // Registered before the recorder number (see the family's test of the same).
                HELD.with(|_| {});
                let guard = s.start(HttpMethod::Delete, UrlScheme::Https);
                HELD.with(|held| *held.borrow_mut() = Some(guard));
            })
            .join()
            .unwrap();
        }
        assert_eq!(s.active(HttpMethod::Delete, UrlScheme::Https), 0);
        let i = ActiveByMethod::index(HttpMethod::Delete, UrlScheme::Https);
        assert_eq!(
            s.active.gauges.shared[i].load(Ordering::Relaxed),
            -4,
            "lowered through the shared counter"
        );
    }

    /// Two gauge groups alternating on one thread share its one-entry cache: each keeps its
    /// own counts.
    #[test]
    fn gauge_groups_are_kept_apart() {
        let a = HttpServerMetrics::new(10);
        let b = HttpServerMetrics::new(10);
        let held: Vec<_> = (0..3)
            .flat_map(|_| {
                [
                    a.start(HttpMethod::Post, UrlScheme::Http),
                    b.start(HttpMethod::Post, UrlScheme::Http),
                    b.start(HttpMethod::Post, UrlScheme::Http),
                ]
            })
            .collect();
        assert_eq!(a.active(HttpMethod::Post, UrlScheme::Http), 3);
        assert_eq!(b.active(HttpMethod::Post, UrlScheme::Http), 6);
        drop(held);
        assert_eq!(a.active(HttpMethod::Post, UrlScheme::Http), 0);
        assert_eq!(b.active(HttpMethod::Post, UrlScheme::Http), 0);
    }

    /// Client label sets recorded in a mixed order through the per-thread cache each keep
    /// their own series, normalized (a 404 gets its `error_type`) on hit and miss alike.
    #[test]
    fn client_label_sets_keep_their_own_series_through_the_cache() {
        let c = HttpClientMetrics::new(100);
        let hosts = [
            Some(ServerAddress::intern("a.example")),
            Some(ServerAddress::intern("b.example")),
            None,
        ];
        let mut sets = Vec::new();
        for server_address in hosts {
            for status in [200, 404, 0] {
                for error in [
                    None,
                    Some(ErrorType::Timeout),
                    Some(ErrorType::Named("dns")),
                ] {
                    sets.push(HttpClientLabels {
                        method: HttpMethod::Get,
                        server_address,
                        status,
                        error,
                    });
                }
            }
        }
        for _ in 0..3 {
            for (i, labels) in sets.iter().enumerate() {
                for _ in 0..=i % 4 {
                    c.record(*labels, Duration::from_millis(1), None);
                }
            }
        }
        let snap = c.snapshot();
        assert_eq!(snap.len(), sets.len(), "no two of these normalize alike");
        for (i, labels) in sets.iter().enumerate() {
            let got = snap
                .iter()
                .find(|s| s.series == Series::Labels(labels.normalized()))
                .map_or(0, |s| s.histogram.count);
            assert_eq!(got, 3 * (i % 4 + 1) as u64, "{labels:?}");
        }
    }

    #[test]
    fn in_flight_lowers_exactly_once() {
        let s = HttpServerMetrics::new(10);
        let a = s.start(HttpMethod::Put, UrlScheme::Https);
        let b = s.start(HttpMethod::Put, UrlScheme::Https);
        assert_eq!(s.active(HttpMethod::Put, UrlScheme::Https), 2);
        drop(a);
        assert_eq!(s.active(HttpMethod::Put, UrlScheme::Https), 1);
        drop(b);
        assert_eq!(s.active(HttpMethod::Put, UrlScheme::Https), 0);
        let used: Vec<_> = s.active.values().collect();
        assert_eq!(used, vec![(HttpMethod::Put, UrlScheme::Https, 0)]);
    }
}
