//! Recording cost: what a request's metrics cost on their own — active gauge up, one duration
//! observation, gauge down — on 1 and 2 threads recording the same series at once (the
//! contention that every request of a busy route meets), for observe and for the same three
//! updates on prometheus-client families with static labels (what the hand-made RED
//! middleware row does).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use observe_benches::alloc::{self, CountingAlloc};
use observe_benches::workers::Workers;
use observe_benches::{report, Group};
use observe_core::metrics::{
    HttpMethod, HttpServerLabels, Metrics, MetricsConfig, Route, UrlScheme,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    http_request_method: &'static str,
    url_scheme: &'static str,
    http_route: &'static str,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabels {
    http_request_method: &'static str,
    url_scheme: &'static str,
}

static OBSERVE: std::sync::LazyLock<&'static Metrics> = std::sync::LazyLock::new(|| {
    Metrics::new(MetricsConfig {
        process_metrics: false,
        ..MetricsConfig::default()
    })
    .leak()
});
static ROUTE: std::sync::LazyLock<Route> =
    std::sync::LazyLock::new(|| Route::intern("/users/{id}"));

fn observe_op() {
    let http = OBSERVE.http_server();
    let in_flight = http.start(HttpMethod::Get, UrlScheme::Http);
    http.record(
        HttpServerLabels {
            method: HttpMethod::Get,
            scheme: UrlScheme::Http,
            route: Some(*ROUTE),
            status: 200,
            error: None,
        },
        std::hint::black_box(Duration::from_micros(30)),
        None,
    );
    drop(in_flight);
}

struct Peer {
    duration: Family<DurationLabels, Histogram>,
    active: Family<ActiveLabels, Gauge>,
}

static PEER: std::sync::LazyLock<Peer> = std::sync::LazyLock::new(|| Peer {
    duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
    active: Family::default(),
});

fn prometheus_client_op() {
    let active = ActiveLabels {
        http_request_method: "GET",
        url_scheme: "http",
    };
    PEER.active.get_or_create(&active).inc();
    PEER.duration
        .get_or_create(&DurationLabels {
            http_request_method: "GET",
            url_scheme: "http",
            http_route: "/users/{id}",
            http_response_status_code: 200,
        })
        .observe(std::hint::black_box(Duration::from_micros(30)).as_secs_f64());
    PEER.active.get_or_create(&active).dec();
}

fn record(c: &mut Criterion) {
    assert!(alloc::is_installed(), "counting allocator not installed");
    let mut g = Group::new(c, "record");
    let rows: [(&str, &str, fn()); 2] = [
        (
            "prometheus_client",
            "prometheus-client: gauge `inc`, histogram `observe`, gauge `dec` (static labels)",
            prometheus_client_op,
        ),
        (
            "observe",
            "observe: `start`, `record`, guard dropped",
            observe_op,
        ),
    ];
    for (order, (id, label, op)) in rows.into_iter().enumerate() {
        for k in [1, 2] {
            let workers = Workers::start(k, "record", move || {
                move |n| {
                    for _ in 0..n {
                        op();
                    }
                }
            });
            let ops = observe_benches::alloc_ops();
            workers.run_each(ops);
            let per = alloc::measure(ops * k as u64, |n| {
                workers.run_each(n / k as u64);
            });
            let id = format!("{id}/{k}");
            let label = format!("{label}, {k} thread{}", if k == 1 { "" } else { "s" });
            report::record(
                g.name,
                &id,
                &label,
                order as u32 * 10 + k as u32,
                report::alloc_fields(&per),
            );
            g.inner
                .bench_function(&id, |b| b.iter_custom(|n| workers.run_each(n)));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = record
}
criterion_main!(benches);
