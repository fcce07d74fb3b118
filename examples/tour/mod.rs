//! The tour: three instrumented services, one trace, printed.
//!
//! `cargo run --release -p observe-examples --example tour` starts three services as child
//! processes of the same binary — each with its own `init()`, `service.name`, `/metrics` and
//! JSON logs — sends them a burst of requests over loopback, and prints what observe recorded:
//!
//! 1. JSON log lines from every service that share the trace id of one request;
//! 2. RED per service and route, read back from each service's `/metrics`;
//! 3. the slowest trace as a waterfall with each service's share of the latency;
//! 4. where to look next.
//!
//! ```text
//!  client ──HTTP──▶ tour-gateway (axum) ──gRPC──▶ tour-backend (tonic) ──HTTP──▶ tour-dependency (axum)
//!                   GET /orders/{id}             shop.Orders/GetOrder           GET /stock/{sku}
//!                   POST /orders                 shop.Orders/PlaceOrder         POST /reserve
//!                   GET /slow, GET /fail         orders_placed_total{outcome}
//! ```
//!
//! The gateway serves `/metrics` on its HTTP port, the dependency too; the backend, with no
//! HTTP router, serves it on a port of its own (`observe_core::metrics::MetricsServer`). Each
//! service also answers `GET /tour/spans?trace_id=…` on an admin port: its in-process span
//! collector as JSON, which the tour merges by trace id.
//!
//! Modes: the default run (burst, report, exit 0); `--serve` (print every service's ports as
//! one JSON line on stdout — `{"dependency": {"port": .., "metrics_port": .., ..}, "backend":
//! {..}, "gateway": {..}}` — then their JSON log lines, until SIGINT/SIGTERM); `--fault slow`
//! or `--fault fail` (or `TOUR_FAULT`) to make `GET /orders/{id}` slow
//! ([`SLOW_FAULT_DELAY`]) or fail (gRPC `INTERNAL`, HTTP 500) for alert drills.
//! `OTEL_*` variables reach every service; with `OTEL_EXPORTER_OTLP_ENDPOINT` set they export
//! their spans there as well.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub mod backend;
pub mod child;
pub mod cli;
pub mod dependency;
pub mod gateway;
pub mod orchestrate;
pub mod prom;
pub mod report;
pub mod spans;

pub use cli::{Command, Fault, Role};
pub use report::TourReport;

/// The generated `shop.Orders` gRPC code (from `examples/proto/tour.proto`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("shop");
}

/// How much slower `GetOrder` is under `--fault slow`: above the 500 ms a latency SLO of the
/// deploy kit would consider slow.
pub const SLOW_FAULT_DELAY: Duration = Duration::from_millis(700);

/// Why the tour or one of its services stopped.
#[derive(Debug, thiserror::Error)]
pub enum TourError {
    /// Bad command line.
    #[error(transparent)]
    Args(#[from] cli::ArgError),
    /// observe could not be installed.
    #[error("observe init failed: {0}")]
    Init(#[from] observe_core::init::InitError),
    /// A listener, process or pipe failed.
    #[error("{0}")]
    Io(String),
    /// A service did not start or died.
    #[error("{role} service {message}")]
    Child {
        /// Which service.
        role: Role,
        /// What happened.
        message: String,
    },
    /// A request the tour made failed.
    #[error("request failed: {0}")]
    Http(String),
    /// A gRPC channel could not be built.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A precondition of the tour's own wiring.
    #[error("{0}")]
    Setup(&'static str),
}

impl From<std::io::Error> for TourError {
    fn from(e: std::io::Error) -> Self {
        TourError::Io(e.to_string())
    }
}

/// Runs the tour against services started from `exe` and returns the report
/// ([`orchestrate::run`]); `exe` is a binary whose `main` calls [`main`].
pub fn run(exe: &Path, fault: Fault) -> Result<TourReport, TourError> {
    orchestrate::run(exe, fault)
}

/// The whole program: parses the command line and plays the part it names (tour, `--serve`,
/// or one service with `--role`). Both the `tour` example and `tour-service` (in the tests
/// crate) are this function.
pub fn main() -> ExitCode {
    let fault_env = std::env::var("TOUR_FAULT").ok();
    let result = match cli::parse(std::env::args().skip(1), fault_env.as_deref()) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Ok(Command::Role(args)) => child::run(args),
        Ok(Command::Tour(args)) => {
            std::env::current_exe()
                .map_err(TourError::from)
                .and_then(|exe| {
                    if args.serve {
                        orchestrate::serve(&exe, args.fault)
                    } else {
                        run(&exe, args.fault).map(|report| print!("{}", report.render()))
                    }
                })
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tour: {e}");
            ExitCode::FAILURE
        }
    }
}
