//! A bounded batch span processor that counts exactly what it drops.
//!
//! The SDK's `BatchSpanProcessor` only logs its drop count (once, and again at shutdown), so
//! observe runs its own: a bounded queue filled by `on_end` (a full queue drops the span and
//! counts it), one worker thread with a current-thread Tokio runtime that exports batches
//! (each export bounded by the export timeout; a failed batch counts all its spans), and a
//! shutdown that returns by its deadline even when the collector never answers, counting
//! whatever it could not deliver.
//!
//! Invariant (tested): every sampled span that reaches `on_end` is eventually either
//! delivered (`delivered()`) or counted in [`crate::counters::SPANS_DROPPED`]. The one
//! exception is a batch still in flight when a shutdown deadline passes: it is counted as
//! dropped even if the collector accepts it later.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::collector::SpanStore;
use crate::config::BatchConfig;
use crate::counters::{EXPORT_ERRORS, SPANS_DROPPED};

/// How often an export failure may be logged: the first one, then at most once per interval
/// with the number of failures in between, so a collector outage never floods the logs.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    queue: VecDeque<SpanData>,
    in_flight: usize,
    shutdown: bool,
    deadline: Option<Instant>,
    abandoned: bool,
    exited: bool,
    flush_requested: u64,
    flush_done: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker.
    work: Condvar,
    /// Wakes callers waiting for a flush or the worker's exit.
    done: Condvar,
    delivered: AtomicU64,
    batch: BatchConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the queue is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`BatchProcessor`] is made of; exported spans go to the exporter, every sampled span
/// also to the optional store.
pub(crate) struct BatchProcessor {
    shared: Option<Arc<Shared>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    store: Option<Arc<SpanStore>>,
}

impl std::fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("exporting", &self.shared.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

/// Outcome of [`BatchProcessor::shutdown_report`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProcessorShutdown {
    pub dropped: u64,
    pub timed_out: bool,
}

impl BatchProcessor {
    /// A processor that only feeds the in-process store.
    pub(crate) fn store_only(store: Arc<SpanStore>) -> Self {
        BatchProcessor {
            shared: None,
            worker: Mutex::new(None),
            store: Some(store),
        }
    }

    /// Starts the worker thread, which builds the exporter with `build` inside its own Tokio
    /// runtime (tonic's channel needs one) and returns once it has.
    pub(crate) fn spawn<E, F>(
        batch: BatchConfig,
        resource: Resource,
        store: Option<Arc<SpanStore>>,
        build: F,
    ) -> Result<Self, String>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            delivered: AtomicU64::new(0),
            batch,
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let worker_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("observe-span-export".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start the export runtime: {e}")));
                        return;
                    }
                };
                let exporter = {
                    let _entered = rt.enter();
                    build()
                };
                let mut exporter = match exporter {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                exporter.set_resource(&resource);
                let _ = tx.send(Ok(()));
                run_worker(&worker_shared, &rt, &exporter);
                let _ = exporter.shutdown_with_timeout(Duration::from_millis(100));
            })
            .map_err(|e| format!("cannot spawn the span export thread: {e}"))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(BatchProcessor {
                shared: Some(shared),
                worker: Mutex::new(Some(handle)),
                store,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err("the span export thread exited during start-up".into()),
        }
    }

    /// Spans the exporter accepted so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.delivered.load(Ordering::Relaxed))
    }

    /// Shuts down within `timeout`; what could not be delivered is counted and reported.
    pub(crate) fn shutdown_report(&self, timeout: Duration) -> ProcessorShutdown {
        let Some(shared) = &self.shared else {
            return ProcessorShutdown::default();
        };
        let deadline = Instant::now() + timeout;
        let mut st = shared.lock();
        if st.shutdown {
            return ProcessorShutdown::default();
        }
        st.shutdown = true;
        st.deadline = Some(deadline);
        shared.work.notify_all();
        while !st.exited {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = shared
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if st.exited {
            drop(st);
            if let Some(h) = self.worker.lock().ok().and_then(|mut w| w.take()) {
                let _ = h.join();
            }
            return ProcessorShutdown::default();
        }
        // The collector is stalled: give up on what is queued and in flight, count it, and
        // leave the worker to finish on its own (its export is bounded by the export timeout).
        st.abandoned = true;
        let dropped = (st.queue.len() + st.in_flight) as u64;
        st.queue.clear();
        st.in_flight = 0;
        SPANS_DROPPED.add(dropped);
        ProcessorShutdown {
            dropped,
            timed_out: true,
        }
    }
}

fn run_worker<E: SpanExporter>(shared: &Shared, rt: &tokio::runtime::Runtime, exporter: &E) {
    let cfg = &shared.batch;
    let mut next_export = Instant::now() + cfg.schedule_delay;
    let mut errors_since_log: u64 = 0;
    let mut last_log: Option<Instant> = None;
    loop {
        let mut st = shared.lock();
        loop {
            if st.abandoned {
                st.exited = true;
                shared.done.notify_all();
                return;
            }
            let flush_pending = st.flush_requested > st.flush_done;
            if st.queue.len() >= cfg.max_export_batch_size
                || st.shutdown
                || flush_pending
                || (Instant::now() >= next_export && !st.queue.is_empty())
            {
                break;
            }
            let now = Instant::now();
            if now >= next_export {
                next_export = now + cfg.schedule_delay;
            }
            st = shared
                .work
                .wait_timeout(st, next_export - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let n = st.queue.len().min(cfg.max_export_batch_size);
        let batch: Vec<SpanData> = st.queue.drain(..n).collect();
        st.in_flight = n;
        let flush_target = st.flush_requested;
        let mut timeout = cfg.export_timeout;
        if let Some(deadline) = st.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        drop(st);

        let result = if batch.is_empty() {
            Ok(())
        } else {
            match rt.block_on(async { tokio::time::timeout(timeout, exporter.export(batch)).await })
            {
                Ok(r) => r,
                Err(_) => Err(OTelSdkError::Timeout(timeout)),
            }
        };
        next_export = Instant::now() + cfg.schedule_delay;

        let mut st = shared.lock();
        if st.abandoned {
            // The shutdown caller already counted this batch.
            st.exited = true;
            shared.done.notify_all();
            return;
        }
        st.in_flight = 0;
        match result {
            Ok(()) => {
                shared.delivered.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                SPANS_DROPPED.add(n as u64);
                EXPORT_ERRORS.inc();
                errors_since_log += 1;
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL) {
                    tracing::warn!(
                        target: "observe::trace",
                        error = %e,
                        failed_exports = errors_since_log,
                        "span export failed; spans dropped (logged at most every 10 s)"
                    );
                    errors_since_log = 0;
                    last_log = Some(now);
                }
            }
        }
        if st.queue.is_empty() && flush_target > st.flush_done {
            st.flush_done = flush_target;
            shared.done.notify_all();
        }
        if st.shutdown && st.queue.is_empty() {
            st.exited = true;
            shared.done.notify_all();
            return;
        }
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let Some(shared) = &self.shared else {
            if let Some(store) = &self.store {
                store.record(span);
            }
            return;
        };
        if let Some(store) = &self.store {
            store.record(span.clone());
        }
        let mut st = shared.lock();
        if st.shutdown || st.queue.len() >= shared.batch.max_queue_size {
            SPANS_DROPPED.inc();
            return;
        }
        st.queue.push_back(span);
        if st.queue.len() >= shared.batch.max_export_batch_size {
            shared.work.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let limit = shared.batch.export_timeout + Duration::from_secs(1);
        let deadline = Instant::now() + limit;
        let mut st = shared.lock();
        if st.exited || st.shutdown {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        st.flush_requested += 1;
        let target = st.flush_requested;
        shared.work.notify_all();
        while st.flush_done < target && !st.exited {
            let now = Instant::now();
            if now >= deadline {
                return Err(OTelSdkError::Timeout(limit));
            }
            st = shared
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let r = self.shutdown_report(timeout);
        if r.timed_out {
            Err(OTelSdkError::Timeout(timeout))
        } else {
            Ok(())
        }
    }
}
