//! observe's request-path rows, in their own binary (observe keeps process-wide state: the
//! global metrics registry and route interner). Same groups and drivers as `request_path.rs`,
//! whose `bare_axum` rows are the baseline.

use criterion::{criterion_group, criterion_main, Criterion};
use observe_benches::alloc::CountingAlloc;
use observe_benches::app::{self, TRACEPARENT_SAMPLED};
use observe_benches::sink::{self, counting_sink, CountingSink};
use observe_benches::{bench_in_process, bench_loopback, bench_threads, Group, Row};
use observe_core::context::RequestContext;
use observe_core::metrics::{Format, Metrics, MetricsConfig};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

mod peers;

/// The subscriber observe's `init` installs, built by hand so it can be scoped to the bench
/// threads: a level filter, the JSON layer (to a sink), and the `tracing-opentelemetry` layer
/// behind the per-layer filter that turns it off inside unsampled requests.
fn observe_subscriber(level: &str) -> Dispatch {
    let json = observe_core::logs::JsonLayer::builder()
        .service_name("bench")
        .writer(counting_sink as fn() -> CountingSink)
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(peers::discard_tracer().clone())
        .with_filter(tracing_subscriber::filter::filter_fn(|_| {
            RequestContext::current().is_none_or(|cx| cx.is_sampled())
        }));
    Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(level))
            .with(json)
            .with(otel),
    )
}

fn logged_app() -> axum::Router {
    axum::Router::new().route(app::ROUTE, axum::routing::get(app::user_logged))
}

fn rows() -> Vec<Row> {
    let full = || observe_axum::layer().tracer(peers::discard_tracer());
    vec![
        Row::new(
            "observe_metrics",
            "observe `layer()`, no tracer, no subscriber (metrics + context)",
            20,
            app::app().layer(observe_axum::layer()),
        ),
        Row::new(
            "observe_full_unsampled",
            "observe full, not sampled, handler's `info!` filtered out (level WARN)",
            21,
            logged_app().layer(full()),
        )
        .dispatch(observe_subscriber("warn")),
        Row::new(
            "observe_full_unsampled_info",
            "observe full, not sampled, one `info!` per request as JSON to a sink",
            22,
            logged_app().layer(full()),
        )
        .dispatch(observe_subscriber("info")),
        Row::new(
            "observe_sampled",
            "observe full, sampled, batch processor to a discarding exporter (logs WARN)",
            23,
            logged_app().layer(full()),
        )
        .traceparent(TRACEPARENT_SAMPLED)
        .dispatch(observe_subscriber("warn")),
    ]
}

/// Fails loudly if the rows did not record what they claim to.
fn check_recorded() {
    let mut out = Vec::new();
    Metrics::global()
        .encode(Format::PrometheusText, &mut out)
        .expect("encode");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.contains("http_route=\"/users/{id}\""),
        "observe recorded no request on /users/{{id}}:\n{text}"
    );
}

fn request_path_observe(c: &mut Criterion) {
    assert!(
        observe_benches::alloc::is_installed(),
        "counting allocator not installed"
    );
    let rows = rows();

    let mut g = Group::new(c, "in_process");
    for row in &rows {
        let before = sink::writes();
        bench_in_process(&mut g, row);
        let wrote = sink::writes() > before;
        let should = row.id == "observe_full_unsampled_info";
        assert_eq!(wrote, should, "row {}: JSON lines written: {wrote}", row.id);
    }
    g.finish();
    check_recorded();
    assert!(
        peers::exported_spans() > 0,
        "the sampled row exported no span"
    );

    let mut g = Group::new(c, "loopback");
    for row in &rows {
        bench_loopback(&mut g, row);
    }
    g.finish();

    let mut g = Group::new(c, "threads");
    for row in rows
        .iter()
        .filter(|r| matches!(r.id, "observe_metrics" | "observe_full_unsampled"))
    {
        for k in [1, 2] {
            bench_threads(&mut g, row, app::PATH, k);
        }
    }
    g.finish();

    // 10,000 routes, every one with its series: a registry whose cardinality guard admits them.
    let metrics = Metrics::new(MetricsConfig::default().with_cardinality_limit(20_000)).leak();
    let rt = app::current_thread_runtime();
    let mut g = Group::new(c, "routes_10k");
    let row = Row::new(
        "observe_metrics",
        "observe `layer()`, no tracer, no subscriber, 10,000 routes (all with a series)",
        20,
        app::app_with_routes(app::MANY_ROUTES).layer(observe_axum::layer().metrics(metrics)),
    );
    app::visit_routes(&rt, &row.router, app::MANY_ROUTES, row.traceparent);
    bench_in_process(&mut g, &row);
    g.finish();
    let mut out = Vec::new();
    metrics
        .encode(Format::PrometheusText, &mut out)
        .expect("encode");
    let text = String::from_utf8(out).expect("utf-8");
    let last = format!("http_route=\"/r{}/users/{{id}}\"", app::MANY_ROUTES - 1);
    assert!(
        text.contains(&last),
        "the 10,000th route has no series of its own"
    );
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = request_path_observe
}
criterion_main!(benches);
