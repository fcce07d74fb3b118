//! Request-path overhead of observe, the peers and the baselines, all in one process: in-process,
//! over loopback HTTP, with 1 and 2 threads, and with 10,000 routes registered.
//!
//! No row installs global `tracing` state (see `Row::dispatch`); process-wide state that cannot
//! be scoped (axum-prometheus's `metrics` recorder, the OpenTelemetry global propagator,
//! observe's global registry and route interner) does not interfere between rows.

use criterion::{criterion_group, criterion_main, Criterion};
use observe_benches::alloc::CountingAlloc;
use observe_benches::{app, bench_in_process, bench_loopback, bench_threads, sink, Group, Row};
use observe_core::metrics::Metrics;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

mod peers;

fn rows() -> Vec<Row> {
    let mut rows = vec![
        peers::bare(),
        peers::noop_layer(),
        peers::tower_http_trace_no_subscriber(),
        peers::tower_http_trace_fmt_sink(),
        peers::prometheus_client_red(),
        peers::naive_string_labels(),
        peers::axum_otel_metrics(),
        peers::axum_prometheus(),
        peers::autometrics(),
        peers::axum_tracing_otel_unsampled(),
        peers::axum_tracing_otel_sampled(),
    ];
    rows.extend(peers::observe::rows());
    rows
}

fn request_path(c: &mut Criterion) {
    assert!(
        observe_benches::alloc::is_installed(),
        "counting allocator not installed"
    );
    let rows = rows();

    let mut g = Group::new(c, "in_process");
    for row in &rows {
        let before = sink::writes();
        bench_in_process(&mut g, row);
        if row.id.starts_with("observe") {
            let wrote = sink::writes() > before;
            let should = row.id == peers::observe::WRITES_LOGS;
            assert_eq!(wrote, should, "row {}: JSON lines written: {wrote}", row.id);
        }
    }
    g.finish();
    // The goal rows again, timed in turns (see `interleaved`): the ratios in RESULTS.md's goals
    // table come from both measurements.
    let ids = [
        "bare_axum",
        "noop_layer",
        "observe_full_unsampled",
        "observe_sampled",
        "axum_tracing_otel_sampled",
    ];
    let picked: Vec<&Row> = ids
        .iter()
        .map(|id| rows.iter().find(|r| r.id == *id).expect("goal row"))
        .collect();
    let (rounds, batch) = if observe_benches::report::is_bench_run() {
        (41, 2_000)
    } else {
        (1, 20)
    };
    let ns = observe_benches::interleaved(&picked, rounds, batch);
    assert!(
        ns.iter().flatten().all(|&x| x > 0.0),
        "interleaved: a row took no time"
    );
    observe_benches::report::record_interleaved("in_process", &ids, batch, &ns);
    // Every row really did its job.
    assert!(
        peers::exported_spans() > 0,
        "the sampled rows exported no span"
    );
    assert!(
        peers::autometrics_recorded(),
        "autometrics recorded no call"
    );
    assert!(
        peers::observe::scrape(Metrics::global()).contains("http_route=\"/users/{id}\""),
        "observe recorded no request on /users/{{id}}"
    );

    let mut g = Group::new(c, "loopback");
    for row in &rows {
        bench_loopback(&mut g, row);
    }
    g.finish();

    let mut g = Group::new(c, "threads");
    let contended = [
        "bare_axum",
        "noop_layer",
        "prometheus_client_red",
        "observe_metrics",
        "observe_full_unsampled",
    ];
    for row in rows.iter().filter(|r| contended.contains(&r.id)) {
        for k in [1, 2] {
            bench_threads(&mut g, row, row.path, k);
        }
    }
    g.finish();

    let rt = app::current_thread_runtime();
    let mut g = Group::new(c, "routes_10k");
    let (observe_row, observe_metrics) = peers::observe::many_routes();
    let many = vec![
        Row::new(
            "bare_axum",
            "bare axum, 10,000 routes",
            0,
            app::app_with_routes(app::MANY_ROUTES),
        ),
        Row::new(
            "prometheus_client_red",
            "hand-made prometheus-client RED, 10,000 routes (all with a series)",
            4,
            peers::prometheus_client_red_on(app::app_with_routes(app::MANY_ROUTES)),
        ),
        observe_row,
    ];
    for row in &many {
        app::visit_routes(&rt, &row.router, app::MANY_ROUTES, row.traceparent);
        bench_in_process(&mut g, row);
    }
    g.finish();
    let last = format!("http_route=\"/r{}/users/{{id}}\"", app::MANY_ROUTES - 1);
    assert!(
        peers::observe::scrape(observe_metrics).contains(&last),
        "observe: the 10,000th route has no series of its own"
    );
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = request_path
}
criterion_main!(benches);
