//! The client layer carries the trace from one service to a second over real loopback HTTP.

mod http_harness;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use http_harness::{get as http_get, sample, serve};
use observe_core::context::RequestContext;
use observe_core::http::ClientLayer;
use observe_core::metrics::Metrics;
use observe_core::trace::Sampler;
use tower::ServiceExt;

/// Service B: answers with the trace id it is handling and the `traceparent` it received.
fn service_b(metrics: &'static Metrics) -> Router {
    Router::new()
        .route(
            "/stock",
            get(|headers: http::HeaderMap| async move {
                let cx = RequestContext::current().expect("context in B");
                let received = headers
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned());
                let baggage = headers
                    .get("baggage")
                    .map(|v| v.to_str().unwrap().to_owned());
                serde_json::json!({
                    "trace_id": cx.trace_id.to_string(),
                    "received": received,
                    "baggage": baggage,
                })
                .to_string()
            }),
        )
        .layer(
            observe_axum::layer()
                .metrics(metrics)
                .sampler(Sampler::ParentBasedAlwaysOff),
        )
}

/// Service A: calls B through the client layer and reports its own context with B's answer.
fn service_a(metrics: &'static Metrics, b: std::net::SocketAddr) -> Router {
    let client = tower::ServiceBuilder::new()
        .layer(ClientLayer::new().metrics(metrics))
        .service(http_harness::client());
    Router::new()
        .route(
            "/checkout",
            get(move || {
                let client = client.clone();
                async move {
                    let cx = RequestContext::current().expect("context in A");
                    let req = http::Request::get(format!("http://{b}/stock"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let response = client.oneshot(req).await.expect("call B");
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    serde_json::json!({ "a_trace": cx.trace_id.to_string(), "a_span": cx.span_id.to_string(), "b": b })
                        .to_string()
                }
            }),
        )
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(observe_axum::layer().metrics(metrics).sampler(Sampler::ParentBasedAlwaysOff))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_layer_propagates_the_trace_to_a_second_service() {
    let metrics_a = Metrics::new(Default::default()).leak();
    let metrics_b = Metrics::new(Default::default()).leak();
    let b = serve(service_b(metrics_b)).await;
    let a = serve(service_a(metrics_a, b)).await;

    let tp = "00-5b8aa5a2d2c872e8321cf37308d69df2-051581bf3cb55c13-00";
    let (status, _, body) = http_get(
        a,
        "/checkout",
        &[("traceparent", tp), ("baggage", "tenant=acme")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["a_trace"], "5b8aa5a2d2c872e8321cf37308d69df2");
    assert_eq!(
        v["b"]["trace_id"], v["a_trace"],
        "B continues A's trace: {v}"
    );
    assert_eq!(
        v["b"]["received"],
        format!(
            "00-5b8aa5a2d2c872e8321cf37308d69df2-{}-00",
            v["a_span"].as_str().unwrap()
        ),
        "B's parent is A's span: {v}"
    );
    assert_eq!(v["b"]["baggage"], "tenant=acme");

    let (_, _, text) = http_get(a, "/metrics", &[]).await;
    assert_eq!(
        sample(
            &text,
            "http_client_request_duration_seconds_count",
            &[("http_response_status_code", "200")]
        ),
        Some(1.0),
        "{text}"
    );
}
