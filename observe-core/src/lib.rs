//! # observe-core
//!
//! The framework-neutral core of observe: structured JSON logs that carry the trace id, RED
//! metrics served for Prometheus, and W3C trace-context propagation with OTLP trace export.
//! Web-framework crates (`observe-axum`, `observe-tonic`) build on it; it depends on none.
//!
//! See `docs/DESIGN.md` in the repository for the architecture and the rules of the hot path.
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod context;
pub mod counters;
pub mod http;
pub mod init;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod status;
pub mod trace;

/// The OpenTelemetry crates observe is built on, re-exported so users never pin them by hand.
///
/// ```
/// use observe_core::otel::opentelemetry::trace::TraceId;
/// assert_eq!(TraceId::INVALID.to_string(), "00000000000000000000000000000000");
/// ```
pub mod otel {
    pub use opentelemetry;
    pub use opentelemetry_otlp;
    pub use opentelemetry_sdk;
    pub use tracing_opentelemetry;
}
