//! Request-path overhead of the peers and baselines: in-process, over loopback HTTP, with
//! 1 and 2 threads, and with 10,000 routes registered. observe's own rows are in
//! `request_path_observe.rs` (it installs process-wide state of its own).

use criterion::{criterion_group, criterion_main, Criterion};
use observe_benches::alloc::CountingAlloc;
use observe_benches::{app, bench_in_process, bench_loopback, bench_threads, Group, Row};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

mod peers;

fn rows() -> Vec<Row> {
    vec![
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
    ]
}

fn request_path(c: &mut Criterion) {
    assert!(
        observe_benches::alloc::is_installed(),
        "counting allocator not installed"
    );
    let rows = rows();

    let mut g = Group::new(c, "in_process");
    for row in &rows {
        bench_in_process(&mut g, row);
    }
    g.finish();
    assert!(
        peers::exported_spans() > 0,
        "the sampled rows exported no span"
    );
    assert!(
        peers::autometrics_recorded(),
        "autometrics recorded no call"
    );

    let mut g = Group::new(c, "loopback");
    for row in &rows {
        bench_loopback(&mut g, row);
    }
    g.finish();

    let mut g = Group::new(c, "threads");
    for row in rows
        .iter()
        .filter(|r| matches!(r.id, "bare_axum" | "noop_layer" | "prometheus_client_red"))
    {
        for k in [1, 2] {
            bench_threads(&mut g, row, app::PATH, k);
        }
    }
    g.finish();

    let rt = app::current_thread_runtime();
    let mut g = Group::new(c, "routes_10k");
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
    ];
    for row in &many {
        app::visit_routes(&rt, &row.router, app::MANY_ROUTES, row.traceparent);
        bench_in_process(&mut g, row);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = request_path
}
criterion_main!(benches);
