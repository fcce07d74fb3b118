//! `init()`: installs logs, metrics and traces and returns the guard that flushes them.
//!
//! ```no_run
//! use observe_core::config::Config;
//!
//! let guard = observe_core::init::init(Config::default().service_name("orders"))?;
//! tracing::info!("started");
//! // ... serve ...
//! let report = guard.shutdown(std::time::Duration::from_secs(5))?;
//! assert_eq!(report.spans_dropped, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, ConfigError, Propagator};
use crate::trace::{self, ShutdownReport, TraceGuard};

/// Why observe could not be installed.
///
/// ```
/// # use observe_core::init::InitError;
/// assert_eq!(
///     InitError::AlreadyInitialized.to_string(),
///     "observe is already initialized in this process"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// `init` (or `trace::install`) ran before and its guard is still alive — or, for
    /// `init`, ran before at all: the global subscriber can be set only once per process.
    #[error("observe is already initialized in this process")]
    AlreadyInitialized,
    /// A configuration value was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built (bad endpoint, no thread).
    #[error("cannot start trace export: {0}")]
    Exporter(String),
    /// The log output could not be started (for example its writer thread).
    #[error("cannot start log output: {0}")]
    Logs(String),
    /// Another global `tracing` subscriber was already set by someone else.
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(String),
}

/// A shutdown that did not deliver everything within its timeout.
///
/// ```
/// # use observe_core::init::ShutdownError;
/// # use observe_core::trace::ShutdownReport;
/// let e = ShutdownError::TimedOut(ShutdownReport::default());
/// assert!(e.to_string().contains("timed out"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The timeout passed; the report says how many spans were dropped.
    #[error("telemetry shutdown timed out; {} spans dropped", .0.spans_dropped)]
    TimedOut(ShutdownReport),
}

/// Keeps observe's exporters running; [`Guard::shutdown`] (or dropping it) flushes them.
#[must_use = "dropping the guard flushes and stops telemetry export"]
#[derive(Debug)]
pub struct Guard {
    trace: Option<TraceGuard>,
    logs: Option<trace::otlp_logs::OtlpLogs>,
    // Keeps the status page's rate window current; stops with the guard.
    _status_sampler: Option<crate::status::SamplerHandle>,
    // Last: log lines written while spans flush still reach the output.
    log_output: Option<crate::logs::LogGuard>,
}

/// How often the status page samples its rate window (when the page is enabled).
const STATUS_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Timeout used when a [`Guard`] is dropped without an explicit shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Guard {
    /// Flushes every finished span within `timeout` and stops export. Returns by the timeout
    /// even when the collector hangs; `Err` carries what could not be delivered.
    pub fn shutdown(mut self, timeout: Duration) -> Result<ShutdownReport, ShutdownError> {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<ShutdownReport, ShutdownError> {
        let started = std::time::Instant::now();
        let report = match self.trace.take() {
            Some(t) => t.shutdown(timeout),
            None => ShutdownReport::default(),
        };
        // Logs get what is left of the timeout (the whole call keeps its deadline).
        let logs_dropped = match self.logs.take() {
            Some(l) => l.shutdown(timeout.saturating_sub(started.elapsed())),
            None => 0,
        };
        let mut report = report;
        report.log_records_dropped = logs_dropped;
        report.timed_out |= logs_dropped > 0;
        // Flushes the non-blocking log queue (bounded by its own timeout).
        drop(self.log_output.take());
        if report.timed_out {
            Err(ShutdownError::TimedOut(report))
        } else {
            Ok(report)
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner(DEFAULT_SHUTDOWN_TIMEOUT);
    }
}

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Installs observe for this process: the environment is applied over `config`
/// ([`Config::with_env_overrides`]), then the global propagator, the tracer provider, and the
/// `tracing` subscriber (filter + log layer + OpenTelemetry layer).
///
/// A second call returns [`InitError::AlreadyInitialized`].
pub fn init(config: Config) -> Result<Guard, InitError> {
    let config = config.with_env_overrides()?;
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return Err(InitError::AlreadyInitialized);
    }
    install_propagator(&config);
    crate::clock::calibrate();
    // Metrics first: the layers record into the global registry from the first request, and
    // trace::install builds the status page, whose builder reads the global registry.
    // A registry already created (by a layer used before init) keeps its configuration.
    // One resource for target_info, spans and log records: the same instance everywhere.
    let resource = trace::resource(&config);
    let _ = crate::metrics::Metrics::init_global(crate::metrics::MetricsConfig {
        cardinality_limit: config.metrics_max_series,
        resource: resource
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_str().into_owned()))
            .collect(),
        ..Default::default()
    });
    let trace = match trace::install_with_resource(&config, &resource) {
        Ok(t) => t,
        Err(e) => {
            // Nothing global was set that cannot be set again: allow a corrected retry.
            INITIALIZED.store(false, Ordering::Release);
            return Err(e);
        }
    };
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&config.log_filter)
        .map_err(|e| {
            InitError::Config(ConfigError::InvalidLogFilter {
                variable: "log_filter",
                value: config.log_filter.clone(),
                reason: e.to_string(),
            })
        })?;
    let (log_layer, log_output) = match log_layer(&config) {
        Ok(l) => l,
        Err(e) => {
            INITIALIZED.store(false, Ordering::Release);
            return Err(InitError::Logs(e.to_string()));
        }
    };
    let logs = match trace::otlp_logs::install_with_resource(&config, &resource) {
        Ok(l) => l,
        Err(e) => {
            INITIALIZED.store(false, Ordering::Release);
            return Err(e);
        }
    };
    tracing_subscriber::registry()
        .with(trace::otel_layer())
        .with(logs.as_ref().map(|l| l.layer()))
        .with(log_layer)
        .with(filter)
        .try_init()
        .map_err(|e| InitError::Subscriber(e.to_string()))?;
    // With traces off (no store, so trace::install made none) the page still shows RED.
    if config.status_page && crate::status::global().is_none() {
        if let Some(page) = crate::status::StatusPage::from_config(&config) {
            crate::status::set_global(page);
        }
    }
    let status_sampler = match crate::status::global() {
        Some(page) => page.spawn_sampler(STATUS_SAMPLE_INTERVAL).ok(),
        None => None,
    };
    Ok(Guard {
        trace: Some(trace),
        logs,
        _status_sampler: status_sampler,
        log_output: Some(log_output),
    })
}

/// [`init`] with the service name and version defaulting to the given package's (what
/// [`crate::init!`] passes); the environment still overrides both.
pub fn init_with_package(
    mut config: Config,
    package_name: &str,
    package_version: &str,
) -> Result<Guard, InitError> {
    if config.service_name.is_none() {
        config.service_name = Some(package_name.to_string());
    }
    if config.service_version.is_none() {
        config.service_version = Some(package_version.to_string());
    }
    init(config)
}

/// Installs observe with the calling crate's name and version as `service.name` and
/// `service.version` (unless the config or the environment sets them).
///
/// ```no_run
/// let _guard = observe_core::init!()?;
/// // or, with code configuration:
/// # drop(_guard);
/// let _guard = observe_core::init!(observe_core::config::Config::default().status_page(true))?;
/// # Ok::<(), observe_core::init::InitError>(())
/// ```
#[macro_export]
macro_rules! init {
    () => {
        $crate::init!($crate::config::Config::default())
    };
    ($config:expr) => {
        $crate::init::init_with_package(
            $config,
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
        )
    };
}

fn install_propagator(config: &Config) {
    use crate::propagation::{W3cBaggagePropagator, W3cPropagator};
    use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
    let propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = config
        .propagators
        .iter()
        .map(|p| -> Box<dyn TextMapPropagator + Send + Sync> {
            match p {
                Propagator::TraceContext => Box::new(W3cPropagator),
                Propagator::Baggage => Box::new(W3cBaggagePropagator),
            }
        })
        .collect();
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(propagators));
}

/// The log output layer: observe's JSON (or pretty) layer with the configured redaction,
/// writing through the bounded non-blocking stdout queue.
fn log_layer<S>(
    config: &Config,
) -> std::io::Result<(crate::logs::BoxedLayer<S>, crate::logs::LogGuard)>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    crate::logs::layer_for(
        crate::logs::LogOptions::new(config.effective_service_name())
            .format(config.log_format)
            .redact_fields(&config.redact_fields),
    )
}
