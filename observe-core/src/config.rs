//! Configuration: the [`Config`] builder and `OTEL_*` / `OBSERVE_*` environment overrides.
//!
//! Code sets the defaults, the environment overrides them (the OpenTelemetry convention, so
//! operators can retune a deployed service without a rebuild). Every value read from the
//! environment is validated: a bad one is a [`ConfigError`] that names the variable and the
//! value — never a panic and never silently ignored. An empty variable counts as unset, as the
//! OpenTelemetry specification says.
//!
//! ```
//! use observe_core::config::{Config, OtlpProtocol};
//! use observe_core::trace::Sampler;
//!
//! let env = |name: &str| match name {
//!     "OTEL_SERVICE_NAME" => Some("checkout".to_string()),
//!     "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".to_string()),
//!     "OTEL_TRACES_SAMPLER_ARG" => Some("0.25".to_string()),
//!     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_string()),
//!     "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
//!     _ => None,
//! };
//! let config = Config::default()
//!     .service_name("orders")
//!     .service_version("1.2.0")
//!     .with_env_from(env)
//!     .unwrap();
//! assert_eq!(config.service_name.as_deref(), Some("checkout"));
//! assert_eq!(config.sampler, Sampler::ParentBasedTraceIdRatio(0.25));
//! let traces = config.traces_otlp().unwrap();
//! assert_eq!(traces.endpoint, "http://127.0.0.1:4318/v1/traces");
//! assert_eq!(traces.protocol, OtlpProtocol::HttpProtobuf);
//!
//! let bad = Config::default().with_env_from(|name| {
//!     (name == "OTEL_TRACES_SAMPLER_ARG").then(|| "abc".to_string())
//! });
//! assert_eq!(
//!     bad.unwrap_err().to_string(),
//!     r#"OTEL_TRACES_SAMPLER_ARG="abc": not a number in 0..=1"#
//! );
//! ```

use std::fmt;
use std::time::Duration;

use crate::trace::Sampler;

/// Everything observe can be configured with. Build it with the chained setters, then apply
/// the environment with [`Config::with_env_overrides`].
///
/// Fields are public for reading; the struct is `#[non_exhaustive]` so new settings are not
/// breaking changes. Start from [`Config::default`] or [`Config::builder`].
///
/// ```
/// use observe_core::config::{Config, LogFormat};
/// let config = Config::builder()
///     .service_name("orders")
///     .deployment_environment("staging")
///     .log_format(LogFormat::Pretty)
///     .otlp_endpoint("http://127.0.0.1:4317");
/// assert_eq!(config.deployment_environment.as_deref(), Some("staging"));
/// assert!(config.traces_otlp().is_some());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// `OTEL_SDK_DISABLED`: install nothing that exports or samples (logs still work).
    pub sdk_disabled: bool,
    /// `service.name` (`OTEL_SERVICE_NAME`). `None` becomes `unknown_service`.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `deployment.environment.name` (e.g. `production`).
    pub deployment_environment: Option<String>,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, appended after the ones set in code).
    pub resource_attributes: Vec<(String, String)>,
    /// Propagators to install (`OTEL_PROPAGATORS`); empty means none.
    pub propagators: Vec<Propagator>,
    /// The head sampler (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`).
    pub sampler: Sampler,
    /// `OTEL_TRACES_EXPORTER`. Even when `Otlp`, nothing is exported unless an endpoint is set;
    /// `Console` writes finished sampled spans to stdout as JSON lines.
    pub traces_exporter: ExporterKind,
    /// `OTEL_LOGS_EXPORTER`. Logs always go to stdout; `Otlp` also exports them (`Console` and
    /// `None`: stdout only).
    pub logs_exporter: ExporterKind,
    /// `OTEL_EXPORTER_OTLP_*`: settings shared by every signal.
    pub otlp: OtlpSettings,
    /// `OTEL_EXPORTER_OTLP_TRACES_*`: per-signal overrides for traces.
    pub otlp_traces: OtlpOverrides,
    /// `OTEL_EXPORTER_OTLP_LOGS_*`: per-signal overrides for logs.
    pub otlp_logs: OtlpOverrides,
    /// `OTEL_BSP_*`: the span batch processor.
    pub batch: BatchConfig,
    /// `OTEL_BLRP_*`: the log record batch processor of OTLP log export.
    pub log_batch: BatchConfig,
    /// Log filter directives in `EnvFilter` syntax (`OBSERVE_LOG`, else `RUST_LOG`).
    pub log_filter: String,
    /// `OBSERVE_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Field names whose values are replaced by `[redacted]` in logs (case-insensitive).
    pub redact_fields: Vec<String>,
    /// `OBSERVE_METRICS_MAX_SERIES`: label sets per metric family before the overflow series.
    pub metrics_max_series: usize,
    /// `OBSERVE_STATUS_PAGE`: serve the status page.
    pub status_page: bool,
    /// `OBSERVE_SPAN_EVENTS`: keep `tracing` events inside sampled spans as span events in
    /// exported spans. Off by default: the JSON log lines already carry them, with the ids.
    pub span_events: bool,
    /// Keep the most recent finished spans in process (capacity in spans), for the status page
    /// and examples that print a waterfall without any collector. `None`: no in-process store.
    pub span_collector: Option<usize>,
}

/// A context propagator named in `OTEL_PROPAGATORS`.
///
/// ```
/// # use observe_core::config::Propagator;
/// assert_eq!(Propagator::TraceContext.as_str(), "tracecontext");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

impl Propagator {
    /// The name used in `OTEL_PROPAGATORS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagator::TraceContext => "tracecontext",
            Propagator::Baggage => "baggage",
        }
    }
}

/// Where a signal is exported (`OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER`): `otlp`,
/// `console` or `none`.
///
/// ```
/// # use observe_core::config::{Config, ExporterKind};
/// assert_eq!(Config::default().traces_exporter, ExporterKind::Otlp);
/// assert_eq!(Config::default().logs_exporter, ExporterKind::None);
/// let c = Config::default()
///     .with_env_from(|n| (n == "OTEL_TRACES_EXPORTER").then(|| "console".into()))
///     .unwrap();
/// assert_eq!(c.traces_exporter, ExporterKind::Console);
/// assert!(c.traces_otlp().is_none(), "console needs no endpoint");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// OTLP, to the configured endpoint.
    Otlp,
    /// Standard output, for debugging. Traces: each finished sampled span as one JSON line
    /// (see [`crate::trace`]); no endpoint needed. Logs: they go to stdout anyway, so this
    /// means stdout only, the same as `None`.
    Console,
    /// Not exported.
    None,
}

/// The OTLP transport.
///
/// ```
/// # use observe_core::config::OtlpProtocol;
/// assert_eq!(OtlpProtocol::default(), OtlpProtocol::Grpc);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`grpc`).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`).
    HttpProtobuf,
}

/// Compression of OTLP requests.
///
/// ```
/// # use observe_core::config::OtlpCompression;
/// assert_eq!(OtlpCompression::default(), OtlpCompression::None);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OtlpCompression {
    /// Uncompressed.
    #[default]
    None,
    /// gzip.
    Gzip,
}

pub use crate::logs::LogFormat;

/// OTLP headers (e.g. an API key). `Debug` shows the names only: values are credentials.
///
/// ```
/// # use observe_core::config::Headers;
/// let h = Headers(vec![("api-key".into(), "secret".into())]);
/// assert!(!format!("{h:?}").contains("secret"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, "<redacted>")))
            .finish()
    }
}

/// `OTEL_EXPORTER_OTLP_*`: the settings every signal shares.
///
/// ```
/// # use observe_core::config::OtlpSettings;
/// assert_eq!(OtlpSettings::default().timeout.as_secs(), 10);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OtlpSettings {
    /// Base endpoint. For HTTP, `/v1/traces` or `/v1/logs` is appended.
    pub endpoint: Option<String>,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Extra request headers or gRPC metadata.
    pub headers: Headers,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Request compression.
    pub compression: OtlpCompression,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            headers: Headers::default(),
            timeout: Duration::from_secs(10),
            compression: OtlpCompression::None,
        }
    }
}

/// `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_*`: per-signal overrides of [`OtlpSettings`].
///
/// ```
/// # use observe_core::config::OtlpOverrides;
/// assert!(OtlpOverrides::default().endpoint.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OtlpOverrides {
    /// Full endpoint URL, used as-is (no path appended).
    pub endpoint: Option<String>,
    /// Transport.
    pub protocol: Option<OtlpProtocol>,
    /// Headers (replace the shared ones when set).
    pub headers: Option<Headers>,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// Request compression.
    pub compression: Option<OtlpCompression>,
}

/// The OTLP settings in effect for one signal, endpoint resolved per the specification.
///
/// ```
/// # use observe_core::config::{Config, OtlpProtocol};
/// let c = Config::default().otlp_endpoint("http://127.0.0.1:4317");
/// let t = c.traces_otlp().unwrap();
/// assert_eq!((t.endpoint.as_str(), t.protocol), ("http://127.0.0.1:4317", OtlpProtocol::Grpc));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ResolvedOtlp {
    /// The URL requests go to.
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Headers or gRPC metadata.
    pub headers: Headers,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Compression.
    pub compression: OtlpCompression,
}

/// Limits of a batch processor: of spans (`OTEL_BSP_*`, [`Config::batch`]) or of OTLP log
/// records (`OTEL_BLRP_*`, [`Config::log_batch`]). The two differ only in their default
/// schedule delay ([`BatchConfig::default`] for spans, [`BatchConfig::log_records`]).
///
/// ```
/// # use observe_core::config::BatchConfig;
/// let b = BatchConfig::default();
/// assert_eq!((b.max_queue_size, b.max_export_batch_size), (2048, 512));
/// assert_eq!(b.schedule_delay.as_millis(), 5000);
/// assert_eq!(BatchConfig::log_records().schedule_delay.as_millis(), 1000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Delay between two exports (`OTEL_BSP_SCHEDULE_DELAY` / `OTEL_BLRP_SCHEDULE_DELAY`, ms).
    pub schedule_delay: Duration,
    /// Longest one export may take (`OTEL_BSP_EXPORT_TIMEOUT` / `OTEL_BLRP_EXPORT_TIMEOUT`, ms).
    pub export_timeout: Duration,
    /// Items (spans or log records) held waiting for export; past it they are dropped and
    /// counted.
    pub max_queue_size: usize,
    /// Items per export request; at most `max_queue_size`.
    pub max_export_batch_size: usize,
}

impl BatchConfig {
    /// The OpenTelemetry specification's defaults for the batch log record processor
    /// (`OTEL_BLRP_*`): a 1000 ms schedule delay, 30000 ms export timeout, a queue of 2048 and
    /// batches of 512.
    ///
    /// ```
    /// # use observe_core::config::{BatchConfig, Config};
    /// assert_eq!(Config::default().log_batch, BatchConfig::log_records());
    /// ```
    pub fn log_records() -> BatchConfig {
        BatchConfig {
            schedule_delay: Duration::from_millis(1000),
            ..BatchConfig::default()
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        // The OpenTelemetry specification's defaults.
        BatchConfig {
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

/// Field names redacted from logs unless the user configures otherwise: the logs module's list,
/// so there is one source of truth.
pub const DEFAULT_REDACT_FIELDS: &[&str] = crate::logs::DEFAULT_REDACTED_FIELDS;

impl Default for Config {
    fn default() -> Self {
        Config {
            sdk_disabled: false,
            service_name: None,
            service_version: None,
            deployment_environment: None,
            resource_attributes: Vec::new(),
            propagators: vec![Propagator::TraceContext, Propagator::Baggage],
            sampler: Sampler::ParentBasedAlwaysOn,
            traces_exporter: ExporterKind::Otlp,
            logs_exporter: ExporterKind::None,
            otlp: OtlpSettings::default(),
            otlp_traces: OtlpOverrides::default(),
            otlp_logs: OtlpOverrides::default(),
            batch: BatchConfig::default(),
            log_batch: BatchConfig::log_records(),
            log_filter: "info".to_string(),
            log_format: LogFormat::Json,
            redact_fields: DEFAULT_REDACT_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            metrics_max_series: 2000,
            status_page: false,
            span_events: false,
            span_collector: None,
        }
    }
}

/// A configuration value that observe refuses, naming the variable (or setting) and the value.
///
/// ```
/// # use observe_core::config::Config;
/// let err = Config::default()
///     .with_env_from(|n| (n == "OTEL_BSP_MAX_QUEUE_SIZE").then(|| "ten".into()))
///     .unwrap_err();
/// assert_eq!(err.to_string(), r#"OTEL_BSP_MAX_QUEUE_SIZE="ten": not a positive integer"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse as what the variable expects.
    #[error("{variable}={value:?}: {expected}")]
    Invalid {
        /// The variable (or code setting) name.
        variable: &'static str,
        /// The value that was refused.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A malformed header list. The value is not shown: headers carry credentials.
    #[error("{variable}: entry {entry} is not a percent-encoded key=value pair (value not shown)")]
    InvalidHeaders {
        /// The variable.
        variable: &'static str,
        /// 1-based position of the bad entry.
        entry: usize,
    },
    /// A log filter `EnvFilter` cannot parse.
    #[error("{variable}={value:?}: not a valid log filter: {reason}")]
    InvalidLogFilter {
        /// `OBSERVE_LOG`, `RUST_LOG`, or `log_filter` when set in code.
        variable: &'static str,
        /// The filter.
        value: String,
        /// The parser's message.
        reason: String,
    },
    /// The span export batch is larger than the queue it is taken from.
    #[error("OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} exceeds OTEL_BSP_MAX_QUEUE_SIZE={queue}")]
    BatchLargerThanQueue {
        /// Export batch size.
        batch: usize,
        /// Queue size.
        queue: usize,
    },
    /// The log record export batch is larger than the queue it is taken from.
    #[error("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE={batch} exceeds OTEL_BLRP_MAX_QUEUE_SIZE={queue}")]
    LogBatchLargerThanQueue {
        /// Export batch size.
        batch: usize,
        /// Queue size.
        queue: usize,
    },
}

impl Config {
    /// The defaults; the same as [`Config::default`], for builder-style call sites.
    pub fn builder() -> Config {
        Config::default()
    }

    /// The defaults with the process environment applied.
    ///
    /// ```
    /// let config = observe_core::config::Config::from_env();
    /// # let _ = config;
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::default().with_env_overrides()
    }

    /// Sets `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }
    /// Sets `service.version`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }
    /// Sets `deployment.environment.name`.
    pub fn deployment_environment(mut self, env: impl Into<String>) -> Self {
        self.deployment_environment = Some(env.into());
        self
    }
    /// Adds a resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }
    /// Sets the head sampler.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }
    /// Sets the shared OTLP endpoint (for HTTP, `/v1/traces` is appended for traces).
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp.endpoint = Some(endpoint.into());
        self
    }
    /// Sets the OTLP transport.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp.protocol = protocol;
        self
    }
    /// Adds an OTLP header (or gRPC metadata entry).
    pub fn otlp_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp.headers.0.push((key.into(), value.into()));
        self
    }
    /// Sets the OTLP request timeout.
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        self.otlp.timeout = timeout;
        self
    }
    /// Sets the OTLP compression.
    pub fn otlp_compression(mut self, compression: OtlpCompression) -> Self {
        self.otlp.compression = compression;
        self
    }
    /// Sets the traces-only endpoint, used as-is.
    pub fn otlp_traces_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_traces.endpoint = Some(endpoint.into());
        self
    }
    /// Sets the batch span processor limits.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }
    /// Sets the limits of the batch log record processor used by OTLP log export (the span
    /// limits of [`Config::batch`] do not apply to logs).
    ///
    /// ```
    /// # use observe_core::config::{BatchConfig, Config};
    /// let mut limits = BatchConfig::log_records();
    /// limits.max_queue_size = 10_000;
    /// let config = Config::default().log_batch(limits);
    /// assert_eq!(config.log_batch.max_queue_size, 10_000);
    /// assert_eq!(config.batch.max_queue_size, 2048);
    /// ```
    pub fn log_batch(mut self, batch: BatchConfig) -> Self {
        self.log_batch = batch;
        self
    }
    /// Sets the log filter (`EnvFilter` syntax).
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = filter.into();
        self
    }
    /// Sets the log format.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }
    /// Replaces the list of redacted field names.
    pub fn redact_fields<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.redact_fields = fields.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the per-family label-set limit.
    pub fn metrics_max_series(mut self, max: usize) -> Self {
        self.metrics_max_series = max;
        self
    }
    /// Enables or disables the status page.
    pub fn status_page(mut self, enabled: bool) -> Self {
        self.status_page = enabled;
        self
    }
    /// Keeps (or drops, the default) `tracing` events as span events of exported spans.
    pub fn span_events(mut self, enabled: bool) -> Self {
        self.span_events = enabled;
        self
    }
    /// Keeps the last `capacity` finished spans in process (see [`crate::trace::collector`]).
    pub fn span_collector(mut self, capacity: usize) -> Self {
        self.span_collector = Some(capacity);
        self
    }
    /// Sets where traces go (`OTEL_TRACES_EXPORTER`): [`ExporterKind::Console`] prints
    /// finished sampled spans on stdout, handy while developing without a collector.
    ///
    /// ```
    /// # use observe_core::config::{Config, ExporterKind};
    /// let config = Config::default().traces_exporter(ExporterKind::Console);
    /// assert_eq!(config.traces_exporter, ExporterKind::Console);
    /// ```
    pub fn traces_exporter(mut self, exporter: ExporterKind) -> Self {
        self.traces_exporter = exporter;
        self
    }
    /// Disables (or re-enables) trace export and sampling entirely.
    pub fn sdk_disabled(mut self, disabled: bool) -> Self {
        self.sdk_disabled = disabled;
        self
    }

    /// Applies the process environment, then validates.
    pub fn with_env_overrides(self) -> Result<Config, ConfigError> {
        self.with_env_from(|name| std::env::var(name).ok())
    }

    /// Applies environment variables read through `lookup` (tests pass a map), then validates.
    pub fn with_env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // The specification treats an empty value as unset.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        if let Some(v) = get("OTEL_SDK_DISABLED") {
            self.sdk_disabled = parse_bool("OTEL_SDK_DISABLED", &v)?;
        }
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, val) in parse_key_values(&v).map_err(|_| ConfigError::Invalid {
                variable: "OTEL_RESOURCE_ATTRIBUTES",
                value: v.clone(),
                expected: "comma-separated percent-encoded key=value pairs",
            })? {
                match k.as_str() {
                    "service.name" => self.service_name = Some(val),
                    "service.version" => self.service_version = Some(val),
                    "deployment.environment.name" => self.deployment_environment = Some(val),
                    // Replace rather than append, so applying the environment twice
                    // (e.g. `from_env()` then `init`) leaves one value per key.
                    _ => match self.resource_attributes.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(existing) => existing.1 = val,
                        None => self.resource_attributes.push((k, val)),
                    },
                }
            }
        }
        // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (spec).
        if let Some(v) = get("OTEL_SERVICE_NAME") {
            self.service_name = Some(v.trim().to_string());
        }
        if let Some(v) = get("OTEL_PROPAGATORS") {
            self.propagators = parse_propagators(&v)?;
        }
        let sampler_arg = match get("OTEL_TRACES_SAMPLER_ARG") {
            Some(v) => Some(parse_ratio("OTEL_TRACES_SAMPLER_ARG", &v)?),
            None => None,
        };
        if let Some(v) = get("OTEL_TRACES_SAMPLER") {
            self.sampler = parse_sampler(&v, sampler_arg.unwrap_or(1.0))?;
        } else if let Some(ratio) = sampler_arg {
            // An argument alone retunes a ratio sampler set in code.
            self.sampler = match self.sampler {
                Sampler::TraceIdRatio(_) => Sampler::TraceIdRatio(ratio),
                Sampler::ParentBasedTraceIdRatio(_) => Sampler::ParentBasedTraceIdRatio(ratio),
                other => other,
            };
        }
        if let Some(v) = get("OTEL_TRACES_EXPORTER") {
            self.traces_exporter = parse_exporter("OTEL_TRACES_EXPORTER", &v)?;
        }
        if let Some(v) = get("OTEL_LOGS_EXPORTER") {
            self.logs_exporter = parse_exporter("OTEL_LOGS_EXPORTER", &v)?;
        }

        if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.otlp.endpoint = Some(parse_url("OTEL_EXPORTER_OTLP_ENDPOINT", &v)?);
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            self.otlp.protocol = parse_protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &v)?;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_HEADERS") {
            self.otlp.headers = parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &v)?;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            self.otlp.timeout = parse_millis("OTEL_EXPORTER_OTLP_TIMEOUT", &v)?;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            self.otlp.compression = parse_compression("OTEL_EXPORTER_OTLP_COMPRESSION", &v)?;
        }
        apply_signal(&get, &mut self.otlp_traces, SIGNAL_TRACES)?;
        apply_signal(&get, &mut self.otlp_logs, SIGNAL_LOGS)?;

        apply_batch(&get, &mut self.batch, &BSP)?;
        apply_batch(&get, &mut self.log_batch, &BLRP)?;

        if let Some(v) = get("OBSERVE_LOG") {
            validate_filter("OBSERVE_LOG", &v)?;
            self.log_filter = v;
        } else if let Some(v) = get("RUST_LOG") {
            validate_filter("RUST_LOG", &v)?;
            self.log_filter = v;
        }
        if let Some(v) = get("OBSERVE_LOG_FORMAT") {
            self.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err(invalid("OBSERVE_LOG_FORMAT", &v, "one of json, pretty")),
            };
        }
        if let Some(v) = get("OBSERVE_METRICS_MAX_SERIES") {
            self.metrics_max_series = parse_positive("OBSERVE_METRICS_MAX_SERIES", &v)?;
        }
        if let Some(v) = get("OBSERVE_SPAN_EVENTS") {
            self.span_events = parse_bool("OBSERVE_SPAN_EVENTS", &v)?;
        }
        if let Some(v) = get("OBSERVE_STATUS_PAGE") {
            self.status_page = parse_bool("OBSERVE_STATUS_PAGE", &v)?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the settings made in code (the environment is checked as it is read).
    ///
    /// ```
    /// # use observe_core::config::{Config, BatchConfig};
    /// let mut batch = BatchConfig::default();
    /// batch.max_export_batch_size = 4096;
    /// assert!(Config::default().batch(batch).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(ratio) = self.sampler.ratio() {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid("sampler", &ratio.to_string(), RATIO_EXPECTED));
            }
        }
        validate_batch(&self.batch, &BSP)?;
        validate_batch(&self.log_batch, &BLRP)?;
        validate_filter("log_filter", &self.log_filter)?;
        Ok(())
    }

    /// The OTLP settings for traces, or `None` when traces are not exported over OTLP
    /// (exporter `none` or `console`, SDK disabled, or no endpoint configured anywhere).
    pub fn traces_otlp(&self) -> Option<ResolvedOtlp> {
        if self.sdk_disabled || self.traces_exporter != ExporterKind::Otlp {
            return None;
        }
        self.resolve(&self.otlp_traces, "/v1/traces")
    }

    /// The OTLP settings for logs, or `None` when logs are not exported over OTLP (exporter
    /// `none` or `console`, SDK disabled, or no endpoint).
    pub fn logs_otlp(&self) -> Option<ResolvedOtlp> {
        if self.sdk_disabled || self.logs_exporter != ExporterKind::Otlp {
            return None;
        }
        self.resolve(&self.otlp_logs, "/v1/logs")
    }

    fn resolve(&self, o: &OtlpOverrides, http_path: &str) -> Option<ResolvedOtlp> {
        let protocol = o.protocol.unwrap_or(self.otlp.protocol);
        let endpoint = match (&o.endpoint, &self.otlp.endpoint) {
            (Some(signal), _) => signal.clone(),
            (None, Some(base)) => match protocol {
                OtlpProtocol::Grpc => base.clone(),
                OtlpProtocol::HttpProtobuf => {
                    format!("{}{}", base.trim_end_matches('/'), http_path)
                }
            },
            (None, None) => return None,
        };
        Some(ResolvedOtlp {
            endpoint,
            protocol,
            headers: o
                .headers
                .clone()
                .unwrap_or_else(|| self.otlp.headers.clone()),
            timeout: o.timeout.unwrap_or(self.otlp.timeout),
            compression: o.compression.unwrap_or(self.otlp.compression),
        })
    }

    /// The service name to report: the configured one or `unknown_service` (the spec's default).
    pub fn effective_service_name(&self) -> &str {
        self.service_name.as_deref().unwrap_or("unknown_service")
    }
}

struct SignalVars {
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
    compression: &'static str,
}

const SIGNAL_TRACES: SignalVars = SignalVars {
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
};
const SIGNAL_LOGS: SignalVars = SignalVars {
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
};

fn apply_signal(
    get: &impl Fn(&str) -> Option<String>,
    o: &mut OtlpOverrides,
    vars: SignalVars,
) -> Result<(), ConfigError> {
    if let Some(v) = get(vars.endpoint) {
        o.endpoint = Some(parse_url(vars.endpoint, &v)?);
    }
    if let Some(v) = get(vars.protocol) {
        o.protocol = Some(parse_protocol(vars.protocol, &v)?);
    }
    if let Some(v) = get(vars.headers) {
        o.headers = Some(parse_headers(vars.headers, &v)?);
    }
    if let Some(v) = get(vars.timeout) {
        o.timeout = Some(parse_millis(vars.timeout, &v)?);
    }
    if let Some(v) = get(vars.compression) {
        o.compression = Some(parse_compression(vars.compression, &v)?);
    }
    Ok(())
}

/// The variables of one batch processor's limits.
struct BatchVars {
    schedule_delay: &'static str,
    export_timeout: &'static str,
    max_queue_size: &'static str,
    max_export_batch_size: &'static str,
    /// The error for a batch larger than the queue.
    too_large: fn(usize, usize) -> ConfigError,
}

const BSP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BSP_SCHEDULE_DELAY",
    export_timeout: "OTEL_BSP_EXPORT_TIMEOUT",
    max_queue_size: "OTEL_BSP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    too_large: |batch, queue| ConfigError::BatchLargerThanQueue { batch, queue },
};
const BLRP: BatchVars = BatchVars {
    schedule_delay: "OTEL_BLRP_SCHEDULE_DELAY",
    export_timeout: "OTEL_BLRP_EXPORT_TIMEOUT",
    max_queue_size: "OTEL_BLRP_MAX_QUEUE_SIZE",
    max_export_batch_size: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    too_large: |batch, queue| ConfigError::LogBatchLargerThanQueue { batch, queue },
};

fn apply_batch(
    get: &impl Fn(&str) -> Option<String>,
    b: &mut BatchConfig,
    vars: &BatchVars,
) -> Result<(), ConfigError> {
    if let Some(v) = get(vars.schedule_delay) {
        b.schedule_delay = parse_millis(vars.schedule_delay, &v)?;
    }
    if let Some(v) = get(vars.export_timeout) {
        b.export_timeout = parse_millis(vars.export_timeout, &v)?;
    }
    if let Some(v) = get(vars.max_queue_size) {
        b.max_queue_size = parse_positive(vars.max_queue_size, &v)?;
    }
    if let Some(v) = get(vars.max_export_batch_size) {
        b.max_export_batch_size = parse_positive(vars.max_export_batch_size, &v)?;
    }
    Ok(())
}

fn validate_batch(b: &BatchConfig, vars: &BatchVars) -> Result<(), ConfigError> {
    if b.max_queue_size == 0 {
        return Err(invalid(vars.max_queue_size, "0", POSITIVE_EXPECTED));
    }
    if b.max_export_batch_size == 0 {
        return Err(invalid(vars.max_export_batch_size, "0", POSITIVE_EXPECTED));
    }
    if b.max_export_batch_size > b.max_queue_size {
        return Err((vars.too_large)(b.max_export_batch_size, b.max_queue_size));
    }
    Ok(())
}

const RATIO_EXPECTED: &str = "not a number in 0..=1";
const POSITIVE_EXPECTED: &str = "not a positive integer";

fn invalid(variable: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        variable,
        value: value.to_string(),
        expected,
    }
}

fn parse_bool(variable: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(variable, v, "not a boolean (true or false)")),
    }
}

fn parse_ratio(variable: &'static str, v: &str) -> Result<f64, ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(invalid(variable, v, RATIO_EXPECTED)),
    }
}

fn parse_positive(variable: &'static str, v: &str) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(variable, v, POSITIVE_EXPECTED)),
    }
}

fn parse_millis(variable: &'static str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| invalid(variable, v, "not a whole number of milliseconds"))
}

fn parse_url(variable: &'static str, v: &str) -> Result<String, ConfigError> {
    let v2 = v.trim();
    let ok = (v2.starts_with("http://") || v2.starts_with("https://"))
        && v2.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if ok {
        Ok(v2.to_string())
    } else {
        Err(invalid(variable, v, "not an http:// or https:// URL"))
    }
}

fn parse_protocol(variable: &'static str, v: &str) -> Result<OtlpProtocol, ConfigError> {
    match v.trim() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        _ => Err(invalid(
            variable,
            v,
            "not a supported protocol (grpc, http/protobuf)",
        )),
    }
}

fn parse_compression(variable: &'static str, v: &str) -> Result<OtlpCompression, ConfigError> {
    match v.trim() {
        "gzip" => Ok(OtlpCompression::Gzip),
        "none" => Ok(OtlpCompression::None),
        _ => Err(invalid(
            variable,
            v,
            "not a supported compression (gzip, none)",
        )),
    }
}

fn parse_exporter(variable: &'static str, v: &str) -> Result<ExporterKind, ConfigError> {
    match v.trim() {
        "otlp" => Ok(ExporterKind::Otlp),
        "console" => Ok(ExporterKind::Console),
        "none" => Ok(ExporterKind::None),
        _ => Err(invalid(
            variable,
            v,
            "not a supported exporter (otlp, console, none)",
        )),
    }
}

fn parse_sampler(v: &str, arg: f64) -> Result<Sampler, ConfigError> {
    Ok(match v.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(arg),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(arg),
        _ => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                v,
                "not a supported sampler (always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off, parentbased_traceidratio)",
            ))
        }
    })
}

fn parse_propagators(v: &str) -> Result<Vec<Propagator>, ConfigError> {
    let mut out = Vec::new();
    let names: Vec<&str> = v.split(',').map(str::trim).collect();
    for name in &names {
        let p = match *name {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            "none" if names.len() == 1 => continue,
            _ => {
                return Err(invalid(
                    "OTEL_PROPAGATORS",
                    v,
                    "not a list of supported propagators (tracecontext, baggage) or none",
                ))
            }
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// `k=v,k2=v2` with percent-encoded keys and values (W3C Baggage-style, as the spec requires
/// for `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`). Err carries the 1-based
/// index of the first bad entry.
fn parse_key_values(v: &str) -> Result<Vec<(String, String)>, usize> {
    let mut out = Vec::new();
    for (i, entry) in v.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (k, val) = entry.split_once('=').ok_or(i + 1)?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s.trim())
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| i + 1)
        };
        let k = decode(k)?;
        if k.is_empty() {
            return Err(i + 1);
        }
        out.push((k, decode(val)?));
    }
    Ok(out)
}

fn parse_headers(variable: &'static str, v: &str) -> Result<Headers, ConfigError> {
    let pairs =
        parse_key_values(v).map_err(|entry| ConfigError::InvalidHeaders { variable, entry })?;
    for (i, (k, val)) in pairs.iter().enumerate() {
        let valid = http::HeaderName::from_bytes(k.as_bytes()).is_ok()
            && http::HeaderValue::from_str(val).is_ok();
        if !valid {
            return Err(ConfigError::InvalidHeaders {
                variable,
                entry: i + 1,
            });
        }
    }
    Ok(Headers(pairs))
}

fn validate_filter(variable: &'static str, v: &str) -> Result<(), ConfigError> {
    // tracing-subscriber 0.3's directive parser slices at byte offsets and panics on some
    // multi-byte characters (e.g. `0[\u{202e}]`); targets, spans, fields and levels of a
    // filter are ASCII in practice, so refuse anything else before it reaches the parser.
    if !v.is_ascii() {
        return Err(ConfigError::InvalidLogFilter {
            variable,
            value: v.to_string(),
            reason: "non-ASCII characters are not supported".to_string(),
        });
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(v)
        .map(drop)
        .map_err(|e| ConfigError::InvalidLogFilter {
            variable,
            value: v.to_string(),
            reason: e.to_string(),
        })
}
