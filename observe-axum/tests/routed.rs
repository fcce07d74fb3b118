//! The layer's per-thread cache of routing decisions (keyed by the address of axum's
//! `MatchedPath`): every request still lands under its own template when templates outnumber
//! and collide in the cache's slots, observe's own paths stay unmeasured, and a status page
//! installed after requests were served is skipped from then on.
//!
//! Its own test binary: one test installs the process's status page.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use observe_core::metrics::{Metrics, MetricsConfig, Series};
use tower::ServiceExt;

/// Requests counted per route template (`None`: no route), summed over methods and statuses.
fn counts(metrics: &Metrics) -> Vec<(Option<String>, u64)> {
    let mut out: Vec<(Option<String>, u64)> = Vec::new();
    for s in metrics.http_server().snapshot() {
        let Series::Labels(labels) = s.series else {
            panic!("no overflow expected: {s:?}");
        };
        let route = labels.route.map(|r| r.as_str().to_owned());
        match out.iter_mut().find(|(r, _)| *r == route) {
            Some((_, n)) => *n += s.histogram.count,
            None => out.push((route, s.histogram.count)),
        }
    }
    out.sort();
    out
}

async fn get_status(router: &Router, path: &str) -> StatusCode {
    let request = Request::get(path).body(Body::empty()).unwrap();
    router.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "current_thread")]
async fn every_request_is_counted_under_its_own_template() {
    // More templates than the cache has slots, so that some share a slot and evict each other.
    const TEMPLATES: usize = 40;
    let metrics = Metrics::new(MetricsConfig::default()).leak();
    let mut router = Router::new();
    for i in 0..TEMPLATES {
        router = router.route(&format!("/t{i}/{{id}}"), get(|| async { "ok" }));
    }
    let router = router
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(observe_axum::layer().metrics(metrics));

    // Template i gets i + 1 requests, interleaved round by round, with /metrics in between.
    for round in 0..TEMPLATES {
        for i in round..TEMPLATES {
            assert_eq!(
                get_status(&router, &format!("/t{i}/{round}")).await,
                StatusCode::OK
            );
        }
        assert_eq!(get_status(&router, "/metrics").await, StatusCode::OK);
    }
    assert_eq!(get_status(&router, "/nowhere").await, StatusCode::NOT_FOUND);

    let mut expected: Vec<(Option<String>, u64)> = (0..TEMPLATES)
        .map(|i| (Some(format!("/t{i}/{{id}}")), i as u64 + 1))
        .collect();
    // The 404 is measured without a route; /metrics is never measured.
    expected.push((None, 1));
    expected.sort();
    assert_eq!(counts(metrics), expected);
}

#[tokio::test(flavor = "current_thread")]
async fn a_status_page_installed_later_is_skipped_from_then_on() {
    let metrics = Metrics::new(MetricsConfig::default()).leak();
    // A user route at the path the status page will take, served before the page exists.
    let router = Router::new()
        .route("/late-status", get(|| async { "mine" }))
        .layer(observe_axum::layer().metrics(metrics));
    for _ in 0..3 {
        assert_eq!(get_status(&router, "/late-status").await, StatusCode::OK);
    }
    assert_eq!(counts(metrics), vec![(Some("/late-status".into()), 3)]);

    let page = observe_core::status::StatusPage::builder()
        .path("/late-status")
        .no_span_store()
        .build();
    assert!(observe_core::status::set_global(page), "no status page yet");
    for _ in 0..3 {
        assert_eq!(get_status(&router, "/late-status").await, StatusCode::OK);
    }
    // The cached "measure" decision was made before the page existed: not reused.
    assert_eq!(counts(metrics), vec![(Some("/late-status".into()), 3)]);
}
