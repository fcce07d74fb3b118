//! Scrape cost: time, bytes and allocations to encode `/metrics` with 1, 100 and 1,000
//! route x status histogram series, for prometheus-client's own `text::encode` and
//! metrics-exporter-prometheus rendering the same series.

use criterion::{criterion_group, criterion_main, Criterion};
use metrics_exporter_prometheus::PrometheusBuilder;
use observe_benches::alloc::CountingAlloc;
use observe_benches::{bench_op, Group};
use observe_core::metrics::{
    Format, HttpMethod, HttpServerLabels, Metrics, MetricsConfig, Route, UrlScheme,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The OpenTelemetry semantic-convention buckets for HTTP server duration (seconds).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const STATUSES: [u16; 5] = [200, 201, 404, 500, 503];
const SERIES: [usize; 3] = [1, 100, 1_000];
const NAME: &str = "http_server_request_duration_seconds";

/// `n` (route, status) pairs: n/5 routes x 5 statuses (1 x 1 for n = 1).
fn series(n: usize) -> Vec<(String, u16)> {
    let statuses = n.min(STATUSES.len());
    (0..n / statuses)
        .flat_map(|r| {
            STATUSES[..statuses]
                .iter()
                .map(move |s| (format!("/api/v1/resource{r}/{{id}}"), *s))
        })
        .collect()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    http_request_method: &'static str,
    url_scheme: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

fn extra(bytes: usize, n: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("output_bytes".into(), bytes.into());
    m.insert("series".into(), n.into());
    m
}

fn scrape(c: &mut Criterion) {
    assert!(
        observe_benches::alloc::is_installed(),
        "counting allocator not installed"
    );
    let mut g = Group::new(c, "scrape");
    // One scrape of 1,000 series takes milliseconds: 10 samples keep the group short.
    g.inner.sample_size(10);
    for n in SERIES {
        let pairs = series(n);
        assert_eq!(pairs.len(), n);

        // prometheus-client's own encoder, into a reused buffer.
        let family = Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        for (route, status) in &pairs {
            family
                .get_or_create(&Labels {
                    http_request_method: "GET",
                    url_scheme: "http",
                    http_route: route.clone(),
                    http_response_status_code: *status,
                })
                .observe(0.042);
        }
        let mut registry = Registry::default();
        registry.register(NAME, "Duration of HTTP server requests", family);
        let mut buf = String::new();
        prometheus_client::encoding::text::encode(&mut buf, &registry).expect("encode");
        let bytes = buf.len();
        bench_op(
            &mut g,
            &format!("prometheus_client_text_encode/{n}"),
            "prometheus-client `text::encode`",
            0,
            extra(bytes, n),
            200,
            || {
                buf.clear();
                prometheus_client::encoding::text::encode(&mut buf, &registry).expect("encode");
            },
        );

        // metrics-exporter-prometheus, histograms with the same buckets.
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for (route, status) in &pairs {
                metrics::histogram!(
                    NAME,
                    "http_request_method" => "GET",
                    "url_scheme" => "http",
                    "http_route" => route.clone(),
                    "http_response_status_code" => status.to_string()
                )
                .record(0.042);
            }
        });
        let bytes = handle.render().len();
        bench_op(
            &mut g,
            &format!("metrics_exporter_prometheus/{n}"),
            "metrics-exporter-prometheus `render()`",
            1,
            extra(bytes, n),
            200,
            || {
                std::hint::black_box(handle.render());
            },
        );

        // observe's registry: the same series recorded through the request path's API.
        let metrics = Metrics::new(MetricsConfig {
            process_metrics: false,
            ..MetricsConfig::default().with_cardinality_limit(10_000)
        })
        .leak();
        for (route, status) in &pairs {
            metrics.http_server().record(
                HttpServerLabels {
                    method: HttpMethod::Get,
                    scheme: UrlScheme::Http,
                    route: Some(Route::intern(route)),
                    status: *status,
                    error: None,
                },
                Duration::from_millis(42),
                None,
            );
        }
        let mut out = Vec::new();
        metrics
            .encode(Format::PrometheusText, &mut out)
            .expect("encode");
        let bytes = out.len();
        bench_op(
            &mut g,
            &format!("observe/{n}"),
            "observe `Metrics::encode` (Prometheus text, no process metrics)",
            2,
            extra(bytes, n),
            200,
            || {
                out.clear();
                metrics
                    .encode(Format::PrometheusText, &mut out)
                    .expect("encode");
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = scrape
}
criterion_main!(benches);
