//! Shared harness of observe's benchmarks: the counting allocator, the app and requests every
//! row serves, the ways of driving it (in-process, loopback HTTP, several threads), criterion's
//! settings, and the side-car files the results generator reads beside criterion's own.
//!
//! Each row of the request-path tables is a [`Row`]: a name, a `Router` (the same app with the
//! row's layer), the `traceparent` it receives, and optionally the `tracing` subscriber it needs
//! (installed as the default of the threads that serve it, never globally, so rows in one
//! binary cannot see each other's subscriber).

pub mod alloc;
pub mod app;
pub mod report;
pub mod sink;
pub mod workers;

use std::time::Duration;

use axum::Router;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use tracing::Dispatch;

/// criterion settings shared by every bench: short, so the suite runs in minutes on 2 cores.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
}

/// Requests per allocation measurement (after a warm-up of the same size).
pub fn alloc_ops() -> u64 {
    if report::is_bench_run() {
        2_000
    } else {
        20
    }
}

/// One row of the request-path tables.
pub struct Row {
    /// criterion id (`snake_case`).
    pub id: &'static str,
    /// Name shown in RESULTS.md.
    pub label: &'static str,
    /// Position in the table.
    pub order: u32,
    /// The app with this row's instrumentation.
    pub router: Router,
    /// The `traceparent` each request carries (decides sampling for parent-based samplers).
    pub traceparent: &'static str,
    /// The path each request asks for: [`app::PATH`], or [`app::PATH_LOGGED`] for rows whose
    /// handler logs (see [`Row::handler_logs`]).
    pub path: &'static str,
    /// The subscriber this row needs, made the default of the serving threads.
    pub dispatch: Option<Dispatch>,
}

impl Row {
    /// A row without a subscriber, receiving an unsampled `traceparent`.
    ///
    /// The router is finalised with `with_state(())`, as `axum::serve` does (through
    /// `into_make_service`): handlers become routes once, instead of being cloned and boxed
    /// again on every request, which a served app never pays.
    pub fn new(id: &'static str, label: &'static str, order: u32, router: Router) -> Self {
        Row {
            id,
            label,
            order,
            router: router.with_state(()),
            traceparent: app::TRACEPARENT_UNSAMPLED,
            path: app::PATH,
            dispatch: None,
        }
    }

    /// Sets the `traceparent`.
    pub fn traceparent(mut self, tp: &'static str) -> Self {
        self.traceparent = tp;
        self
    }

    /// Requests [`app::PATH_LOGGED`]: the handler emits one `info!` event per request.
    pub fn handler_logs(mut self) -> Self {
        self.path = app::PATH_LOGGED;
        self
    }

    /// Sets the subscriber.
    pub fn dispatch(mut self, d: Dispatch) -> Self {
        self.dispatch = Some(d);
        self
    }

    fn with_dispatch<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.dispatch {
            Some(d) => tracing::dispatcher::with_default(d, f),
            None => f(),
        }
    }
}

/// In-process: `Router::call` + reading the body, on a current-thread runtime on the bench
/// thread. Allocations are counted on that thread over [`alloc_ops`] requests, outside timing.
pub fn bench_in_process(group: &mut Group<'_>, row: &Row) {
    let rt = app::current_thread_runtime();
    row.with_dispatch(|| {
        app::assert_ok(&rt, &row.router, row.path, row.traceparent, row.id);
        count_then_time(group, row.id, row.label, row.order, |n| {
            time_in_process(&rt, row, n)
        });
    });
}

/// Sends `n` requests through `row`'s router on `rt`; returns how long they took.
fn time_in_process(rt: &tokio::runtime::Runtime, row: &Row, n: u64) -> Duration {
    let start = std::time::Instant::now();
    app::run_in_process(rt, &row.router, row.path, row.traceparent, n);
    start.elapsed()
}

/// What every request-path row does: `run(n)` sends `n` requests and returns how long they
/// took. Warms up with [`alloc_ops`] requests, counts the allocations of as many more (outside
/// any timing) into the side-car of `id`, then lets criterion time `run`.
fn count_then_time(
    group: &mut Group<'_>,
    id: &str,
    label: &str,
    order: u32,
    mut run: impl FnMut(u64) -> Duration,
) {
    let n = alloc_ops();
    run(n);
    let per = alloc::measure(n, |n| {
        run(n);
    });
    report::record(group.name, id, label, order, report::alloc_fields(&per));
    group.inner.bench_function(id, |b| b.iter_custom(&mut run));
}

/// The in-process rows whose ratios the goals are about, timed in turns: `rounds` rounds, each
/// timing a batch of `batch` requests through every row, the rows' order rotated each round.
/// Returns nanoseconds per request, `[round][row]`.
///
/// criterion times each row in its own few seconds, so a shared machine that slows down for a
/// while skews one row against another; rows timed side by side, many times, see the same
/// machine, and a median over rounds (of each row, and of each round's ratio) shrugs off the
/// rounds a neighbour disturbed.
pub fn interleaved(rows: &[&Row], rounds: usize, batch: u64) -> Vec<Vec<f64>> {
    let rts: Vec<_> = rows.iter().map(|_| app::current_thread_runtime()).collect();
    for (row, rt) in rows.iter().zip(&rts) {
        row.with_dispatch(|| time_in_process(rt, row, batch));
    }
    (0..rounds)
        .map(|round| {
            let mut ns = vec![0.0; rows.len()];
            for k in 0..rows.len() {
                let i = (k + round) % rows.len();
                let (row, rt) = (rows[i], &rts[i]);
                ns[i] = row.with_dispatch(|| {
                    time_in_process(rt, row, batch).as_nanos() as f64 / batch as f64
                });
            }
            ns
        })
        .collect()
}

/// Loopback HTTP/1.1: a hyper client on one keep-alive connection, the server on its own thread.
/// Allocations are counted over all threads (client + server) per request.
pub fn bench_loopback(group: &mut Group<'_>, row: &Row) {
    let server = app::LoopbackServer::start(row.router.clone(), row.dispatch.clone());
    let mut client = app::LoopbackClient::connect(server.addr());
    let status = client.run(row.path, row.traceparent, 1);
    assert_eq!(
        status,
        http::StatusCode::OK,
        "row {} over loopback answered {status}",
        row.id
    );
    count_then_time(group, row.id, row.label, row.order, |n| {
        let start = std::time::Instant::now();
        client.run(row.path, row.traceparent, n);
        start.elapsed()
    });
    drop(client);
    drop(server);
}

/// `k` threads hammering `path` on the row's router; time is wall time per request (so two
/// threads on two free cores ideally halve it). Allocations are counted over all threads.
pub fn bench_threads(group: &mut Group<'_>, row: &Row, path: &'static str, k: usize) {
    let rt = app::current_thread_runtime();
    row.with_dispatch(|| app::assert_ok(&rt, &row.router, path, row.traceparent, row.id));
    let hammer = app::hammer(&row.router, path, row.traceparent, k, row.dispatch.clone());
    let id = format!("{}/{k}", row.id);
    let label = format!("{}, {k} thread{}", row.label, if k == 1 { "" } else { "s" });
    count_then_time(group, &id, &label, row.order * 10 + k as u32, |n| {
        hammer.run_split(n)
    });
}

/// A criterion group that remembers its name (for the side-car files).
pub struct Group<'c> {
    /// The criterion group.
    pub inner: BenchmarkGroup<'c, WallTime>,
    /// Its name.
    pub name: &'static str,
}

impl<'c> Group<'c> {
    /// Opens group `name` on `c`.
    pub fn new(c: &'c mut Criterion, name: &'static str) -> Self {
        Group {
            inner: c.benchmark_group(name),
            name,
        }
    }

    /// Closes the group.
    pub fn finish(self) {
        self.inner.finish();
    }
}

/// Benches a plain operation `f` (one log line, one scrape...): allocations per call are counted
/// on the calling thread over `alloc_ops` calls (after as many warm-up calls), outside timing.
/// `extra` adds side-car fields (such as output size).
pub fn bench_op(
    group: &mut Group<'_>,
    id: &str,
    label: &str,
    order: u32,
    extra: serde_json::Map<String, serde_json::Value>,
    alloc_ops: u64,
    mut f: impl FnMut(),
) {
    let ops = if report::is_bench_run() { alloc_ops } else { 2 };
    for _ in 0..ops {
        f();
    }
    let per = alloc::measure(ops, |n| {
        for _ in 0..n {
            f();
        }
    });
    let mut fields = report::alloc_fields(&per);
    fields.extend(extra);
    report::record(group.name, id, label, order, fields);
    group.inner.bench_function(id, |b| b.iter(&mut f));
}
