//! The status page as a user enables it: `init!` with `status_page(true)`, then
//! `observe_axum::metrics_router()` and `observe_core::metrics::serve` both answer `/observe`
//! and `/observe.json` beside `/metrics`, the layer does not measure page views, and a failed
//! sampled request shows up on the page with its trace id.
//!
//! One test: `init!` installs process-wide state once.

mod http_harness;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use http_harness::{eventually, get as http_get};
use observe_core::config::Config;

async fn fail(trace: observe_axum::TraceId) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, trace.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_enables_the_status_page_beside_metrics() {
    let _guard = observe_core::init!(Config::default().status_page(true)).expect("init");
    assert!(
        observe_core::status::global().is_some(),
        "init installs the page"
    );

    let app = Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .route("/fail", get(fail))
        .merge(observe_axum::metrics_router())
        .layer(observe_axum::layer());
    let addr = http_harness::serve(app).await;

    for id in 0..5 {
        let (status, _, _) = http_get(addr, &format!("/users/{id}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, failed_trace) = http_get(addr, "/fail", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed_trace.len(), 32, "the handler returned its trace id");

    // HTML: the route rows, no external assets.
    let (status, headers, html) = http_get(addr, "/observe", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.contains("/users/{id}"), "route row rendered");
    assert!(!html.contains("src=\"http"), "no external assets");

    // JSON: the failed request's trace id is among the recent failures.
    let json = eventually("the failed request on the page", || {
        let page = observe_core::status::global().unwrap();
        let json = page.render_json();
        json.contains(&failed_trace).then_some(json)
    })
    .await;
    let _: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let (status, headers, body) = http_get(addr, "/observe.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.contains(&failed_trace));

    // Page views and scrapes are not measured as routes.
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    assert!(metrics.contains("http_route=\"/users/{id}\""));
    // Building the page must not create the registry before init configures it.
    assert!(
        metrics.contains("target_info{"),
        "init configured the registry"
    );
    assert!(
        !metrics.contains("http_route=\"/observe"),
        "page views unmeasured"
    );
    assert!(
        !metrics.contains("http_route=\"/metrics\""),
        "scrapes unmeasured"
    );

    // The standalone metrics server (services without a router) serves the page too.
    let server = observe_core::metrics::MetricsServer::bind("127.0.0.1:0")
        .await
        .unwrap();
    let metrics_addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    let (status, _, html) = http_get(metrics_addr, "/observe", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("/users/{id}"));
    let (status, _, _) = http_get(metrics_addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
}
