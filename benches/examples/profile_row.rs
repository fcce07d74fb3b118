//! Runs one in-process row N times with no measurement harness, for instruction counts
//! (`valgrind --tool=callgrind`: exact and repeatable, unlike time on a shared machine) and
//! for `perf record`.
//!
//! ```sh
//! cargo build --release -p observe-benches --example profile_row
//! valgrind --tool=callgrind target/release/examples/profile_row observe_full_unsampled 10000
//! ```
//! Run it with two values of N and divide the difference in instructions by the difference in
//! N to remove start-up. Rows: `bare`, `noop`, `observe_metrics`, `observe_full_unsampled`,
//! `observe_full_unsampled_info` (one JSON line per request, to `io::sink`), `observe_sampled`.

use std::sync::OnceLock;

use observe_benches::app;
use observe_core::context::RequestContext;
use opentelemetry::trace::TracerProvider as _;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

#[derive(Debug)]
struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

fn tracer() -> &'static opentelemetry_sdk::trace::SdkTracer {
    static T: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();
    T.get_or_init(|| {
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(DiscardExporter)
            .build()
            .tracer("profile")
    })
}

fn subscriber(level: &str) -> Dispatch {
    let json = observe_core::logs::JsonLayer::builder()
        .service_name("profile")
        .writer(std::io::sink)
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer().clone())
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

fn main() {
    let mut args = std::env::args().skip(1);
    let row = args.next().unwrap_or_else(|| "observe_metrics".into());
    let n: u64 = args.next().map_or(100_000, |s| s.parse().expect("N"));
    let logged = || axum::Router::new().route(app::ROUTE, axum::routing::get(app::user_logged));
    let (router, tp, dispatch) = match row.as_str() {
        "bare" => (app::app(), app::TRACEPARENT_UNSAMPLED, None),
        "noop" => (
            app::app().layer(tower::layer::util::Identity::new()),
            app::TRACEPARENT_UNSAMPLED,
            None,
        ),
        "observe_metrics" => (
            app::app().layer(observe_axum::layer()),
            app::TRACEPARENT_UNSAMPLED,
            None,
        ),
        "observe_full_unsampled" => (
            logged().layer(observe_axum::layer().tracer(tracer())),
            app::TRACEPARENT_UNSAMPLED,
            Some(subscriber("warn")),
        ),
        "observe_full_unsampled_info" => (
            logged().layer(observe_axum::layer().tracer(tracer())),
            app::TRACEPARENT_UNSAMPLED,
            Some(subscriber("info")),
        ),
        "observe_sampled" => (
            logged().layer(observe_axum::layer().tracer(tracer())),
            app::TRACEPARENT_SAMPLED,
            Some(subscriber("warn")),
        ),
        other => panic!("unknown row {other}"),
    };
    let router = router.with_state(());
    let rt = app::current_thread_runtime();
    let run = || app::run_in_process(&rt, &router, app::PATH, tp, n);
    match dispatch {
        Some(d) => tracing::dispatcher::with_default(&d, run),
        None => run(),
    }
}
