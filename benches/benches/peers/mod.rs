//! The peer rows: baselines and other crates doing (part of) observe's job, each set up the way
//! its documentation shows, on the same app. Peers are dev-dependencies of this crate only.

#![allow(dead_code)] // each bench binary uses a subset

pub mod observe;

use std::collections::HashSet;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Path, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use observe_benches::app::{self, ROUTE, TRACEPARENT_SAMPLED};
use observe_benches::Row;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::Dispatch;

/// The OpenTelemetry semantic-convention buckets for HTTP server duration (seconds).
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub fn bare() -> Row {
    Row::new("bare_axum", "bare axum (baseline)", 0, app::app())
}

pub fn noop_layer() -> Row {
    Row::new(
        "noop_layer",
        "do-nothing `Router::layer` (floor)",
        1,
        app::app().layer(tower::layer::util::Identity::new()),
    )
}

pub fn tower_http_trace_no_subscriber() -> Row {
    Row::new(
        "tower_http_trace",
        "tower-http `TraceLayer`, no subscriber",
        2,
        app::app().layer(tower_http::trace::TraceLayer::new_for_http()),
    )
}

pub fn tower_http_trace_fmt_sink() -> Row {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::sink)
        .finish();
    Row::new(
        "tower_http_trace_fmt_sink",
        "tower-http `TraceLayer`, DEBUG `fmt()` to a sink",
        3,
        app::app().layer(tower_http::trace::TraceLayer::new_for_http()),
    )
    .dispatch(Dispatch::new(subscriber))
}

// ---- hand-made prometheus-client RED middleware, static labels ----

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
enum MethodLabel {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    PATCH,
    OPTIONS,
    _OTHER,
}

impl MethodLabel {
    fn of(m: &http::Method) -> Self {
        match *m {
            http::Method::GET => Self::GET,
            http::Method::HEAD => Self::HEAD,
            http::Method::POST => Self::POST,
            http::Method::PUT => Self::PUT,
            http::Method::DELETE => Self::DELETE,
            http::Method::PATCH => Self::PATCH,
            http::Method::OPTIONS => Self::OPTIONS,
            _ => Self::_OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedLabels {
    method: MethodLabel,
    route: &'static str,
    status: u16,
}

struct Red {
    duration: Family<RedLabels, Histogram, fn() -> Histogram>,
    routes: RwLock<HashSet<&'static str>>,
}

fn red() -> &'static Red {
    static RED: OnceLock<Red> = OnceLock::new();
    RED.get_or_init(|| {
        let red = Red {
            duration: Family::new_with_constructor(histogram as fn() -> Histogram),
            routes: RwLock::new(HashSet::new()),
        };
        let mut registry = Registry::default();
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            red.duration.clone(),
        );
        std::mem::forget(registry);
        red
    })
}

/// Interns a matched route template once; later lookups borrow.
fn intern(route: &str) -> &'static str {
    let routes = &red().routes;
    if let Some(r) = routes.read().expect("lock").get(route) {
        return r;
    }
    let mut w = routes.write().expect("lock");
    if let Some(r) = w.get(route) {
        return r;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    w.insert(leaked);
    leaked
}

#[derive(Clone, Copy)]
struct RedLayer;

impl<S> tower::Layer<S> for RedLayer {
    type Service = RedService<S>;
    fn layer(&self, inner: S) -> RedService<S> {
        RedService { inner }
    }
}

#[derive(Clone)]
struct RedService<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RedService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = MethodLabel::of(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("", |m| intern(m.as_str()));
        RedFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
            method,
            route,
        }
    }
}

pin_project_lite::pin_project! {
    struct RedFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: MethodLabel,
        route: &'static str,
    }
}

impl<F, E> Future for RedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let status = match &out {
            Ok(r) => r.status().as_u16(),
            Err(_) => 500,
        };
        red()
            .duration
            .get_or_create(&RedLabels {
                method: *this.method,
                route: this.route,
                status,
            })
            .observe(this.start.elapsed().as_secs_f64());
        Poll::Ready(out)
    }
}

pub fn prometheus_client_red_on(router: Router) -> Router {
    red();
    router.layer(RedLayer)
}

pub fn prometheus_client_red() -> Row {
    Row::new(
        "prometheus_client_red",
        "hand-made prometheus-client RED middleware, static labels",
        4,
        prometheus_client_red_on(app::app()),
    )
}

// ---- naive middleware: labels formatted into Strings on every request ----

type NaiveFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

fn naive_family() -> &'static NaiveFamily {
    static F: OnceLock<NaiveFamily> = OnceLock::new();
    F.get_or_init(|| Family::new_with_constructor(histogram as fn() -> Histogram))
}

async fn naive_middleware(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = match req.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => req.uri().path().to_string(),
    };
    let start = Instant::now();
    let resp = next.run(req).await;
    let labels = vec![
        ("method".to_string(), method),
        ("route".to_string(), route),
        ("status".to_string(), resp.status().as_u16().to_string()),
    ];
    naive_family()
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

pub fn naive_string_labels() -> Row {
    naive_family();
    Row::new(
        "naive_string_labels",
        "naive `from_fn` middleware, `String` labels",
        5,
        app::app().layer(axum::middleware::from_fn(naive_middleware)),
    )
}

// ---- axum-prometheus ----

/// A one-worker runtime for peers' own background tasks (axum-prometheus spawns its upkeep
/// task at construction), as an application's runtime would run them.
fn background_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("background runtime")
    })
}

pub fn axum_prometheus() -> Row {
    let _rt = background_runtime().enter();
    let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
    std::mem::forget(handle);
    Row::new(
        "axum_prometheus",
        "axum-prometheus",
        7,
        app::app().layer(layer),
    )
}

// ---- axum-otel-metrics (OpenTelemetry 0.32 metrics SDK, periodic push reader) ----

/// A push exporter that drops what it is given; the periodic reader (60 s) never fires
/// during a bench anyway, so this is the request-path cost of an OTLP metrics setup.
#[derive(Debug)]
struct DiscardMetrics;

impl opentelemetry_sdk_032::metrics::exporter::PushMetricExporter for DiscardMetrics {
    async fn export(
        &self,
        metrics: &opentelemetry_sdk_032::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk_032::error::OTelSdkResult {
        black_box(metrics);
        Ok(())
    }
    fn force_flush(&self) -> opentelemetry_sdk_032::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk_032::error::OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> opentelemetry_sdk_032::metrics::Temporality {
        opentelemetry_sdk_032::metrics::Temporality::Cumulative
    }
}

pub fn axum_otel_metrics() -> Row {
    let reader = opentelemetry_sdk_032::metrics::PeriodicReader::builder(DiscardMetrics).build();
    let provider = opentelemetry_sdk_032::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .build();
    let layer = axum_otel_metrics::HttpMetricsLayerBuilder::new()
        .with_provider(provider)
        .build();
    Row::new(
        "axum_otel_metrics",
        "axum-otel-metrics (OpenTelemetry 0.32 SDK meter)",
        6,
        app::app().layer(layer),
    )
}

// ---- autometrics (a function attribute, not a layer: no `Router::layer` floor) ----

#[autometrics::autometrics]
async fn user_autometrics(Path(id): Path<u64>) -> &'static str {
    black_box(id);
    "user"
}

fn autometrics_settings() -> &'static autometrics::settings::AutometricsSettings {
    static S: OnceLock<&'static autometrics::settings::AutometricsSettings> = OnceLock::new();
    S.get_or_init(|| autometrics::settings::AutometricsSettings::builder().init())
}

/// Whether autometrics recorded calls of the handler (its registry, encoded).
pub fn autometrics_recorded() -> bool {
    let mut text = String::new();
    prometheus_client_022::encoding::text::encode(
        &mut text,
        autometrics_settings().prometheus_client_registry(),
    )
    .expect("encode");
    text.contains("function=\"user_autometrics\"")
}

pub fn autometrics() -> Row {
    autometrics_settings();
    Row::new(
        "autometrics",
        "autometrics `#[autometrics]` on the handler (prometheus-client backend)",
        8,
        Router::new().route(ROUTE, get(user_autometrics)),
    )
}

// ---- axum-tracing-opentelemetry ----

/// Spans that reached [`DiscardExporter`] (proves the sampled rows really export).
pub static EXPORTED_SPANS: AtomicU64 = AtomicU64::new(0);

/// An exporter that counts and drops every batch: export cost without a network.
#[derive(Debug)]
pub struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        EXPORTED_SPANS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        black_box(batch);
        Ok(())
    }
}

/// The SDK tracer provider of this binary: parent-based always-on sampler, the SDK's batch
/// processor (its own thread), [`DiscardExporter`].
pub fn discard_provider() -> &'static opentelemetry_sdk::trace::SdkTracerProvider {
    static P: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();
    P.get_or_init(|| {
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(DiscardExporter)
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
            )))
            .build()
    })
}

/// A tracer on [`discard_provider`], leaked (observe's layer takes `&'static`).
pub fn discard_tracer() -> &'static opentelemetry_sdk::trace::SdkTracer {
    use opentelemetry::trace::TracerProvider as _;
    static T: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();
    T.get_or_init(|| discard_provider().tracer("bench"))
}

/// Flushes the batch processor and returns how many spans were exported so far.
pub fn exported_spans() -> u64 {
    let _ = discard_provider().force_flush();
    EXPORTED_SPANS.load(Ordering::Relaxed)
}

fn otel_dispatch() -> Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    static D: OnceLock<Dispatch> = OnceLock::new();
    D.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(discard_tracer().clone()));
        Dispatch::new(subscriber)
    })
    .clone()
}

fn axum_tracing_otel(id: &'static str, label: &'static str, order: u32) -> Row {
    Row::new(
        id,
        label,
        order,
        app::app().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default()),
    )
    .dispatch(otel_dispatch())
}

pub fn axum_tracing_otel_unsampled() -> Row {
    axum_tracing_otel(
        "axum_tracing_otel_unsampled",
        "axum-tracing-opentelemetry, not sampled",
        9,
    )
}

pub fn axum_tracing_otel_sampled() -> Row {
    axum_tracing_otel(
        "axum_tracing_otel_sampled",
        "axum-tracing-opentelemetry, sampled, discarding exporter",
        10,
    )
    .traceparent(TRACEPARENT_SAMPLED)
}
