//! observe-axum over real loopback HTTP: a hyper client against an axum server.

mod http_harness;

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use http_harness::{eventually, get as http_get, sample, series_count, serve, Captured};
use observe_axum::TraceId;
use observe_core::metrics::Metrics;
use observe_core::otel::opentelemetry_sdk::trace::SpanData;
use observe_core::trace::Sampler;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

struct World {
    logs: Captured,
    spans: std::sync::Arc<std::sync::Mutex<Vec<SpanData>>>,
    tracer: &'static observe_core::otel::opentelemetry_sdk::trace::SdkTracer,
}

/// One subscriber and one tracer for the whole binary (the subscriber must be global: the
/// server's tasks run on any worker thread).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        use observe_core::otel::opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let logs = Captured::default();
        let spans = std::sync::Arc::default();
        let provider = observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(Collect(std::sync::Arc::clone(&spans)))
            .build();
        let tracer = Box::leak(Box::new(provider.tracer("axum-loopback")));
        Box::leak(Box::new(provider));
        let subscriber = tracing_subscriber::registry().with(
            observe_core::logs::JsonLayer::builder()
                .writer(logs.clone())
                .build(),
        );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        World {
            logs,
            spans,
            tracer,
        }
    })
}

#[derive(Debug)]
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<SpanData>>>);
impl observe_core::otel::opentelemetry_sdk::trace::SpanExporter for Collect {
    async fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> observe_core::otel::opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

async fn user(Path(id): Path<u64>) -> String {
    tracing::info!(user_id = id, "loading user");
    tokio::time::sleep(Duration::from_millis(2)).await;
    tracing::info!(user_id = id, "loaded user");
    format!("user {id}")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "slow"
}

async fn fail(trace: TraceId) -> (StatusCode, String) {
    tracing::error!("payment backend refused");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("failed; support reference {trace}"),
    )
}

fn app(metrics: &'static Metrics, sampler: Sampler) -> Router {
    let api = Router::new().route(
        "/orders/{id}",
        get(|Path(id): Path<u64>| async move { format!("order {id}") }),
    );
    Router::new()
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .nest("/api", api)
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(
            observe_axum::layer()
                .metrics(metrics)
                .tracer(world().tracer)
                .sampler(sampler),
        )
}

fn fresh_metrics() -> &'static Metrics {
    Metrics::new(Default::default()).leak()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, _, body) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    body
}

/// The handler's log lines for one user id, matched on the `user_id` field: a substring of the
/// whole line would also match a timestamp (`...:57.647002Z` holds `7002`).
fn logs_for_user(id: u64) -> Vec<serde_json::Value> {
    world()
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["user_id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_traceparent_continues_the_trace_in_logs_and_spans() {
    let metrics = fresh_metrics();
    let addr = serve(app(metrics, Sampler::ParentBasedAlwaysOn)).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let (status, _, body) = http_get(addr, "/users/7001", &[("traceparent", &tp)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user 7001"));

    let span = eventually("the server span", || {
        world()
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.span_context.trace_id().to_string() == TRACE)
            .cloned()
    })
    .await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.parent_span_id.to_string(), PARENT);
    let span_id = span.span_context.span_id().to_string();

    let lines = logs_for_user(7001);
    let messages: Vec<_> = lines.iter().map(|l| l["message"].clone()).collect();
    assert_eq!(messages, ["loading user", "loaded user"], "{lines:?}");
    for line in &lines {
        assert_eq!(line["trace_id"], TRACE, "{line}");
        assert_eq!(line["span_id"], span_id.as_str(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_log_with_ids_and_export_no_span() {
    let metrics = fresh_metrics();
    let addr = serve(app(metrics, Sampler::AlwaysOff)).await;
    let unsampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let tp = format!("00-{unsampled_trace}-b7ad6b7169203331-00");
    let (status, _, _) = http_get(addr, "/users/7002", &[("traceparent", &tp)]).await;
    assert_eq!(status, StatusCode::OK);
    let lines = logs_for_user(7002);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["trace_id"], unsampled_trace, "{line}");
        let span_id = line["span_id"]
            .as_str()
            .expect("span_id present when unsampled");
        assert_eq!(span_id.len(), 16);
        assert_ne!(
            span_id, "b7ad6b7169203331",
            "this service's span, not the caller's"
        );
    }
    // The server's response is sent before the span would end; a sampled span would be
    // exported synchronously by then (simple processor), so absence is meaningful.
    assert!(!world()
        .spans
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.span_context.trace_id().to_string() == unsampled_trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_route_templates_and_404_floods_create_no_series() {
    let metrics = fresh_metrics();
    let addr = serve(app(metrics, Sampler::AlwaysOff)).await;
    for id in [1, 2, 3] {
        assert_eq!(
            http_get(addr, &format!("/users/{id}"), &[]).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(http_get(addr, "/api/orders/9", &[]).await.0, StatusCode::OK);
    let before = scrape(addr).await;
    let count = "http_server_request_duration_seconds_count";
    assert_eq!(
        sample(
            &before,
            count,
            &[
                ("http_route", "/users/{id}"),
                ("http_response_status_code", "200")
            ]
        ),
        Some(3.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, count, &[("http_route", "/api/orders/{id}")]),
        Some(1.0),
        "nested router: {before}"
    );
    assert!(!before.contains("/users/1\""), "{before}");

    for i in 0..50 {
        let (status, _, _) = http_get(addr, &format!("/wp-admin/{i}.php"), &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let after = scrape(addr).await;
    assert!(!after.contains("wp-admin"), "raw paths never become labels");
    assert_eq!(
        series_count(&after, count),
        series_count(&before, count) + 1,
        "all 404s in one series:\n{after}"
    );
    let not_found = after
        .lines()
        .find(|l| l.starts_with(count) && l.contains("http_response_status_code=\"404\""))
        .expect("the 404 series");
    assert!(
        !not_found.contains("http_route"),
        "no route value for unmatched requests: {not_found}"
    );
    assert!(not_found.ends_with(" 50"), "{not_found}");
    // /metrics itself is not measured (two scrapes so far).
    assert!(!after.contains("/metrics"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_client_abandons_is_counted_as_cancelled() {
    let metrics = fresh_metrics();
    let addr = serve(app(metrics, Sampler::AlwaysOff)).await;
    let pending = tokio::spawn(async move { http_get(addr, "/slow", &[]).await });
    // Wait until the server is handling it, then drop the client (its connection closes).
    eventually("the slow request in flight", || {
        let mut text = Vec::new();
        metrics
            .encode(observe_core::metrics::Format::PrometheusText, &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        (sample(&text, "http_server_active_requests", &[]) == Some(1.0)).then_some(())
    })
    .await;
    pending.abort();
    let _ = pending.await;
    let text = eventually("the cancelled request recorded", || {
        let mut text = Vec::new();
        metrics
            .encode(observe_core::metrics::Format::PrometheusText, &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/slow"), ("error_type", "cancelled")],
        )
        .is_some()
        .then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/slow"), ("error_type", "cancelled")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_id_extractor_gives_the_request_trace_for_error_pages() {
    let metrics = fresh_metrics();
    let addr = serve(app(metrics, Sampler::AlwaysOff)).await;
    let tp = "00-11111111111111111111111111111111-2222222222222222-00";
    let (status, _, body) = http_get(addr, "/fail", &[("traceparent", tp)]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "failed; support reference 11111111111111111111111111111111"
    );
    let text = scrape(addr).await;
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/fail"), ("error_type", "500")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_id_extractor_rejects_without_the_layer() {
    let app = Router::new().route("/t", get(|t: TraceId| async move { t.to_string() }));
    let addr = serve(app).await;
    let (status, _, body) = http_get(addr, "/t", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("observe_axum::layer()"), "{body}");
}
