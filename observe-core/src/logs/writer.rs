//! Where formatted lines go: stdout (blocking) or a bounded non-blocking queue.
//!
//! Both are [`MakeWriter`]s, so any `tracing-subscriber` layer can use them, and observe's
//! layers accept any other `MakeWriter` (a `Mutex<Vec<u8>>`, a test capture) the same way.
//! observe's layers hand each finished line to the writer in a single `write_all` call.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

use crate::counters::LOG_RECORDS_DROPPED;

/// Writes each line to standard output under the stdout lock, so lines from concurrent
/// threads never interleave.
///
/// ```
/// use observe_core::logs::{JsonLayer, Stdout};
/// let layer = JsonLayer::builder().writer(Stdout).build();
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Stdout;

impl<'a> MakeWriter<'a> for Stdout {
    type Writer = io::StdoutLock<'static>;

    fn make_writer(&'a self) -> Self::Writer {
        io::stdout().lock()
    }
}

/// Default number of lines the non-blocking queue holds.
///
/// ```
/// assert_eq!(observe_core::logs::DEFAULT_CAPACITY, 8192);
/// ```
pub const DEFAULT_CAPACITY: usize = 8192;
/// Default bound on the bytes held in the non-blocking queue.
///
/// ```
/// assert_eq!(observe_core::logs::DEFAULT_MAX_QUEUED_BYTES, 16 << 20);
/// ```
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Default time a [`NonBlockingGuard`] waits for the queue to drain when dropped.
///
/// ```
/// assert_eq!(observe_core::logs::DEFAULT_SHUTDOWN_TIMEOUT.as_secs(), 2);
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// Buffers up to this size are kept for reuse; larger lines get a buffer of their own.
const RETAINED_BUFFER: usize = 4096;

struct State {
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Empty buffers ready for reuse, so steady-state logging does not allocate.
    pool: Vec<Vec<u8>>,
    /// Lines the worker has taken and not yet written.
    in_flight: usize,
    closed: bool,
    worker_done: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker: lines arrived or shutdown.
    wake: Condvar,
    /// Wakes flushers: the worker went idle or finished.
    idle: Condvar,
    capacity: usize,
    max_queued_bytes: usize,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent (every update is a
        // single push/pop/swap), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drop_line(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        LOG_RECORDS_DROPPED.inc();
    }
}

/// A writer that queues lines for a background thread and never blocks its caller.
///
/// The queue is bounded in lines ([`NonBlockingBuilder::capacity`]) and in bytes
/// ([`NonBlockingBuilder::max_queued_bytes`]); a line that does not fit is dropped and counted
/// in [`crate::counters::LOG_RECORDS_DROPPED`] (exposed as `observe_log_records_dropped_total`)
/// and in [`NonBlocking::dropped`]. Lines are copied into pooled buffers, so after warm-up a
/// line up to 4 KiB costs no allocation; longer lines allocate a buffer of their own. The only
/// wait a caller can see is the queue's mutex, which the worker holds just long enough to swap
/// the whole queue out — never while writing.
///
/// Each `write` call is one record: made for observe's layers, which write one line per call.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use observe_core::logs::{JsonLayer, NonBlocking};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let (writer, guard) = NonBlocking::builder().capacity(1024).finish(std::io::sink())?;
/// let subscriber = tracing_subscriber::registry()
///     .with(JsonLayer::builder().service_name("checkout").writer(writer).build());
/// tracing::subscriber::with_default(subscriber, || tracing::info!("queued"));
/// drop(guard); // drains the queue (waiting at most the shutdown timeout)
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NonBlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlocking")
            .field("capacity", &self.shared.capacity)
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Configures a [`NonBlocking`] writer.
///
/// ```
/// use std::time::Duration;
/// use observe_core::logs::NonBlocking;
/// let (writer, _guard) = NonBlocking::builder()
///     .capacity(100)
///     .max_queued_bytes(1 << 20)
///     .shutdown_timeout(Duration::from_millis(500))
///     .finish(std::io::stdout())?;
/// # let _ = writer;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NonBlockingBuilder {
    capacity: usize,
    max_queued_bytes: usize,
    shutdown_timeout: Duration,
    thread_name: String,
}

impl Default for NonBlockingBuilder {
    fn default() -> Self {
        NonBlockingBuilder {
            capacity: DEFAULT_CAPACITY,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            thread_name: "observe-log-writer".to_owned(),
        }
    }
}

impl NonBlockingBuilder {
    /// Lines the queue holds before dropping (at least 1; default 8192).
    pub fn capacity(mut self, lines: usize) -> Self {
        self.capacity = lines.max(1);
        self
    }

    /// Bytes the queue holds before dropping (default 16 MiB). A single line larger than this
    /// is still accepted into an otherwise empty queue, so no line is unloggable.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// How long dropping the guard waits for queued lines to be written (default 2 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The worker thread's name (default `observe-log-writer`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the worker thread writing into `sink`.
    ///
    /// # Errors
    /// The error from spawning the thread.
    pub fn finish<W>(self, sink: W) -> io::Result<(NonBlocking, NonBlockingGuard)>
    where
        W: Write + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(self.capacity),
                queued_bytes: 0,
                pool: Vec::with_capacity(self.capacity),
                in_flight: 0,
                closed: false,
                worker_done: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            capacity: self.capacity,
            max_queued_bytes: self.max_queued_bytes,
            dropped: AtomicU64::new(0),
        });
        let worker_shared = Arc::clone(&shared);
        let batch_capacity = self.capacity;
        thread::Builder::new()
            .name(self.thread_name)
            .spawn(move || worker(&worker_shared, sink, batch_capacity))?;
        Ok((
            NonBlocking {
                shared: Arc::clone(&shared),
            },
            NonBlockingGuard {
                shared,
                timeout: self.shutdown_timeout,
                shut_down: AtomicBool::new(false),
            },
        ))
    }
}

fn worker<W: Write>(shared: &Shared, mut sink: W, capacity: usize) {
    let mut batch: VecDeque<Vec<u8>> = VecDeque::with_capacity(capacity);
    let mut done: Vec<Vec<u8>> = Vec::with_capacity(capacity);
    loop {
        let mut st = shared.lock();
        st.pool.append(&mut done);
        st.in_flight = 0;
        while st.queue.is_empty() && !st.closed {
            shared.idle.notify_all();
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.queue.is_empty() {
            // Closed and drained.
            break;
        }
        std::mem::swap(&mut st.queue, &mut batch);
        st.queued_bytes = 0;
        st.in_flight = batch.len();
        drop(st);

        for mut line in batch.drain(..) {
            if sink.write_all(&line).is_err() {
                shared.drop_line();
            }
            if line.capacity() <= RETAINED_BUFFER {
                line.clear();
                done.push(line);
            }
        }
        let _ = sink.flush();
    }
    let _ = sink.flush();
    let mut st = shared.lock();
    st.worker_done = true;
    st.in_flight = 0;
    drop(st);
    shared.idle.notify_all();
}

impl NonBlocking {
    /// A builder with the defaults (8192 lines, 16 MiB, 2 s shutdown timeout).
    pub fn builder() -> NonBlockingBuilder {
        NonBlockingBuilder::default()
    }

    /// Queues one line, or drops and counts it if the queue is full or shut down.
    /// Never waits for the sink.
    ///
    /// ```
    /// use std::time::Duration;
    /// use observe_core::logs::NonBlocking;
    /// let (writer, guard) = NonBlocking::builder().capacity(1).finish(std::io::sink())?;
    /// writer.write_line(b"{}\n");
    /// assert!(writer.flush_timeout(Duration::from_secs(5)));
    /// assert_eq!(writer.dropped(), 0);
    /// drop(guard);
    /// writer.write_line(b"{}\n"); // after shutdown: dropped and counted
    /// assert_eq!(writer.dropped(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_line(&self, line: &[u8]) {
        let shared = &*self.shared;
        let mut st = shared.lock();
        let over_bytes =
            !st.queue.is_empty() && st.queued_bytes + line.len() > shared.max_queued_bytes;
        if st.closed || st.queue.len() >= shared.capacity || over_bytes {
            drop(st);
            shared.drop_line();
            return;
        }
        let mut buf = st.pool.pop().unwrap_or_else(|| {
            // Room to spare, so a reused buffer fits the next, slightly longer line too.
            Vec::with_capacity(line.len().next_power_of_two().clamp(512, RETAINED_BUFFER))
        });
        buf.extend_from_slice(line);
        st.queue.push_back(buf);
        st.queued_bytes += line.len();
        let first = st.queue.len() == 1;
        drop(st);
        if first {
            shared.wake.notify_one();
        }
    }

    /// Lines this writer (and its clones) dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line queued so far is written, or `timeout` passes.
    /// Returns whether the queue was drained.
    pub fn flush_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if (st.queue.is_empty() && st.in_flight == 0) || st.worker_done {
                return st.queue.is_empty() && st.in_flight == 0;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// One `write` is one queued line; see [`NonBlocking`].
///
/// ```
/// use std::io::Write;
/// use tracing_subscriber::fmt::MakeWriter;
/// let (nb, _guard) = observe_core::logs::NonBlocking::builder().finish(std::io::sink())?;
/// nb.make_writer().write_all(b"one line\n")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct NonBlockingWriter<'a> {
    inner: &'a NonBlocking,
}

impl Write for NonBlockingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = NonBlockingWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        NonBlockingWriter { inner: self }
    }
}

/// Shuts the [`NonBlocking`] writer down when dropped: lines queued before are written
/// (waiting at most the shutdown timeout), lines logged after are dropped and counted.
///
/// If the sink is stuck, the drop returns after the timeout, the lines still queued are
/// counted as dropped, and the worker thread is left to finish (or not) on its own.
///
/// ```
/// use std::time::Duration;
/// let (writer, guard) = observe_core::logs::NonBlocking::builder().finish(std::io::sink())?;
/// writer.write_line(b"last words\n");
/// assert!(guard.shutdown(Duration::from_secs(5))); // or just drop it
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping the guard shuts the writer down"]
pub struct NonBlockingGuard {
    shared: Arc<Shared>,
    timeout: Duration,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for NonBlockingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlockingGuard")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl NonBlockingGuard {
    /// Closes the queue and waits up to `timeout` for the worker to drain it.
    /// Returns whether everything queued was written. Called by `Drop` with the configured
    /// timeout; calling it earlier makes the drop a no-op.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            // Already shut down (or timed out) once; do not wait again.
            return self.shared.lock().worker_done;
        }
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.wake.notify_all();
        while !st.worker_done {
            let now = Instant::now();
            if now >= deadline {
                // The sink is stuck: what is still queued will not be written. Count it as
                // dropped now rather than leave it to an unknown fate.
                let lost = st.queue.len();
                st.queue.clear();
                st.queued_bytes = 0;
                drop(st);
                for _ in 0..lost {
                    self.shared.drop_line();
                }
                return false;
            }
            st = self
                .shared
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Drop for NonBlockingGuard {
    fn drop(&mut self) {
        self.shutdown(self.timeout);
    }
}
