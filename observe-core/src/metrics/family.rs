//! A histogram family with a bounded number of label sets, lock-free observation and per-bucket
//! exemplars; and the snapshot types that both the exposition and the status page read.
//!
//! Layout: an open-addressing table of pointers to `(K, HistogramSeries)` entries, where `K` is
//! a small `Copy` label struct. A label set seen before is hashed (foldhash), found with plain
//! atomic loads and recorded with two `fetch_add`s: no lock, no allocation. In front of that, a
//! per-thread cache of the series found last for a few label sets (keyed by the family's
//! never-reused id and the label set's identity) lets a repeated label set skip the hash and
//! the probe, and holds the thread's own shard of the series (see [`super::recorder`]): a
//! cached label set is recorded with a plain load and store per counter, no locked
//! instruction and no cache line shared with other threads. A first-seen label set takes the
//! insert mutex; once the family holds `limit` label sets, new ones go to the single overflow
//! series (`otel_metric_overflow="true"`) and `observe_metric_overflow_total` counts them.
//! Reading (scrape, status page) holds the insert mutex of one family while it adds up
//! counters; recording goes on meanwhile.

use std::cell::Cell;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::labels::Exemplar;
use super::recorder::Shards;
use crate::context::{SpanId, TraceId};

/// The semantic-conventions HTTP/RPC duration bucket bounds, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The same bounds in nanoseconds, compared against exactly on the hot path.
const BOUNDS_NS: [u64; 14] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    7_500_000_000,
    10_000_000_000,
];
/// Buckets including `+Inf`.
pub const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `BOUNDS_NS` followed by two `u64::MAX`, so that `bucket_index` may read two past any start.
const PADDED_BOUNDS_NS: [u64; BUCKETS + 1] = {
    let mut padded = [u64::MAX; BUCKETS + 1];
    let mut i = 0;
    while i < BOUNDS_NS.len() {
        padded[i] = BOUNDS_NS[i];
        i += 1;
    }
    padded
};

/// For each bit length `n` of a value (0..=64), how many bounds are below `2^(n-1)`, the
/// smallest value of that length: all of them are below such a value, and no more than the
/// next two bounds can be (no power-of-two interval holds more than two bounds; checked at
/// compile time below).
const BOUNDS_BELOW_BIT_LENGTH: [u8; 65] = {
    let mut table = [0u8; 65];
    let mut n = 1;
    while n <= 64 {
        let smallest = 1u64 << (n - 1);
        let mut below = 0;
        while below < BOUNDS_NS.len() && BOUNDS_NS[below] < smallest {
            below += 1;
        }
        // The values of this length are below `2^n`: at most two more bounds may lie in range.
        let mut in_range = 0;
        while below + in_range < BOUNDS_NS.len()
            && (n == 64 || BOUNDS_NS[below + in_range] < (1u64 << n))
        {
            in_range += 1;
        }
        assert!(in_range <= 2, "two comparisons per bit length suffice");
        table[n] = below as u8;
        n += 1;
    }
    table
};

/// The bucket of `ns`: the first whose bound is `>=` it (`le` semantics), `BUCKETS - 1` for
/// `+Inf`. The value's bit length says which bounds are surely below it, and two comparisons
/// settle the rest: a table load and two compares on every request instead of a binary search
/// over the 14 bounds.
#[inline]
fn bucket_index(ns: u64) -> usize {
    let below = BOUNDS_BELOW_BIT_LENGTH[(u64::BITS - ns.leading_zeros()) as usize] as usize;
    below
        + usize::from(PADDED_BOUNDS_NS[below] < ns)
        + usize::from(PADDED_BOUNDS_NS[below + 1] < ns)
}

/// The latest exemplar of one bucket, written without locks.
///
/// A sequence lock made of atomics: a writer that finds the slot busy skips (losing one
/// exemplar is fine; blocking a request is not), readers retry a few times and otherwise report
/// none. Every field is an atomic, so a torn read is detected rather than undefined.
#[derive(Default)]
struct ExemplarSlot {
    seq: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    value_ns: AtomicU64,
    unix_ms: AtomicU64,
}

impl ExemplarSlot {
    fn store(&self, ex: Exemplar, value_ns: u64, unix_ms: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Order the data stores after the odd sequence number for readers that see them
        // (pairs with the reader's acquire fence).
        fence(Ordering::Release);
        let t = ex.trace_id.0;
        self.trace_hi.store(
            u64::from_be_bytes(t[..8].try_into().unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.trace_lo.store(
            u64::from_be_bytes(t[8..].try_into().unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.span
            .store(u64::from_be_bytes(ex.span_id.0), Ordering::Relaxed);
        self.value_ns.store(value_ns, Ordering::Relaxed);
        self.unix_ms.store(unix_ms, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    fn load(&self) -> Option<ExemplarSnapshot> {
        for _ in 0..8 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 == 0 {
                return None;
            }
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let hi = self.trace_hi.load(Ordering::Relaxed);
            let lo = self.trace_lo.load(Ordering::Relaxed);
            let span = self.span.load(Ordering::Relaxed);
            let value_ns = self.value_ns.load(Ordering::Relaxed);
            let unix_ms = self.unix_ms.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                let mut trace = [0u8; 16];
                trace[..8].copy_from_slice(&hi.to_be_bytes());
                trace[8..].copy_from_slice(&lo.to_be_bytes());
                return Some(ExemplarSnapshot {
                    trace_id: TraceId(trace),
                    span_id: SpanId(span.to_be_bytes()),
                    value: value_ns as f64 / 1e9,
                    timestamp: UNIX_EPOCH + Duration::from_millis(unix_ms),
                });
            }
        }
        None
    }
}

/// One label set's histogram: non-cumulative bucket counters and the sum, all atomics.
///
/// Two kinds of counters add up to the series: the shared ones, updated with `fetch_add` by
/// recorders that have no shard, and one [`HistogramShard`] per recorder number that ever
/// recorded it through the per-thread cache (see [`super::recorder`]).
#[derive(Default)]
pub(crate) struct HistogramSeries {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    exemplars: [ExemplarSlot; BUCKETS],
    shards: Shards<HistogramShard>,
}

/// One recorder number's counters of a series: written only by the thread holding that
/// number, so a plain load and store update them (no locked instruction).
#[derive(Default)]
pub(crate) struct HistogramShard {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl HistogramShard {
    #[inline(always)]
    fn add(&self, i: usize, ns: u64) {
        // One writer: load and store are the whole update. `Relaxed`: the counters are read
        // for totals only, never to order other memory.
        let bucket = &self.buckets[i];
        bucket.store(
            bucket.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        self.sum_ns.store(
            self.sum_ns.load(Ordering::Relaxed).wrapping_add(ns),
            Ordering::Relaxed,
        );
    }
}

impl HistogramSeries {
    #[cfg(test)]
    fn observe(&self, elapsed: Duration, exemplar: Option<Exemplar>) {
        self.observe_ns(duration_ns(elapsed), exemplar);
    }

    /// Records through the shared counters (recorders without a shard).
    #[inline]
    pub(crate) fn observe_ns(&self, ns: u64, exemplar: Option<Exemplar>) {
        self.observe_ns_in(None, ns, exemplar);
    }

    /// Records through `shard` (this thread's, of this series) or else the shared counters.
    #[inline(always)]
    fn observe_ns_in(&self, shard: Option<&HistogramShard>, ns: u64, exemplar: Option<Exemplar>) {
        let i = bucket_index(ns);
        match shard {
            Some(shard) => shard.add(i, ns),
            None => {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
                self.sum_ns.fetch_add(ns, Ordering::Relaxed);
            }
        }
        if let Some(ex) = exemplar {
            self.keep_exemplar(i, ex, ns);
        }
    }

    fn keep_exemplar(&self, i: usize, ex: Exemplar, ns: u64) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.exemplars[i].store(ex, ns, unix_ms);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets: [u64; BUCKETS] =
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let mut sum_ns = self.sum_ns.load(Ordering::Relaxed);
        for shard in self.shards.iter() {
            for (total, bucket) in buckets.iter_mut().zip(&shard.buckets) {
                *total = total.wrapping_add(bucket.load(Ordering::Relaxed));
            }
            sum_ns = sum_ns.wrapping_add(shard.sum_ns.load(Ordering::Relaxed));
        }
        HistogramSnapshot {
            // The count is the sum of the buckets, so `+Inf` always equals `_count`.
            count: buckets.iter().sum(),
            buckets,
            sum: sum_ns as f64 / 1e9,
            exemplars: std::array::from_fn(|i| self.exemplars[i].load()),
        }
    }
}

/// An exemplar as read back: the trace and span, the observed value and when it was recorded.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ExemplarSnapshot {
    /// The sampled request's trace.
    pub trace_id: TraceId,
    /// The sampled request's span.
    pub span_id: SpanId,
    /// The observed duration, seconds.
    pub value: f64,
    /// When it was recorded (millisecond precision).
    pub timestamp: SystemTime,
}

/// One series' histogram at the time of reading.
///
/// ```
/// # use observe_core::metrics::{HistogramSnapshot, DURATION_BUCKETS};
/// let bounds: &[f64] = HistogramSnapshot::bounds();
/// assert_eq!(bounds, &DURATION_BUCKETS[..]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Per-bucket (not cumulative) counts; index `i < 14` is `le = DURATION_BUCKETS[i]`, the
    /// last is `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Sum of all observations, seconds.
    pub sum: f64,
    /// Number of observations (equals the sum of `buckets`).
    pub count: u64,
    /// The latest exemplar of each bucket, if any.
    pub exemplars: [Option<ExemplarSnapshot>; BUCKETS],
}

impl HistogramSnapshot {
    /// The finite bucket bounds, seconds.
    pub fn bounds() -> &'static [f64] {
        &DURATION_BUCKETS
    }

    /// Cumulative counts, as exposed in `_bucket{le=…}`.
    pub fn cumulative(&self) -> [u64; BUCKETS] {
        let mut acc = 0;
        std::array::from_fn(|i| {
            acc += self.buckets[i];
            acc
        })
    }

    /// An estimate of the `q` quantile (0..=1) by linear interpolation within the bucket, the
    /// way Prometheus' `histogram_quantile` computes it. `None` when empty.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use observe_core::metrics::*;
    /// let m = Metrics::new(MetricsConfig::default());
    /// let labels = HttpServerLabels {
    ///     method: HttpMethod::Get, scheme: UrlScheme::Http, route: None, status: 200, error: None,
    /// };
    /// for _ in 0..4 {
    ///     m.http_server().record(labels, Duration::from_millis(60), None); // (0.05, 0.075]
    /// }
    /// let h = &m.http_server().snapshot()[0].histogram;
    /// assert_eq!(h.cumulative()[3], 0);
    /// assert_eq!(h.cumulative()[4], 4);
    /// assert!((h.quantile(0.5).unwrap() - 0.0625).abs() < 1e-9);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let cum = self.cumulative();
        let i = cum.iter().position(|&c| c as f64 >= rank)?;
        if i == BUCKETS - 1 {
            return Some(DURATION_BUCKETS[BUCKETS - 2]);
        }
        let (lo, lo_count) = if i == 0 {
            (0.0, 0)
        } else {
            (DURATION_BUCKETS[i - 1], cum[i - 1])
        };
        let in_bucket = (cum[i] - lo_count) as f64;
        let frac = if in_bucket > 0.0 {
            (rank - lo_count as f64) / in_bucket
        } else {
            0.0
        };
        Some(lo + (DURATION_BUCKETS[i] - lo) * frac)
    }
}

/// Which series a snapshot belongs to: a label set, or the overflow series.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Series<L> {
    /// The series of this label set.
    Labels(L),
    /// The single series past the cardinality limit (`otel_metric_overflow="true"`).
    Overflow,
}

/// A series and its histogram, as returned by the `snapshot()` methods.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSnapshot<L> {
    /// The series.
    pub series: Series<L>,
    /// Its counts.
    pub histogram: HistogramSnapshot,
}

/// A histogram family bounded to `limit` label sets plus one overflow series.
///
/// Recording a label set seen before takes no lock and no read-modify-write other than the
/// series' own counters: the label set is hashed and looked up in an open-addressing table of
/// pointers that readers only load. Inserting a new label set (and growing the table) is
/// serialized by a mutex that recorders of existing label sets never touch.
///
/// Entries and tables live until the family is dropped: a reader may still be probing a table
/// that was just replaced by a larger one, and an entry's series is never removed (label sets
/// are bounded by `limit`, so the memory is too: at most `limit` entries, and tables whose
/// total size is under twice the last one's).
pub(crate) struct HistogramFamily<K> {
    /// The current table; always at most half full, so every probe ends at an empty slot.
    table: AtomicPtr<Table<K>>,
    writer: Mutex<Writer<K>>,
    hasher: foldhash::fast::RandomState,
    overflow: HistogramSeries,
    overflowed: AtomicU64,
    /// Label sets held, written under the insert mutex: once it reaches `limit`, a new label set
    /// goes to the overflow series without taking the mutex (a flood of new label sets must not
    /// queue every request on one lock).
    len: AtomicUsize,
    limit: usize,
    /// This family's own number, never reused: what the per-thread series cache is keyed by
    /// (an address could be reused by a family made after this one is dropped).
    id: u64,
}

struct Entry<K> {
    key: K,
    series: HistogramSeries,
}

struct Table<K> {
    slots: Box<[AtomicPtr<Entry<K>>]>,
}

impl<K> Table<K> {
    fn new(capacity: usize) -> Self {
        Table {
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }

    /// Puts `entry` in the first empty slot of its probe sequence (writer only).
    fn insert(&self, hash: u64, entry: *mut Entry<K>) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while !self.slots[i].load(Ordering::Relaxed).is_null() {
            i = (i + 1) & mask;
        }
        // Release: a reader that loads the pointer sees the entry fully built.
        self.slots[i].store(entry, Ordering::Release);
    }
}

/// What only the writer (under the mutex) touches. Owns every entry and table.
struct Writer<K> {
    /// Every entry, in insertion order, from `Box::into_raw`; freed in `Drop`.
    entries: Vec<(u64, *mut Entry<K>)>,
    /// Every table ever published, the current one last; freed in `Drop`.
    tables: Vec<*mut Table<K>>,
}

const INITIAL_SLOTS: usize = 16;

/// The next family's id; 0 marks an empty cache slot. A `u64` counter does not wrap.
static NEXT_FAMILY_ID: AtomicU64 = AtomicU64::new(1);

/// A label set's identity for the per-thread series cache: two words that are equal only for
/// equal label sets (interned values by address, small fields packed). The converse need not
/// hold: equal label sets with different identities (an interned value's twin record) only
/// miss the cache.
pub(crate) type Identity = [u64; 2];

/// One per-thread cache slot: the series a family holds for a label set's identity, and this
/// thread's shard of it (null when the thread has no recorder number).
#[derive(Copy, Clone)]
struct CachedSeries {
    /// The family's `id`; 0 for an empty slot.
    family: u64,
    identity: Identity,
    series: *const HistogramSeries,
    shard: *const HistogramShard,
}

impl CachedSeries {
    const EMPTY: CachedSeries = CachedSeries {
        family: 0,
        identity: [0; 2],
        series: std::ptr::null(),
        shard: std::ptr::null(),
    };
}

/// Slots of the per-thread series cache (direct-mapped by identity, shared by all families).
const SERIES_CACHE_SLOTS: usize = 8;

thread_local! {
    /// The series found last for a few label sets: a repeated label set skips hashing and
    /// probing. A pointer here is only dereferenced by the family whose `id` the slot names,
    /// while it is borrowed (`&self`); a family frees its series only when dropped, and its id
    /// is never given to another family, so a slot of a dropped family is never read again.
    static SERIES_CACHE: [Cell<CachedSeries>; SERIES_CACHE_SLOTS] =
        const { [const { Cell::new(CachedSeries::EMPTY) }; SERIES_CACHE_SLOTS] };
}

/// Empties this thread's series cache: called when the thread gives its recorder number back,
/// so that it never writes a shard of that number again (see [`super::recorder`]).
pub(crate) fn forget_shards() {
    // A cache with no destructor: still there while the thread's other destructors run.
    let _ =
        SERIES_CACHE.try_with(|cache| cache.iter().for_each(|slot| slot.set(CachedSeries::EMPTY)));
}

#[inline(always)]
fn cache_slot(identity: &Identity) -> usize {
    // Interned values are 24-byte heap records (32 bytes apart or more); the packed word's
    // low bits hold the method and its bits from 16 the status.
    (identity[0] ^ (identity[0] >> 16) ^ (identity[1] >> 5)) as usize % SERIES_CACHE_SLOTS
}

// SAFETY: the raw pointers are owned by the family (freed only in `Drop`, which needs `&mut`);
// shared access is to `Entry<K>` (a `K` compared and read, a series of atomics) and to tables
// of atomics, so sharing the family is as safe as sharing `K`.
unsafe impl<K: Send + Sync> Send for HistogramFamily<K> {}
// SAFETY: see `Send`.
unsafe impl<K: Send + Sync> Sync for HistogramFamily<K> {}

impl<K> Drop for HistogramFamily<K> {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for &(_, entry) in &writer.entries {
            // SAFETY: made by `Box::into_raw` in `insert`, freed once, here.
            drop(unsafe { Box::from_raw(entry) });
        }
        for &table in &writer.tables {
            // SAFETY: made by `Box::into_raw` in `new`/`grow`, freed once, here.
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

impl<K: Copy + Eq + Hash> HistogramFamily<K> {
    pub(crate) fn new(limit: usize) -> Self {
        let table = Box::into_raw(Box::new(Table::new(INITIAL_SLOTS)));
        HistogramFamily {
            table: AtomicPtr::new(table),
            writer: Mutex::new(Writer {
                entries: Vec::new(),
                tables: vec![table],
            }),
            hasher: foldhash::fast::RandomState::default(),
            overflow: HistogramSeries::default(),
            overflowed: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            limit,
            id: NEXT_FAMILY_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The series of `key`, if the family holds it. Inlined into the recording path, where it
    /// runs on every request.
    #[inline(always)]
    fn find(&self, key: &K, hash: u64) -> Option<&HistogramSeries> {
        // SAFETY: tables are freed only when the family is dropped, which `&self` excludes;
        // Acquire pairs with the Release that published the table.
        let table = unsafe { &*self.table.load(Ordering::Acquire) };
        let mask = table.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let entry = table.slots[i].load(Ordering::Acquire);
            if entry.is_null() {
                return None;
            }
            // SAFETY: entries are freed only when the family is dropped; Acquire pairs with
            // the Release in `Table::insert`, so the entry is fully initialised.
            let entry = unsafe { &*entry };
            if entry.key == *key {
                return Some(&entry.series);
            }
            i = (i + 1) & mask;
        }
    }

    #[cfg(test)]
    pub(crate) fn observe(&self, key: K, elapsed: Duration, exemplar: Option<Exemplar>) {
        self.observe_ns(key, duration_ns(elapsed), exemplar);
    }

    /// Records `ns` nanoseconds for `key`.
    #[inline]
    pub(crate) fn observe_ns(&self, key: K, ns: u64, exemplar: Option<Exemplar>) {
        let hash = self.hasher.hash_one(key);
        match self.find(&key, hash) {
            Some(series) => series.observe_ns(ns, exemplar),
            None => match self.insert(key, hash) {
                Some(series) => series.observe_ns(ns, exemplar),
                None => self.observe_overflow(ns, exemplar),
            },
        }
    }

    /// Records `ns` nanoseconds for the label set `key()` makes, through the per-thread cache
    /// when `identity` is given. `identity` must be equal only for equal keys (see
    /// [`Identity`]); `None` (a label set that has none) takes the uncached path. The key is
    /// only made when the cache misses: a hit needs nothing but the identity.
    #[inline(always)]
    pub(crate) fn observe_ns_cached(
        &self,
        identity: Option<Identity>,
        key: impl FnOnce() -> K,
        ns: u64,
        exemplar: Option<Exemplar>,
    ) {
        let Some(identity) = identity else {
            return self.observe_ns_uncached(key(), ns, exemplar);
        };
        let slot = cache_slot(&identity);
        let cached = SERIES_CACHE.with(|cache| cache[slot].get());
        if cached.family == self.id && cached.identity == identity {
            // SAFETY: the slot was filled by this family (ids are never reused) with one of its
            // entries' series and this thread's shard of it, which live until the family is
            // dropped; `&self` excludes that. The shard is this thread's: the cache is emptied
            // before the thread gives its number back.
            let (series, shard) = unsafe { (&*cached.series, cached.shard.as_ref()) };
            return series.observe_ns_in(shard, ns, exemplar);
        }
        self.observe_ns_and_cache(key(), identity, slot, ns, exemplar);
    }

    #[inline(never)]
    fn observe_ns_uncached(&self, key: K, ns: u64, exemplar: Option<Exemplar>) {
        self.observe_ns(key, ns, exemplar);
    }

    /// The cache missed: look the key up as usual and remember where its series is. A key
    /// that goes to the overflow series is not cached, so every such observation is counted.
    #[inline(never)]
    fn observe_ns_and_cache(
        &self,
        key: K,
        identity: Identity,
        slot: usize,
        ns: u64,
        exemplar: Option<Exemplar>,
    ) {
        let hash = self.hasher.hash_one(key);
        // A first-seen label set is cached (with this thread's shard) from its first
        // observation, so the next one allocates nothing.
        let Some(series) = self.find(&key, hash).or_else(|| self.insert(key, hash)) else {
            return self.observe_overflow(ns, exemplar);
        };
        // Without a number (all taken, or the thread is exiting) the series is cached with no
        // shard and recorded through its shared counters.
        let shard = super::recorder::current().map(|n| series.shards.of(n));
        let _ = SERIES_CACHE.try_with(|cache| {
            cache[slot].set(CachedSeries {
                family: self.id,
                identity,
                series,
                shard: shard.map_or(std::ptr::null(), std::ptr::from_ref),
            })
        });
        series.observe_ns_in(shard, ns, exemplar);
    }

    /// The series of a label set not found: inserted, or `None` (for the overflow series) when
    /// the family is full.
    #[cold]
    #[inline(never)]
    fn insert(&self, key: K, hash: u64) -> Option<&HistogramSeries> {
        if self.len.load(Ordering::Acquire) >= self.limit {
            // Full. The Acquire pairs with the Release below: a label set inserted as the last
            // one is visible now, so look once more before overflowing.
            return self.find(&key, hash);
        }
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Another recorder may have inserted it since our lookup.
        if let Some(series) = self.find(&key, hash) {
            return Some(series);
        }
        if writer.entries.len() >= self.limit {
            return None;
        }
        let entry = Box::into_raw(Box::new(Entry {
            key,
            series: HistogramSeries::default(),
        }));
        writer.entries.push((hash, entry));
        let current = *writer.tables.last().expect("a table from `new`");
        // SAFETY: owned by `writer.tables`, freed only in `Drop`.
        let capacity = unsafe { &*current }.slots.len();
        if writer.entries.len() * 2 > capacity {
            // Grow: a new table with every entry, published whole; readers still probing the
            // old one find what it had, and a miss there only sends them here.
            let table = Table::new(capacity * 2);
            for &(h, e) in &writer.entries {
                table.insert(h, e);
            }
            let table = Box::into_raw(Box::new(table));
            writer.tables.push(table);
            self.table.store(table, Ordering::Release);
        } else {
            // SAFETY: as above.
            unsafe { &*current }.insert(hash, entry);
        }
        // After the entry is in the table: see the Acquire above.
        self.len.store(writer.entries.len(), Ordering::Release);
        // SAFETY: just made, freed only in `Drop`.
        Some(&unsafe { &*entry }.series)
    }

    fn observe_overflow(&self, ns: u64, exemplar: Option<Exemplar>) {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        crate::counters::METRIC_OVERFLOW.inc();
        self.overflow.observe_ns(ns, exemplar);
    }

    /// Label sets held (not counting the overflow series).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Observations that went to the overflow series.
    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Every series with at least one observation; the overflow series last, if used.
    ///
    /// Holds the insert mutex while copying: recording into existing series goes on, only a
    /// first-seen label set waits.
    pub(crate) fn snapshot(&self) -> Vec<SeriesSnapshot<K>> {
        let mut out: Vec<SeriesSnapshot<K>> = {
            let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            writer
                .entries
                .iter()
                .map(|&(_, entry)| {
                    // SAFETY: entries are freed only in `Drop`.
                    let entry = unsafe { &*entry };
                    SeriesSnapshot {
                        series: Series::Labels(entry.key),
                        histogram: entry.series.snapshot(),
                    }
                })
                .collect()
        };
        if self.overflowed() > 0 {
            out.push(SeriesSnapshot {
                series: Series::Overflow,
                histogram: self.overflow.snapshot(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_bounds_are_inclusive_upper_bounds() {
        let s = HistogramSeries::default();
        s.observe(ms(5), None); // exactly 0.005 -> first bucket
        s.observe(Duration::from_nanos(5_000_001), None); // just above -> second
        s.observe(Duration::from_secs(11), None); // +Inf
        let snap = s.snapshot();
        assert_eq!(snap.buckets[0], 1);
        assert_eq!(snap.buckets[1], 1);
        assert_eq!(snap.buckets[BUCKETS - 1], 1);
        assert_eq!(snap.count, 3);
        assert!((snap.sum - (0.005 + 0.005000001 + 11.0)).abs() < 1e-9);
    }

    #[test]
    fn exemplar_is_kept_per_bucket_latest_wins() {
        let s = HistogramSeries::default();
        let a = Exemplar {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
        };
        let b = Exemplar {
            trace_id: TraceId([3; 16]),
            span_id: SpanId([4; 8]),
        };
        s.observe(ms(1), Some(a));
        s.observe(ms(2), Some(b));
        s.observe(ms(300), Some(a));
        let snap = s.snapshot();
        let e0 = snap.exemplars[0].expect("exemplar in first bucket");
        assert_eq!(e0.trace_id, b.trace_id);
        assert_eq!(e0.span_id, b.span_id);
        assert!((e0.value - 0.002).abs() < 1e-12);
        assert_eq!(snap.exemplars[7].map(|e| e.trace_id), Some(a.trace_id));
        assert!(snap.exemplars[1].is_none());
    }

    #[test]
    fn family_grows_and_finds_every_label_set() {
        let f: HistogramFamily<u32> = HistogramFamily::new(5_000);
        for round in 1..=3u64 {
            for k in 0..1_000u32 {
                f.observe(k, ms(1), None);
            }
            assert_eq!(f.len(), 1_000);
            let snap = f.snapshot();
            assert_eq!(snap.len(), 1_000);
            assert!(snap.iter().all(|s| s.histogram.count == round));
        }
        assert_eq!(f.overflowed(), 0);
    }

    #[test]
    fn concurrent_first_observations_insert_each_label_set_once() {
        let f: HistogramFamily<u32> = HistogramFamily::new(10_000);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let f = &f;
                scope.spawn(move || {
                    // Each thread walks the keys in a different order, so inserts, growth and
                    // lookups interleave.
                    for i in 0..2_000u32 {
                        let k = if t % 2 == 0 { i } else { 1_999 - i };
                        f.observe(k % 700, ms(1), None);
                    }
                });
            }
        });
        let snap = f.snapshot();
        assert_eq!(snap.len(), 700);
        let total: u64 = snap.iter().map(|s| s.histogram.count).sum();
        assert_eq!(total, 4 * 2_000);
        let mut keys: Vec<u32> = snap
            .iter()
            .map(|s| match s.series {
                Series::Labels(k) => k,
                Series::Overflow => panic!("no overflow expected"),
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 700);
    }

    #[test]
    fn concurrent_recording_past_the_limit_loses_nothing() {
        let f: HistogramFamily<u32> = HistogramFamily::new(50);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let f = &f;
                scope.spawn(move || {
                    for i in 0..1_000u32 {
                        f.observe((i * 7 + t) % 200, ms(1), None);
                    }
                });
            }
        });
        let snap = f.snapshot();
        let in_series: u64 = snap
            .iter()
            .filter(|s| s.series != Series::Overflow)
            .map(|s| s.histogram.count)
            .sum();
        assert_eq!(f.len(), 50);
        assert_eq!(snap.len(), 51, "50 label sets and the overflow series");
        assert_eq!(
            in_series + f.overflowed(),
            4_000,
            "every observation counted once"
        );
        let overflow = snap.iter().find(|s| s.series == Series::Overflow).unwrap();
        assert_eq!(overflow.histogram.count, f.overflowed());
    }

    #[test]
    fn family_overflows_past_limit() {
        let f = HistogramFamily::<u32>::new(3);
        for k in 0..10u32 {
            f.observe(k, ms(1), None);
        }
        f.observe(1, ms(1), None); // existing key still lands in its own series
        assert_eq!(f.len(), 3);
        assert_eq!(f.overflowed(), 7);
        let snap = f.snapshot();
        assert_eq!(snap.len(), 4);
        let over = snap.iter().find(|s| s.series == Series::Overflow).unwrap();
        assert_eq!(over.histogram.count, 7);
        let one = snap.iter().find(|s| s.series == Series::Labels(1)).unwrap();
        assert_eq!(one.histogram.count, 2);
    }

    /// Every value lands in the bucket the `le` rule gives (first bound `>=` the value), at
    /// and around every bound and every power of two, and for the extremes.
    #[test]
    fn bucket_index_agrees_with_a_search_of_the_bounds() {
        let expected = |ns: u64| BOUNDS_NS.partition_point(|&b| b < ns);
        let mut values = vec![0, 1, u64::MAX - 1, u64::MAX];
        for b in BOUNDS_NS {
            values.extend([b - 1, b, b + 1]);
        }
        for shift in 0..64 {
            let p = 1u64 << shift;
            values.extend([p - 1, p, p + 1]);
        }
        // And a spread of values in between (a fixed LCG, so the test is repeatable).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(x >> (x % 40));
        }
        for ns in values {
            assert_eq!(bucket_index(ns), expected(ns), "{ns} ns");
        }
    }

    fn count_of(f: &HistogramFamily<u32>, key: u32) -> u64 {
        f.snapshot()
            .iter()
            .find(|s| s.series == Series::Labels(key))
            .map_or(0, |s| s.histogram.count)
    }

    /// More label sets than cache slots, alternating: every observation still lands in its
    /// own label set's series, whether the cache hits, misses or was overwritten.
    #[test]
    fn series_cache_gives_each_label_set_its_own_series() {
        let f: HistogramFamily<u32> = HistogramFamily::new(100);
        let keys: Vec<u32> = (0..3 * SERIES_CACHE_SLOTS as u32).collect();
        for round in 0..5u32 {
            for &k in &keys {
                for _ in 0..=k % 3 {
                    f.observe_ns_cached(Some([u64::from(k), 7]), || k, 1_000, None);
                }
            }
            // Alternate two keys back to back as well.
            for i in 0..10 {
                let k = [1, 2][i % 2];
                f.observe_ns_cached(Some([u64::from(k), 7]), || k, 1_000, None);
            }
            for &k in &keys {
                let extra = if k == 1 || k == 2 { 5 * (round + 1) } else { 0 };
                assert_eq!(
                    count_of(&f, k),
                    u64::from((k % 3 + 1) * (round + 1) + extra),
                    "key {k}, round {round}"
                );
            }
        }
        assert_eq!(f.len(), keys.len());
        assert_eq!(f.overflowed(), 0);
    }

    /// Two families share the thread's cache: the same identity in each is its own series.
    #[test]
    fn series_cache_keeps_families_apart() {
        let a: HistogramFamily<u32> = HistogramFamily::new(10);
        let b: HistogramFamily<u32> = HistogramFamily::new(10);
        assert_ne!(a.id, b.id);
        for _ in 0..3 {
            a.observe_ns_cached(Some([1, 0]), || 1, 1_000, None);
            b.observe_ns_cached(Some([1, 0]), || 1, 1_000, None);
            b.observe_ns_cached(Some([1, 0]), || 1, 1_000, None);
        }
        assert_eq!(count_of(&a, 1), 3);
        assert_eq!(count_of(&b, 1), 6);
    }

    /// A family made after another is dropped (often at the same address) gets a new id, so
    /// the dropped family's cached series is never used: its observations reach its own.
    #[test]
    fn series_cache_never_uses_a_dropped_familys_series() {
        let mut ids = Vec::new();
        for _ in 0..20 {
            let f = Box::new(HistogramFamily::<u32>::new(10));
            ids.push(f.id);
            for _ in 0..2 {
                f.observe_ns_cached(Some([4, 0]), || 4, 1_000, None);
            }
            assert_eq!(count_of(&f, 4), 2, "a fresh family counts only its own");
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "family ids are never reused");
    }

    /// At the limit, a label set that goes to the overflow series is not cached: each of its
    /// observations is counted as overflow, and cached label sets keep their own series.
    #[test]
    fn series_cache_counts_every_overflowing_observation() {
        let f = HistogramFamily::<u32>::new(2);
        for round in 1..=4u64 {
            for k in 0..5u32 {
                f.observe_ns_cached(Some([u64::from(k), 0]), || k, 1_000, None);
            }
            assert_eq!(f.overflowed(), 3 * round);
            assert_eq!(count_of(&f, 0), round);
            assert_eq!(count_of(&f, 1), round);
        }
        let snap = f.snapshot();
        let over = snap.iter().find(|s| s.series == Series::Overflow).unwrap();
        assert_eq!(over.histogram.count, 12);
        assert_eq!(f.len(), 2);
    }

    /// Without an identity the cache is bypassed, and a cached label set seen again without
    /// one still reaches the same series.
    #[test]
    fn observation_without_identity_reaches_the_same_series() {
        let f = HistogramFamily::<u32>::new(10);
        f.observe_ns_cached(Some([9, 0]), || 9, 1_000, None);
        f.observe_ns_cached(None, || 9, 1_000, None);
        f.observe_ns(9, 1_000, None);
        assert_eq!(count_of(&f, 9), 3);
        assert_eq!(f.len(), 1);
    }

    /// Each thread has its own cache: recorders on several threads, each alternating label
    /// sets, lose nothing.
    #[test]
    fn series_cache_is_per_thread() {
        let f = HistogramFamily::<u32>::new(100);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let f = &f;
                scope.spawn(move || {
                    for i in 0..1_000u32 {
                        let k = (i + t) % 20;
                        f.observe_ns_cached(Some([u64::from(k), 1]), || k, 1_000, None);
                    }
                });
            }
        });
        let total: u64 = f.snapshot().iter().map(|s| s.histogram.count).sum();
        assert_eq!(total, 4_000);
        for k in 0..20 {
            assert_eq!(count_of(&f, k), 200, "key {k}");
        }
    }

    /// Threads record through their own shards, exit and are followed by others that take
    /// their numbers back: the snapshot adds every shard up, and a series has no more shards
    /// than threads ever recorded it at once.
    #[test]
    fn shards_add_up_across_threads_that_come_and_go() {
        let f = HistogramFamily::<u32>::new(10);
        for wave in 1..=5u64 {
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    scope.spawn(|| {
                        for _ in 0..1_000 {
                            f.observe_ns_cached(Some([5, 0]), || 5, 7_000_000, None);
                        }
                    });
                }
            });
            let snap = f.snapshot();
            let h = &snap[0].histogram;
            assert_eq!(h.count, 3_000 * wave, "wave {wave}");
            assert_eq!(h.buckets[1], 3_000 * wave, "7 ms is in (5 ms, 10 ms]");
            assert!(
                (h.sum - 0.007 * (3_000 * wave) as f64).abs() < 1e-6,
                "{}",
                h.sum
            );
        }
        // SAFETY: the family is alive; entries are freed only when it is dropped.
        let writer = f.writer.lock().unwrap();
        let series = unsafe { &(*writer.entries[0].1).series };
        let shards = series.shards.iter().count();
        // Other tests' threads may hold numbers meanwhile, so a wave may take fresh ones; 15
        // threads in all never made 15 shards unless numbers were never given back.
        assert!(
            (1..15).contains(&shards),
            "{shards} shards for 3 threads at a time"
        );
    }

    /// A thread that records while it exits, after giving its number back, records through
    /// the shared counters: nothing is lost, and it never writes a shard another thread may
    /// now own.
    #[test]
    fn a_thread_recording_as_it_exits_loses_nothing() {
        struct RecordOnExit(&'static HistogramFamily<u32>);
        impl Drop for RecordOnExit {
            fn drop(&mut self) {
                for _ in 0..10 {
                    self.0.observe_ns_cached(Some([6, 0]), || 6, 1_000, None);
                }
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<RecordOnExit>> =
                const { std::cell::RefCell::new(None) };
        }
        let f: &'static HistogramFamily<u32> = Box::leak(Box::new(HistogramFamily::new(10)));
        // Made here (a first observation goes to the shared counters too), so that the shared
        // counters below hold this one and the exiting threads' only.
        f.observe_ns(6, 1_000, None);
        for _ in 0..4 {
            std::thread::spawn(move || {
                // Registered before the thread's recorder number, so (destructors running in
                // reverse order) it records after the number is given back.
                ON_EXIT.with(|cell| *cell.borrow_mut() = Some(RecordOnExit(f)));
                for _ in 0..100 {
                    f.observe_ns_cached(Some([6, 0]), || 6, 1_000, None);
                }
            })
            .join()
            .unwrap();
        }
        assert_eq!(count_of(f, 6), 1 + 4 * 110);
        let writer = f.writer.lock().unwrap();
        // SAFETY: the family is leaked; entries are freed only when it is dropped.
        let series = unsafe { &(*writer.entries[0].1).series };
        assert_eq!(
            series.buckets[0].load(Ordering::Relaxed),
            1 + 4 * 10,
            "what the exiting threads recorded went to the shared counters"
        );
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let s = HistogramSeries::default();
        for _ in 0..10 {
            s.observe(ms(20), None); // bucket (0.01, 0.025]
        }
        let q = s.snapshot().quantile(0.5).unwrap();
        assert!((q - 0.0175).abs() < 1e-9, "{q}");
        assert_eq!(HistogramSeries::default().snapshot().quantile(0.5), None);
    }
}
