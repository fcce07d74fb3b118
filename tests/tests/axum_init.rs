//! The whole stack as a user gets it: `init!` (global tracer, sampler, subscriber with the
//! otel layer), `observe_axum::layer()` with no overrides, real loopback HTTP.
//!
//! One test: `init!` installs process-wide state once.

mod http_harness;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use http_harness::{eventually, get as http_get, serve};
use observe_core::config::Config;
use observe_core::trace::collector;
use tracing::Instrument as _;

async fn handler() -> &'static str {
    async {
        tracing::info!("querying");
        tokio::task::yield_now().await;
    }
    .instrument(tracing::info_span!("db.query"))
    .await;
    "ok"
}

// Guards against a per-callsite cached filter: a span first seen inside a sampled request must
// not be exported (as a new root trace) inside later unsampled ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_spans_follow_the_request_sampling_decision() {
    let _guard = observe_core::init!(Config::default().span_collector(1000)).expect("init");
    let store = collector::global().expect("span collector installed");
    let app = Router::new()
        .route("/orders/{id}", get(handler))
        .merge(observe_axum::metrics_router())
        .layer(observe_axum::layer());
    let addr = serve(app).await;

    // Sampled caller: the server span continues its trace; the user's span is its child.
    let sampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp = format!("00-{sampled}-00f067aa0ba902b7-01");
    assert_eq!(
        http_get(addr, "/orders/1", &[("traceparent", &tp)]).await.0,
        StatusCode::OK
    );
    let spans = eventually("both spans of the sampled request", || {
        let spans = store.trace(observe_core::context::TraceId::from_hex(sampled).unwrap());
        (spans.len() >= 2).then_some(spans)
    })
    .await;
    let server = spans
        .iter()
        .find(|s| s.name == "GET /orders/{id}")
        .expect("server span");
    let db = spans
        .iter()
        .find(|s| s.name == "db.query")
        .expect("user span");
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(db.parent_span_id, server.span_context.span_id());

    // Unsampled caller: nothing is recorded for it, and the user's span does not start a new
    // (sampled) trace of its own either.
    let before = store.len();
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let tp = format!("00-{unsampled}-b7ad6b7169203331-00");
    assert_eq!(
        http_get(addr, "/orders/2", &[("traceparent", &tp)]).await.0,
        StatusCode::OK
    );
    // A third, sampled request marks the point by which the second one's spans would exist.
    let marker = "11111111111111111111111111111111";
    let tp = format!("00-{marker}-2222222222222222-01");
    assert_eq!(
        http_get(addr, "/orders/3", &[("traceparent", &tp)]).await.0,
        StatusCode::OK
    );
    eventually("the marker request's spans", || {
        (store
            .trace(observe_core::context::TraceId::from_hex(marker).unwrap())
            .len()
            >= 2)
            .then_some(())
    })
    .await;
    assert!(store
        .trace(observe_core::context::TraceId::from_hex(unsampled).unwrap())
        .is_empty());
    let dump: Vec<_> = store
        .recent_traces(100)
        .into_iter()
        .map(|t| format!("{t:?}"))
        .collect();
    assert_eq!(
        store.len(),
        before + 2,
        "only the marker's two spans were added: {dump:#?}"
    );
}
