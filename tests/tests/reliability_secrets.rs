//! Secrets planted in real requests never leave the process: not in JSON logs, not in exported
//! spans or OTLP log records (the Python receiver), not on `/metrics`.
//!
//! Wiring as `init` does it: the JSON log layer, the OTLP log layer and the
//! `tracing-opentelemetry` layer on one global subscriber; spans and log records exported over
//! OTLP/gRPC to the real receiver; an axum service with observe's layer over loopback; the
//! handler calls a downstream service through observe's client layer. Secrets sit in
//! `Authorization`, `Cookie`, `Proxy-Authorization`, `X-Api-Key`, the query string, the request
//! body, and the query of the outgoing call.

mod http_harness;

use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use http_body_util::{BodyExt, Full};
use http_harness::{get as http_get, serve, Captured};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use observe_core::config::{BatchConfig, Config, ExporterKind, OtlpProtocol};
use observe_core::http::ClientLayer;
use observe_core::metrics::Metrics;
use observe_core::trace::{self, otlp_logs, Sampler};
use observe_tests::otlp::OtlpReceiver;
use tower::{Layer, ServiceExt};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const SECRETS: &[&str] = &[
    "AUTHZ-5ecret-a1",
    "COOKIE-5ecret-c2",
    "PROXY-5ecret-p3",
    "APIKEY-5ecret-k4",
    "QUERY-5ecret-q5",
    "QTOKEN-5ecret-t6",
    "BODY-5ecret-b7",
    "DOWNSTREAM-5ecret-d8",
];

async fn login(headers: HeaderMap, RawQuery(query): RawQuery, body: String) -> &'static str {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    // A handler that logs what it was given under the usual names, in a span of its own and
    // in an event: the field names are what redaction must catch.
    let password = body.split('"').nth(3).unwrap_or_default().to_string();
    let span = tracing::info_span!("check_credentials", password = %password, user = "bob");
    async {
        tracing::info!(
            authorization = %h("authorization"),
            cookie = %h("cookie"),
            proxy_authorization = %h("proxy-authorization"),
            x_api_key = %h("x-api-key"),
            password = %password,
            query_present = query.is_some(),
            "login attempt"
        );
        // The outgoing call carries a secret in its query string.
        let client = ClientLayer::new()
            .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
        let addr = headers["x-self"].to_str().unwrap().to_string();
        let req = http::Request::get(format!(
            "http://{addr}/downstream?access_token=DOWNSTREAM-5ecret-d8&page=1"
        ))
        .body(Full::new(Bytes::new()))
        .unwrap();
        let response = client.oneshot(req).await.expect("downstream answers");
        assert_eq!(response.status(), StatusCode::OK);
        tracing::info!(status = response.status().as_u16(), "downstream done");
    }
    .instrument(span)
    .await;
    "welcome"
}

fn app(metrics: &'static Metrics, opt_in: bool) -> Router {
    let mut layer = observe_axum::layer().metrics(metrics);
    if opt_in {
        layer = layer.record_query(true).record_request_headers(
            [
                "authorization",
                "cookie",
                "proxy-authorization",
                "x-api-key",
                "x-request-id",
            ]
            .map(HeaderName::from_static),
        );
    }
    Router::new()
        .route("/login", post(login))
        .route("/downstream", get(|| async { "ok" }))
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(layer)
}

async fn attack(addr: std::net::SocketAddr) {
    let req = http::Request::post(format!(
        "http://{addr}/login?api_key=QUERY-5ecret-q5&token=QTOKEN-5ecret-t6&page=2"
    ))
    .header("authorization", "Bearer AUTHZ-5ecret-a1")
    .header("cookie", "session=COOKIE-5ecret-c2; theme=dark")
    .header("proxy-authorization", "Basic PROXY-5ecret-p3")
    .header("x-api-key", "APIKEY-5ecret-k4")
    .header("x-request-id", "req-visible-42")
    .header("x-self", addr.to_string())
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(
        r#"{"password":"BODY-5ecret-b7","user":"bob"}"#,
    )))
    .unwrap();
    let response = Client::builder(TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"welcome");
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{s} leaked into {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_appear_in_no_output() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let mut batch = BatchConfig::default();
    batch.schedule_delay = Duration::from_millis(100);
    let mut config = Config::default()
        .service_name("reliability-secrets")
        .otlp_endpoint(receiver.grpc_endpoint())
        .otlp_protocol(OtlpProtocol::Grpc)
        .sampler(Sampler::AlwaysOn)
        .batch(batch.clone())
        .log_batch(batch);
    config.logs_exporter = ExporterKind::Otlp;
    let trace_guard = trace::install(&config).unwrap();
    let otlp = otlp_logs::install(&config)
        .unwrap()
        .expect("OTLP logs configured");
    let json = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(trace::otel_layer().expect("tracer installed"))
        .with(otlp.layer())
        .with(
            observe_core::logs::JsonLayer::builder()
                .service_name("reliability-secrets")
                .writer(json.clone())
                .build(),
        );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    for opt_in in [false, true] {
        receiver.clear();
        json.0.lock().unwrap().clear();
        let metrics = Metrics::new(Default::default()).leak();
        let addr = serve(app(metrics, opt_in)).await;
        attack(addr).await;
        let (_, _, scrape) = http_get(addr, "/metrics", &[]).await;
        // The login span, the user span, the client span, the downstream server span.
        let (spans, records) = tokio::task::block_in_place(|| {
            let spans = receiver.wait_for_spans(4, Duration::from_secs(10));
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            // Wait for this request's own records: other events (h2's, say) may be exported first.
            let has_login = |r: &[serde_json::Value]| {
                serde_json::to_string(r).is_ok_and(|t| t.contains("login attempt"))
            };
            let mut records = receiver.logs();
            while !has_login(&records) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                records = receiver.logs();
            }
            (spans, records)
        });
        let logs = String::from_utf8(json.0.lock().unwrap().clone()).unwrap();
        let spans_text = serde_json::to_string_pretty(&spans).unwrap();
        let records_text = serde_json::to_string_pretty(&records).unwrap();

        // Positive controls: each output really holds this request.
        assert!(
            logs.contains("login attempt") && logs.contains("downstream done"),
            "{logs}"
        );
        assert!(scrape.contains("http_route=\"/login\""), "{scrape}");
        assert!(spans_text.contains("/downstream"), "{spans_text}");
        assert!(spans_text.contains("check_credentials"), "{spans_text}");
        assert!(records_text.contains("login attempt"), "{records_text}");
        assert!(
            logs.contains("[REDACTED]"),
            "the handler's secret fields are redacted: {logs}"
        );

        assert_clean("JSON logs", &logs);
        assert_clean("/metrics", &scrape);
        assert_clean("exported spans", &spans_text);
        assert_clean("OTLP log records", &records_text);

        let login = spans
            .iter()
            .find(|s| s["name"] == "POST /login")
            .unwrap_or_else(|| panic!("server span: {spans_text}"));
        let attrs = &login["attributes"];
        if opt_in {
            assert_eq!(attrs["url.query"], "api_key=REDACTED&token=REDACTED&page=2");
            let request_id = attrs["http.request.header.x-request-id"].to_string();
            assert!(request_id.contains("req-visible-42"), "{attrs}");
            assert!(spans_text.contains("req-visible-42"), "{spans_text}");
            for h in [
                "authorization",
                "cookie",
                "proxy-authorization",
                "x-api-key",
            ] {
                let v = attrs[format!("http.request.header.{h}")].to_string();
                assert!(v.contains("[REDACTED]"), "{h}: {v}");
            }
        } else {
            assert!(attrs.get("url.query").is_none(), "{attrs}");
            assert!(!spans_text.contains("http.request.header."), "{spans_text}");
            assert!(!spans_text.contains("req-visible-42"), "{spans_text}");
        }
    }
    let _ = otlp.shutdown(Duration::from_secs(5));
    let _ = trace_guard.shutdown(Duration::from_secs(5));
}
