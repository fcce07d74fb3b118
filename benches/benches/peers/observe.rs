//! observe's rows: the layer as `observe_axum::layer()` builds it, with the subscriber
//! observe's `init` would install, built by hand so it can be scoped to the bench threads.

use observe_benches::app::{self, TRACEPARENT_SAMPLED};
use observe_benches::sink::{counting_sink, CountingSink};
use observe_benches::Row;
use observe_core::context::RequestContext;
use observe_core::metrics::{Format, Metrics, MetricsConfig};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

use super::discard_tracer;

/// A level filter, the JSON layer (to a counting sink), and the `tracing-opentelemetry` layer
/// behind the per-layer filter that turns it off inside unsampled requests.
fn subscriber(level: &str) -> Dispatch {
    let json = observe_core::logs::JsonLayer::builder()
        .service_name("bench")
        .writer(counting_sink as fn() -> CountingSink)
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(discard_tracer().clone())
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

/// The only observe row that writes log lines.
pub const WRITES_LOGS: &str = "observe_full_unsampled_info";

pub fn rows() -> Vec<Row> {
    let full = || observe_axum::layer().tracer(discard_tracer());
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
            app::app().layer(full()),
        )
        .handler_logs()
        .dispatch(subscriber("warn")),
        Row::new(
            WRITES_LOGS,
            "observe full, not sampled, one `info!` per request as JSON to a sink",
            22,
            app::app().layer(full()),
        )
        .handler_logs()
        .dispatch(subscriber("info")),
        Row::new(
            "observe_sampled",
            "observe full, sampled, batch processor to a discarding exporter (logs WARN)",
            23,
            app::app().layer(full()),
        )
        .handler_logs()
        .traceparent(TRACEPARENT_SAMPLED)
        .dispatch(subscriber("warn")),
    ]
}

/// observe's row with 10,000 routes, on a registry whose cardinality guard admits them all.
pub fn many_routes() -> (Row, &'static Metrics) {
    let metrics = Metrics::new(MetricsConfig::default().with_cardinality_limit(20_000)).leak();
    let row = Row::new(
        "observe_metrics",
        "observe `layer()`, no tracer, no subscriber, 10,000 routes (all with a series)",
        20,
        app::app_with_routes(app::MANY_ROUTES).layer(observe_axum::layer().metrics(metrics)),
    );
    (row, metrics)
}

/// The Prometheus text of `metrics`.
pub fn scrape(metrics: &Metrics) -> String {
    let mut out = Vec::new();
    metrics
        .encode(Format::PrometheusText, &mut out)
        .expect("encode");
    String::from_utf8(out).expect("utf-8")
}
