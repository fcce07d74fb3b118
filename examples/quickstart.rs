//! quickstart: an axum service with logs, metrics and traces from one `init` and one layer.
//!
//! ```text
//! cargo run -p observe-examples --example quickstart
//! curl -s localhost:3000/users/42                       # 200, a JSON log line with trace_id
//! curl -s localhost:3000/slow                           # ~1.5 s, shows up in the latency histogram
//! curl -s localhost:3000/fail                           # 500 with a support reference (the trace id)
//! curl -s -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!      localhost:3000/users/7                           # continues the caller's trace
//! curl -s localhost:3000/metrics | grep http_server     # RED metrics by route template
//! ```
//!
//! Set `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317` to export spans to a collector;
//! without it, traces are not exported and logs and metrics work the same.

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use observe_axum::TraceId;

async fn user(Path(id): Path<u64>) -> String {
    tracing::info!(user_id = id, "loading user");
    format!("user {id}\n")
}

async fn slow() -> &'static str {
    tracing::info!("starting a slow report");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tracing::info!("slow report done");
    "done\n"
}

async fn fail(trace: TraceId) -> (StatusCode, String) {
    tracing::error!(backend = "payments", "payment backend refused the charge");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("something went wrong; support reference {trace}\n"),
    )
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .merge(observe_axum::metrics_router())
        .layer(observe_axum::layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = observe_axum::init!()?;
    let addr = std::env::var("QUICKSTART_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "quickstart listening");
    axum::serve(listener, app()).await?;
    Ok(())
}
