//! One service process: `init`, listeners, a ready line for the orchestrator, serve until told
//! to stop.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::{Json, Router};
use observe_core::config::Config;
use observe_core::metrics::{Metrics, MetricsServer};
use observe_core::status::StatusPage;
use tokio::net::TcpListener;

use super::cli::{Role, RoleArgs};
use super::{backend, dependency, gateway, spans, TourError};

/// Spans each service keeps in process for the waterfall (a burst makes about six per request
/// across the three services).
pub const SPAN_CAPACITY: usize = 4096;

/// The key of the line a service prints on stdout once it listens:
/// `{"tour.ready": {"role": .., "service": .., "port": .., "metrics_port": .., "admin_port": ..}}`.
pub const READY_KEY: &str = "tour.ready";

/// Runs one service until SIGINT/SIGTERM (or, with `exit_on_stdin_eof`, until stdin closes).
pub fn run(args: RoleArgs) -> Result<(), TourError> {
    // OTEL_* from the environment still apply over this (endpoint, sampler, ...).
    let config = Config::default()
        .service_name(args.role.service_name())
        .span_collector(SPAN_CAPACITY);
    let telemetry = observe_core::init!(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(args));
    drop(runtime);
    // Flush spans (when exporting) before the process ends; bounded even if a collector hangs.
    let _ = telemetry.shutdown(Duration::from_secs(3));
    result
}

async fn bind(port: u16) -> Result<TcpListener, TourError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .map_err(|e| TourError::Io(format!("cannot listen on {addr}: {e}")))
}

async fn serve(args: RoleArgs) -> Result<(), TourError> {
    let service = args.role.service_name();
    let main = bind(args.port).await?;
    let admin = bind(args.admin_port).await?;
    let port = main.local_addr()?.port();
    let admin_port = admin.local_addr()?.port();
    // The admin port: observe's status page (`/observe`, `/observe.json`; loopback peers only)
    // and the tour's `/tour/spans`, kept off the service's own port so neither is measured.
    let page = StatusPage::builder().service_name(service).build();
    let admin_app = Router::new()
        .route(
            "/tour/spans",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let limit = q
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(200)
                    .min(SPAN_CAPACITY);
                Json(spans::spans_body(service, q.get("trace_id").map(String::as_str), limit))
            }),
        )
        .fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: axum::extract::Request| async move {
                match page.handle(&req, Some(peer)) {
                    Some(resp) => resp.into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            },
        );
    let admin_task = tokio::spawn(async move {
        axum::serve(
            admin,
            admin_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let (metrics_port, app): (u16, tokio::task::JoinHandle<Result<(), TourError>>) = match args.role
    {
        Role::Gateway => {
            let upstream = args
                .upstream
                .ok_or(TourError::Setup("gateway needs --upstream"))?;
            let app = gateway::router(gateway::backend_client(upstream)?);
            let task = tokio::spawn(async move { Ok(axum::serve(main, app).await?) });
            (port, task)
        }
        Role::Dependency => {
            let task =
                tokio::spawn(async move { Ok(axum::serve(main, dependency::router()).await?) });
            (port, task)
        }
        Role::Backend => {
            let upstream = args
                .upstream
                .ok_or(TourError::Setup("backend needs --upstream"))?;
            let placed = backend::register_orders_placed(Metrics::global())
                .map_err(|e| TourError::Io(format!("cannot register orders_placed: {e}")))?;
            // No HTTP router here: /metrics gets its own port, as the OpenTelemetry Prometheus
            // exporter does it (observe_core::metrics::serve binds a fixed address; the tour
            // binds port 0 and reports the port it got).
            let metrics =
                MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], args.metrics_port)))
                    .await
                    .map_err(|e| TourError::Io(format!("cannot listen for /metrics: {e}")))?;
            let metrics_port = metrics.local_addr()?.port();
            tokio::spawn(metrics.run());
            let shop = backend::Shop::new(upstream, args.fault, placed).into_service();
            let incoming = tonic::transport::server::TcpIncoming::from(main);
            let task = tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .layer(observe_tonic::server_layer())
                    .add_service(shop)
                    .serve_with_incoming(incoming)
                    .await?;
                Ok(())
            });
            (metrics_port, task)
        }
    };
    tracing::info!(
        role = args.role.as_str(),
        port,
        metrics_port,
        admin_port,
        fault = args.fault.as_str(),
        "listening"
    );
    let ready = serde_json::json!({ READY_KEY: {
        "role": args.role.as_str(), "service": service, "port": port,
        "metrics_port": metrics_port, "admin_port": admin_port,
    }});
    {
        // One write of one line: log lines on the same stdout are written whole too.
        let mut out = std::io::stdout().lock();
        out.write_all(format!("{ready}\n").as_bytes())?;
        out.flush()?;
    }

    let result = tokio::select! {
        r = app => r.map_err(|e| TourError::Io(format!("service task failed: {e}")))?,
        r = admin_task => r.map_err(|e| TourError::Io(format!("admin task failed: {e}")))?.map_err(TourError::from),
        () = shutdown_signal(args.exit_on_stdin_eof) => Ok(()),
    };
    tracing::info!(role = args.role.as_str(), "stopping");
    result
}

/// Completes on SIGINT or SIGTERM, or when stdin reaches end of file if `stdin_eof` (the
/// orchestrator holds our stdin: when it exits, however it exits, the pipe closes).
async fn shutdown_signal(stdin_eof: bool) {
    let stdin_closed = async move {
        if !stdin_eof {
            return std::future::pending().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = stdin_closed => {}
    }
}
