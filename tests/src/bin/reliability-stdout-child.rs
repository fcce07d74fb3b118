//! A small axum service for tests/tests/reliability_stdout.rs: its parent never reads its
//! stdout, so the pipe fills. `GET /work` logs 20 JSON lines of ~300 bytes; `/metrics` is the
//! global registry. Prints `127.0.0.1:<port>` on stderr once listening.
//!
//! Without arguments the logs go through `observe_core::init` (the default writer: the bounded
//! non-blocking stdout queue). With `--blocking` they go through `LogWriter::Stdout`, the
//! blocking writer, to show its back-pressure.

use axum::routing::get;
use axum::Router;
use observe_core::logs::{layer_for, LogOptions, LogWriter};
use tracing_subscriber::layer::SubscriberExt;

const FILLER: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\
0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef";

async fn work() -> &'static str {
    for line in 0..20 {
        tracing::info!(line, filler = FILLER, "working");
    }
    "done"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let blocking = std::env::args().nth(1).as_deref() == Some("--blocking");
    let _guard: Box<dyn std::any::Any> = if blocking {
        let (layer, guard) = layer_for(LogOptions::new("stdout-child").writer(LogWriter::Stdout))?;
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
        Box::new(guard)
    } else {
        Box::new(observe_core::init::init(
            observe_core::config::Config::default().service_name("stdout-child"),
        )?)
    };
    let app = Router::new()
        .route("/work", get(work))
        .merge(observe_axum::metrics_router())
        .layer(observe_axum::layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
