//! The in-process span collector: a bounded ring of recently finished spans.
//!
//! It lets the status page show recent slow or failed traces, and an example print a
//! waterfall, with no collector running anywhere. Memory is bounded by the span count given
//! at construction (each span is itself bounded by the SDK's span limits); the oldest span is
//! overwritten first.
//!
//! ```
//! use observe_core::trace::collector::SpanStore;
//! use observe_core::otel::opentelemetry::trace::{Tracer, TracerProvider, Span};
//! use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
//! use std::sync::Arc;
//!
//! let store = Arc::new(SpanStore::new(100));
//! let provider = SdkTracerProvider::builder()
//!     .with_span_processor(store.processor())
//!     .build();
//! let tracer = provider.tracer("doc");
//! let mut span = tracer.start("GET /users/{id}");
//! let trace_id = span.span_context().trace_id();
//! span.end();
//! let spans = store.trace(trace_id.into());
//! assert_eq!(spans.len(), 1);
//! assert_eq!(spans[0].name, "GET /users/{id}");
//! assert_eq!(store.recent_traces(10)[0].root_name, "GET /users/{id}");
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::Status;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::context::TraceId;

/// A bounded ring of recently finished (sampled) spans, queryable by trace.
#[derive(Debug)]
pub struct SpanStore {
    capacity: usize,
    spans: Mutex<VecDeque<SpanData>>,
}

/// One trace as listed by [`SpanStore::recent_traces`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Name of its root span (or of its earliest span when the root is not in the store).
    pub root_name: String,
    /// When its earliest span started.
    pub start: SystemTime,
    /// From the earliest start to the latest end among its stored spans.
    pub duration: Duration,
    /// How many of its spans are in the store.
    pub span_count: usize,
    /// Whether any of its spans has status `Error`.
    pub error: bool,
}

static GLOBAL: RwLock<Option<Arc<SpanStore>>> = RwLock::new(None);

/// The store installed by [`crate::trace::install`] when `Config::span_collector` is set.
///
/// ```
/// // Nothing installed in this doc test.
/// assert!(observe_core::trace::collector::global().is_none());
/// ```
pub fn global() -> Option<Arc<SpanStore>> {
    GLOBAL.read().ok().and_then(|g| g.clone())
}

pub(crate) fn set_global(store: Option<Arc<SpanStore>>) {
    if let Ok(mut g) = GLOBAL.write() {
        *g = store;
    }
}

impl SpanStore {
    /// A store keeping at most `capacity` spans (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SpanStore {
            capacity,
            spans: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    /// Adds a finished span, evicting the oldest when full.
    pub fn record(&self, span: SpanData) {
        let Ok(mut spans) = self.spans.lock() else {
            return;
        };
        if spans.len() >= self.capacity {
            spans.pop_front();
        }
        spans.push_back(span);
    }

    /// How many spans are held.
    pub fn len(&self) -> usize {
        self.spans.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether no span is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every span.
    pub fn clear(&self) {
        if let Ok(mut s) = self.spans.lock() {
            s.clear();
        }
    }

    /// The stored spans of one trace, earliest start first.
    pub fn trace(&self, trace_id: TraceId) -> Vec<SpanData> {
        let id = opentelemetry::trace::TraceId::from(trace_id);
        let mut out: Vec<SpanData> = match self.spans.lock() {
            Ok(s) => s
                .iter()
                .filter(|s| s.span_context.trace_id() == id)
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by_key(|s| s.start_time);
        out
    }

    /// The most recently finished traces (by their latest span end), newest first.
    pub fn recent_traces(&self, limit: usize) -> Vec<TraceSummary> {
        let Ok(spans) = self.spans.lock() else {
            return Vec::new();
        };
        // (summary, latest end, root found)
        let mut traces: Vec<(TraceSummary, SystemTime, bool)> = Vec::new();
        for s in spans.iter() {
            let id = TraceId::from(s.span_context.trace_id());
            let is_root = s.parent_span_id == opentelemetry::trace::SpanId::INVALID
                || s.parent_span_is_remote;
            let error = matches!(s.status, Status::Error { .. });
            match traces.iter_mut().find(|(t, _, _)| t.trace_id == id) {
                Some((t, end, root)) => {
                    t.span_count += 1;
                    t.error |= error;
                    // A root span names the trace; until one is seen, the earliest span does.
                    let earlier = s.start_time < t.start;
                    if !*root && (is_root || earlier) {
                        t.root_name = s.name.to_string();
                        *root = is_root;
                    }
                    t.start = t.start.min(s.start_time);
                    *end = (*end).max(s.end_time);
                    t.duration = end.duration_since(t.start).unwrap_or_default();
                }
                None => traces.push((
                    TraceSummary {
                        trace_id: id,
                        root_name: s.name.to_string(),
                        start: s.start_time,
                        duration: s.end_time.duration_since(s.start_time).unwrap_or_default(),
                        span_count: 1,
                        error,
                    },
                    s.end_time,
                    is_root,
                )),
            }
        }
        traces.sort_by_key(|t| std::cmp::Reverse(t.1));
        traces.into_iter().take(limit).map(|t| t.0).collect()
    }

    /// A text waterfall of one trace: one line per span, indented by depth, with its offset
    /// and duration in milliseconds.
    pub fn waterfall(&self, trace_id: TraceId) -> String {
        let spans = self.trace(trace_id);
        let Some(t0) = spans.first().map(|s| s.start_time) else {
            return String::new();
        };
        let mut out = String::new();
        let depth = |s: &SpanData| {
            let mut d = 0;
            let mut parent = s.parent_span_id;
            while let Some(p) = spans.iter().find(|x| x.span_context.span_id() == parent) {
                d += 1;
                parent = p.parent_span_id;
                if d > spans.len() {
                    break;
                }
            }
            d
        };
        for s in &spans {
            let offset = s.start_time.duration_since(t0).unwrap_or_default();
            let dur = s.end_time.duration_since(s.start_time).unwrap_or_default();
            let _ = writeln!(
                out,
                "{:indent$}{} +{:.1}ms {:.1}ms{}",
                "",
                s.name,
                offset.as_secs_f64() * 1e3,
                dur.as_secs_f64() * 1e3,
                if matches!(s.status, Status::Error { .. }) {
                    " ERROR"
                } else {
                    ""
                },
                indent = depth(s) * 2
            );
        }
        out
    }

    /// A `SpanProcessor` that records every sampled span into this store, for use on a
    /// tracer provider of your own.
    pub fn processor(self: &Arc<Self>) -> StoreProcessor {
        StoreProcessor(Arc::clone(self))
    }
}

/// The `SpanProcessor` returned by [`SpanStore::processor`].
#[derive(Debug)]
pub struct StoreProcessor(Arc<SpanStore>);

impl SpanProcessor for StoreProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.record(span);
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
