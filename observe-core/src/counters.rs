//! The SDK's own drop and overflow counters.
//!
//! Plain atomics, so that every module (logs, trace, propagation, metrics) can count what it
//! drops without depending on the metrics module; `metrics` exposes them at scrape time as
//! `observe_*_total` counters. Relaxed ordering: they are statistics, not synchronisation.
//!
//! ```
//! use observe_core::counters::{self, Counter};
//! let before = counters::LOG_RECORDS_DROPPED.get();
//! counters::LOG_RECORDS_DROPPED.add(2);
//! assert!(counters::LOG_RECORDS_DROPPED.get() >= before + 2);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// A process-wide monotonic counter.
#[derive(Debug)]
pub struct Counter {
    value: AtomicU64,
    /// The Prometheus name it is exposed under (without `_total`).
    pub name: &'static str,
    /// The help text it is exposed with.
    pub help: &'static str,
}

impl Counter {
    /// A counter starting at zero.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Counter {
            value: AtomicU64::new(0),
            name,
            help,
        }
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Finished spans that were not exported: queue full, export failed, or shutdown timed out.
pub static SPANS_DROPPED: Counter = Counter::new(
    "observe_spans_dropped",
    "Finished spans that observe dropped instead of exporting (queue full, export error, shutdown timeout).",
);
/// Log records lost by the non-blocking writer (queue full) or the OTLP log exporter.
pub static LOG_RECORDS_DROPPED: Counter = Counter::new(
    "observe_log_records_dropped",
    "Log records that observe dropped (non-blocking writer queue full, export failure).",
);
/// Observations sent to the overflow series because a family hit its cardinality limit.
pub static METRIC_OVERFLOW: Counter = Counter::new(
    "observe_metric_overflow",
    "Observations recorded into the otel_metric_overflow series because a family reached its label-set limit.",
);
/// Incoming `traceparent`/`tracestate`/`baggage` headers dropped as malformed or oversized.
pub static PROPAGATION_INVALID: Counter = Counter::new(
    "observe_propagation_invalid_headers",
    "Incoming trace-context or baggage headers that were malformed or oversized and were dropped.",
);
/// Failed export attempts (each batch that failed counts once).
pub static EXPORT_ERRORS: Counter = Counter::new(
    "observe_export_errors",
    "Export attempts (span or log batches) that failed.",
);

/// Every counter above, for exposition.
pub static ALL: [&Counter; 5] = [
    &SPANS_DROPPED,
    &LOG_RECORDS_DROPPED,
    &METRIC_OVERFLOW,
    &PROPAGATION_INVALID,
    &EXPORT_ERRORS,
];
