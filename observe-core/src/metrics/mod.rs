//! RED metrics on a Prometheus registry, exposition, exemplars and the cardinality guard.
//!
//! [`Metrics`] holds the HTTP and gRPC instruments (names and labels per OpenTelemetry
//! semantic conventions, as the OpenTelemetry Prometheus exporter writes them), `target_info`,
//! process metrics, the SDK's own counters ([`crate::counters`]) and users' metrics on a
//! [`prometheus_client`] registry, all served from one endpoint.
//!
//! Recording is lock-free for a label set seen before and never allocates (method is an enum,
//! route an interned template, status a number). Each histogram family holds at most
//! [`MetricsConfig::cardinality_limit`] label sets; later ones go to one overflow series
//! labelled `otel_metric_overflow="true"`, counted by `observe_metric_overflow_total`.
//!
//! ```
//! use std::time::Duration;
//! use observe_core::metrics::*;
//!
//! let metrics = Metrics::new(
//!     MetricsConfig::default().with_resource_attribute("service.name", "checkout"),
//! );
//! let http = metrics.http_server();
//! let _in_flight = http.start(HttpMethod::Get, UrlScheme::Http);
//! http.record(
//!     HttpServerLabels { method: HttpMethod::Get, scheme: UrlScheme::Http,
//!         route: Some(Route::intern("/users/{id}")), status: 200, error: None },
//!     Duration::from_millis(7),
//!     None,
//! );
//! let mut body = Vec::new();
//! metrics.encode(Format::PrometheusText, &mut body).unwrap();
//! let body = String::from_utf8(body).unwrap();
//! assert!(body.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/users/{id}",http_response_status_code="200",le="0.01"} 1"#));
//! assert!(body.contains(r#"target_info{service_name="checkout"} 1"#));
//! ```

mod custom;
mod encode;
mod family;
mod http;
mod labels;
mod process;
mod recorder;
mod resource;
mod rpc;
mod serve;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock, RwLock};

pub use prometheus_client;

pub use custom::RegisterError;
pub use encode::{EncodeError, Format};
pub use family::{
    ExemplarSnapshot, HistogramSnapshot, Series, SeriesSnapshot, BUCKETS, DURATION_BUCKETS,
};
pub use http::{
    HttpClientLabels, HttpClientMetrics, HttpServerLabels, HttpServerMetrics, InFlight,
};
pub use labels::{
    ErrorType, Exemplar, GrpcCode, HttpMethod, Route, RpcMethod, ServerAddress, UrlScheme,
    MAX_INTERNED, MAX_INTERNED_LEN, OTHER,
};
pub use rpc::{RpcClientLabels, RpcLabels, RpcMetrics, RpcServerLabels};
pub use serve::{serve, MetricsServer, DEFAULT_PORT};

use encode::{Kind, Writer};

/// Label sets a histogram family holds by default before it overflows (the OpenTelemetry
/// SDKs' default cardinality limit).
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// How a [`Metrics`] is built.
///
/// ```
/// # use observe_core::metrics::MetricsConfig;
/// let config = MetricsConfig::default()
///     .with_cardinality_limit(500)
///     .with_resource_attribute("service.name", "checkout")
///     .with_resource_attribute("service.version", "1.4.2");
/// assert_eq!(config.cardinality_limit, 500);
/// ```
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Label sets per histogram family before observations go to the overflow series.
    pub cardinality_limit: usize,
    /// Resource attributes exposed as `target_info` labels (`service.name` -> `service_name`).
    /// Nothing is exposed when empty.
    pub resource: Vec<(String, String)>,
    /// Whether `process_*` metrics are exposed (Linux only). Default `true`.
    pub process_metrics: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            resource: Vec::new(),
            process_metrics: true,
        }
    }
}

impl MetricsConfig {
    /// Sets the per-family label-set limit (at least 1).
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit.max(1);
        self
    }

    /// Adds one resource attribute.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Turns the `process_*` metrics on or off.
    pub fn with_process_metrics(mut self, on: bool) -> Self {
        self.process_metrics = on;
        self
    }
}

/// The names observe itself exposes; users cannot register them.
const BUILTIN_NAMES: &[&str] = &[
    "target_info",
    "http_server_request_duration_seconds",
    "http_server_active_requests",
    "http_client_request_duration_seconds",
    "http_client_active_requests",
    "rpc_server_call_duration_seconds",
    "rpc_server_active_calls",
    "rpc_client_call_duration_seconds",
    "rpc_client_active_calls",
    "process_cpu_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// The metrics of one service: instruments, registry, exposition.
pub struct Metrics {
    http_server: HttpServerMetrics,
    http_client: HttpClientMetrics,
    rpc_server: RpcMetrics,
    rpc_client: RpcMetrics,
    target_info: String,
    process_metrics: bool,
    pub(crate) registry: RwLock<prometheus_client::registry::Registry>,
    pub(crate) names: Mutex<HashSet<String>>,
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// The global [`Metrics`] was already built, so this configuration was not applied.
#[derive(Debug, thiserror::Error)]
#[error("the global Metrics is already initialised; configure it before its first use")]
pub struct AlreadyInitialized;

impl Metrics {
    /// A new, empty set of metrics.
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// let m = Metrics::new(MetricsConfig::default());
    /// assert_eq!(m.http_server().series_count(), 0);
    /// ```
    pub fn new(config: MetricsConfig) -> Metrics {
        let limit = config.cardinality_limit.max(1);
        let mut names: HashSet<String> = BUILTIN_NAMES.iter().map(|s| s.to_string()).collect();
        for c in crate::counters::ALL {
            names.insert(c.name.to_string());
            names.insert(format!("{}_total", c.name));
        }
        Metrics {
            http_server: HttpServerMetrics::new(limit),
            http_client: HttpClientMetrics::new(limit),
            rpc_server: RpcMetrics::new(limit, true),
            rpc_client: RpcMetrics::new(limit, false),
            target_info: resource::render(&config.resource),
            process_metrics: config.process_metrics,
            registry: RwLock::new(Default::default()),
            names: Mutex::new(names),
        }
    }

    /// The process-wide metrics the layers record into: built with defaults on first use unless
    /// [`Metrics::init_global`] (called by `observe_core::init`) configured it first.
    ///
    /// ```
    /// # use observe_core::metrics::Metrics;
    /// assert!(std::ptr::eq(Metrics::global(), Metrics::global()));
    /// ```
    #[inline]
    pub fn global() -> &'static Metrics {
        // Called per request by layers without their own registry: the built case inline.
        match GLOBAL.get() {
            Some(metrics) => metrics,
            None => Self::global_init(),
        }
    }

    #[cold]
    fn global_init() -> &'static Metrics {
        GLOBAL.get_or_init(|| Metrics::new(MetricsConfig::default()))
    }

    /// Builds the global metrics with `config`. Fails if they were already built (by an
    /// earlier call or a use of [`Metrics::global`]).
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// let _ = Metrics::global();
    /// assert!(Metrics::init_global(MetricsConfig::default()).is_err());
    /// ```
    pub fn init_global(config: MetricsConfig) -> Result<&'static Metrics, AlreadyInitialized> {
        let mut config = Some(config);
        let m = GLOBAL.get_or_init(|| Metrics::new(config.take().unwrap_or_default()));
        match config {
            None => Ok(m),
            Some(_) => Err(AlreadyInitialized),
        }
    }

    /// Leaks `self` for a `'static` reference (tests, or servers that build their own).
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// let m: &'static Metrics = Metrics::new(MetricsConfig::default()).leak();
    /// # let _ = m;
    /// ```
    pub fn leak(self) -> &'static Metrics {
        Box::leak(Box::new(self))
    }

    /// HTTP server instruments.
    pub fn http_server(&self) -> &HttpServerMetrics {
        &self.http_server
    }

    /// HTTP client instruments.
    pub fn http_client(&self) -> &HttpClientMetrics {
        &self.http_client
    }

    /// gRPC server instruments.
    pub fn rpc_server(&self) -> &RpcMetrics {
        &self.rpc_server
    }

    /// gRPC client instruments.
    pub fn rpc_client(&self) -> &RpcMetrics {
        &self.rpc_client
    }

    /// The SDK's own counters, exposed as `<name>_total`.
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// let m = Metrics::new(MetricsConfig::default());
    /// assert_eq!(m.self_metrics().metric_overflow.name, "observe_metric_overflow");
    /// ```
    pub fn self_metrics(&self) -> SelfMetrics {
        SelfMetrics {
            spans_dropped: &crate::counters::SPANS_DROPPED,
            log_records_dropped: &crate::counters::LOG_RECORDS_DROPPED,
            metric_overflow: &crate::counters::METRIC_OVERFLOW,
        }
    }

    fn encode_builtin(&self, w: &mut Writer<'_>) {
        resource::write(w, &self.target_info);

        w.histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            &self.http_server.snapshot(),
        );
        active_by_method(
            w,
            "http_server_active_requests",
            "Number of active HTTP server requests",
            &self.http_server.active,
        );
        w.histogram(
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests",
            &self.http_client.snapshot(),
        );
        active_by_method(
            w,
            "http_client_active_requests",
            "Number of outbound HTTP requests that are currently active",
            &self.http_client.active,
        );
        w.histogram(
            "rpc_server_call_duration_seconds",
            "Duration of RPC calls handled by this server",
            &self.rpc_server.snapshot(),
        );
        w.header(
            "rpc_server_active_calls",
            "Number of RPC calls this server is handling",
            Kind::Gauge,
        );
        w.sample(
            "rpc_server_active_calls",
            "rpc_system_name=\"grpc\"",
            self.rpc_server.active(),
        );
        w.histogram(
            "rpc_client_call_duration_seconds",
            "Duration of RPC calls made by this client",
            &self.rpc_client.snapshot(),
        );
        w.header(
            "rpc_client_active_calls",
            "Number of RPC calls this client has in flight",
            Kind::Gauge,
        );
        w.sample(
            "rpc_client_active_calls",
            "rpc_system_name=\"grpc\"",
            self.rpc_client.active(),
        );

        for c in crate::counters::ALL {
            w.counter(c.name, c.help, c.get());
        }
        if self.process_metrics {
            process::write(w);
        }
    }
}

fn active_by_method(w: &mut Writer<'_>, name: &str, help: &str, active: &http::ActiveByMethod) {
    w.header(name, help, Kind::Gauge);
    for (m, s, v) in active.values() {
        let labels = format!(
            "http_request_method=\"{}\",url_scheme=\"{}\"",
            m.as_str(),
            s.as_str()
        );
        w.sample(name, &labels, v);
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("http_server", &self.http_server)
            .field("http_client", &self.http_client)
            .field("rpc_server", &self.rpc_server)
            .field("rpc_client", &self.rpc_client)
            .finish_non_exhaustive()
    }
}

/// The SDK's own counters (process-wide, see [`crate::counters`]).
#[derive(Debug, Clone, Copy)]
pub struct SelfMetrics {
    /// `observe_spans_dropped_total`.
    pub spans_dropped: &'static crate::counters::Counter,
    /// `observe_log_records_dropped_total`.
    pub log_records_dropped: &'static crate::counters::Counter,
    /// `observe_metric_overflow_total`.
    pub metric_overflow: &'static crate::counters::Counter,
}
