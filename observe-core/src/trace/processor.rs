//! A bounded batch processor (spans, and log records for OTLP logs) that counts exactly what
//! it drops.
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

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::collector::SpanStore;
use crate::config::BatchConfig;
use crate::counters::{Counter, EXPORT_ERRORS, SPANS_DROPPED};

/// How often an export failure may be logged: the first one, then at most once per interval
/// with the number of failures in between, so a collector outage never floods the logs.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

struct State<T> {
    queue: VecDeque<T>,
    in_flight: usize,
    shutdown: bool,
    deadline: Option<Instant>,
    abandoned: bool,
    exited: bool,
    flush_requested: u64,
    flush_done: u64,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            in_flight: 0,
            shutdown: false,
            deadline: None,
            abandoned: false,
            exited: false,
            flush_requested: 0,
            flush_done: 0,
        }
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the worker.
    work: Condvar,
    /// Wakes callers waiting for a flush or the worker's exit.
    done: Condvar,
    delivered: AtomicU64,
    batch: BatchConfig,
    /// Where drops are counted: `SPANS_DROPPED` or `LOG_RECORDS_DROPPED`.
    dropped: &'static Counter,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock only means a panic elsewhere; the queue is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`BatchProcessor`] is made of; exported spans go to the exporter, every sampled span
/// also to the optional store.
pub(crate) struct BatchProcessor<T = SpanData> {
    shared: Option<Arc<Shared<T>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    store: Option<Arc<SpanStore>>,
}

impl<T> std::fmt::Debug for BatchProcessor<T> {
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

/// A log record queued for export with its scope.
pub(crate) type LogItem = (SdkLogRecord, InstrumentationScope);

impl BatchProcessor<SpanData> {
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
        spawn_worker(
            batch,
            &SPANS_DROPPED,
            store,
            "observe-span-export",
            move || {
                let mut exporter = build()?;
                exporter.set_resource(&resource);
                Ok(Box::new(SpanSink(exporter)) as Box<dyn Sink<SpanData>>)
            },
        )
    }
}

impl BatchProcessor<LogItem> {
    /// The same worker for OTLP log records (drops counted in `LOG_RECORDS_DROPPED`).
    pub(crate) fn spawn_logs<E, F>(
        batch: BatchConfig,
        resource: Resource,
        build: F,
    ) -> Result<Self, String>
    where
        E: LogExporter + 'static,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        spawn_worker(
            batch,
            &crate::counters::LOG_RECORDS_DROPPED,
            None,
            "observe-log-export",
            move || {
                let mut exporter = build()?;
                exporter.set_resource(&resource);
                Ok(Box::new(LogSink(exporter)) as Box<dyn Sink<LogItem>>)
            },
        )
    }
}

/// One exporter, driven by the worker on its runtime.
trait Sink<T> {
    fn export(
        &self,
        rt: &tokio::runtime::Runtime,
        batch: Vec<T>,
        timeout: Duration,
    ) -> OTelSdkResult;
    fn shutdown(&self);
}

struct SpanSink<E>(E);

impl<E: SpanExporter> Sink<SpanData> for SpanSink<E> {
    fn export(
        &self,
        rt: &tokio::runtime::Runtime,
        batch: Vec<SpanData>,
        timeout: Duration,
    ) -> OTelSdkResult {
        // The timer must be created inside the runtime, hence the async block.
        match rt.block_on(async { tokio::time::timeout(timeout, self.0.export(batch)).await }) {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
    fn shutdown(&self) {
        let _ = self.0.shutdown_with_timeout(Duration::from_millis(100));
    }
}

struct LogSink<E>(E);

impl<E: LogExporter> Sink<LogItem> for LogSink<E> {
    fn export(
        &self,
        rt: &tokio::runtime::Runtime,
        batch: Vec<LogItem>,
        timeout: Duration,
    ) -> OTelSdkResult {
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, s)| (r, s)).collect();
        match rt.block_on(async {
            tokio::time::timeout(timeout, self.0.export(LogBatch::new(&refs))).await
        }) {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
    fn shutdown(&self) {
        let _ = self.0.shutdown_with_timeout(Duration::from_millis(100));
    }
}

fn spawn_worker<T, F>(
    batch: BatchConfig,
    dropped: &'static Counter,
    store: Option<Arc<SpanStore>>,
    thread_name: &str,
    build: F,
) -> Result<BatchProcessor<T>, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<Box<dyn Sink<T>>, String> + Send + 'static,
{
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        done: Condvar::new(),
        delivered: AtomicU64::new(0),
        batch,
        dropped,
    });
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let worker_shared = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name(thread_name.into())
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
            let sink = {
                let _entered = rt.enter();
                build()
            };
            let sink = match sink {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(()));
            run_worker(&worker_shared, &rt, sink.as_ref());
            sink.shutdown();
        })
        .map_err(|e| format!("cannot spawn the export thread: {e}"))?;
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
        Err(_) => Err("the export thread exited during start-up".into()),
    }
}

impl<T> BatchProcessor<T> {
    /// Items waiting in the export queue and the queue's bound; `None` without an exporter.
    pub(crate) fn queue_use(&self) -> Option<(usize, usize)> {
        let shared = self.shared.as_ref()?;
        let len = shared.lock().queue.len();
        Some((len, shared.batch.max_queue_size))
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
        shared.dropped.add(dropped);
        ProcessorShutdown {
            dropped,
            timed_out: true,
        }
    }
}

fn run_worker<T>(shared: &Shared<T>, rt: &tokio::runtime::Runtime, sink: &dyn Sink<T>) {
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
        let batch: Vec<T> = st.queue.drain(..n).collect();
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
            sink.export(rt, batch, timeout)
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
                shared.dropped.add(n as u64);
                EXPORT_ERRORS.inc();
                errors_since_log += 1;
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL) {
                    tracing::warn!(
                        target: "observe::export",
                        error = %e,
                        failed_exports = errors_since_log,
                        "span export failed; the batch was dropped and counted (logged at most every 10 s)"
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

impl<T> BatchProcessor<T> {
    /// Queues one item; a full queue or a shut-down processor drops it, counted.
    fn enqueue(&self, shared: &Shared<T>, item: T) {
        let mut st = shared.lock();
        if st.shutdown || st.queue.len() >= shared.batch.max_queue_size {
            shared.dropped.inc();
            return;
        }
        st.queue.push_back(item);
        if st.queue.len() >= shared.batch.max_export_batch_size {
            shared.work.notify_one();
        }
    }

    fn flush(&self) -> OTelSdkResult {
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

    fn shutdown_result(&self, timeout: Duration) -> OTelSdkResult {
        let r = self.shutdown_report(timeout);
        if r.timed_out {
            Err(OTelSdkError::Timeout(timeout))
        } else {
            Ok(())
        }
    }
}

impl BatchProcessor<SpanData> {
    /// Keeps a finished sampled span in the store (events included: the status page's
    /// waterfall shows them) and queues it for export, without its events unless
    /// `export_events`.
    pub(crate) fn record(&self, span: SpanData, export_events: bool) {
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
        let mut span = span;
        if !export_events {
            span.events = Default::default();
        }
        self.enqueue(shared, span);
    }
}

impl SpanProcessor for BatchProcessor<SpanData> {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.record(span, true);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_result(timeout)
    }
}

impl LogProcessor for BatchProcessor<LogItem> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if let Some(shared) = &self.shared {
            self.enqueue(shared, (record.clone(), scope.clone()));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_result(timeout)
    }
}
