//! Optional OTLP log export (`OTEL_LOGS_EXPORTER=otlp`): a `tracing` layer that turns events
//! into OpenTelemetry log records, exported by the same kind of bounded batch worker as spans,
//! with its own limits ([`Config::log_batch`], `OTEL_BLRP_*`; drops counted in
//! [`crate::counters::LOG_RECORDS_DROPPED`]). Logs still go to stdout as well.
//!
//! Each record carries the trace context of the request being handled
//! ([`RequestContext::current`]), sampled or not, so logs and traces join on `trace_id`.
//!
//! ```no_run
//! use observe_core::config::{Config, ExporterKind};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let mut config = Config::default().otlp_endpoint("http://127.0.0.1:4317");
//! config.logs_exporter = ExporterKind::Otlp;
//! let logs = observe_core::trace::otlp_logs::install(&config)?.expect("logs exporter configured");
//! let subscriber = tracing_subscriber::registry().with(logs.layer());
//! tracing::subscriber::with_default(subscriber, || tracing::info!(order = 42, "placed"));
//! logs.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), observe_core::init::InitError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use super::processor::{BatchProcessor, LogItem};
use crate::config::{Config, OtlpProtocol, ResolvedOtlp};
use crate::context::RequestContext;
use crate::init::InitError;
use crate::logs::{Redactor, REDACTED};

/// Keeps OTLP log export running; [`OtlpLogs::shutdown`] (or drop) flushes it.
pub struct OtlpLogs {
    provider: Option<SdkLoggerProvider>,
    processor: Arc<BatchProcessor<LogItem>>,
    logger: SdkLogger,
    redactor: Arc<Redactor>,
}

impl fmt::Debug for OtlpLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpLogs").finish_non_exhaustive()
    }
}

/// Builds the log exporter when `config.logs_otlp()` says logs are exported; `Ok(None)`
/// otherwise (no thread started).
pub fn install(config: &Config) -> Result<Option<OtlpLogs>, InitError> {
    install_with_resource(config, &super::resource(config))
}

/// [`install`] with the resource already computed (by `init`, which also gives it to spans
/// and `target_info`).
pub(crate) fn install_with_resource(
    config: &Config,
    resource: &Resource,
) -> Result<Option<OtlpLogs>, InitError> {
    config.validate()?;
    let Some(otlp) = config.logs_otlp() else {
        return Ok(None);
    };
    let processor =
        BatchProcessor::spawn_logs(config.log_batch.clone(), resource.clone(), move || {
            build_exporter(&otlp)
        })
        .map_err(InitError::Exporter)?;
    let processor = Arc::new(processor);
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(SharedLogProcessor(Arc::clone(&processor)))
        .build();
    let logger = provider.logger("observe");
    Ok(Some(OtlpLogs {
        provider: Some(provider),
        processor,
        logger,
        redactor: Arc::new(Redactor::none().with_fields(&config.redact_fields)),
    }))
}

impl OtlpLogs {
    /// The `tracing` layer that sends events to this exporter.
    pub fn layer(&self) -> OtlpLogLayer {
        OtlpLogLayer {
            logger: self.logger.clone(),
            redactor: Arc::clone(&self.redactor),
        }
    }

    /// Flushes queued records within `timeout`; returns how many were dropped because the
    /// timeout passed (also counted in `LOG_RECORDS_DROPPED`).
    pub fn shutdown(mut self, timeout: Duration) -> u64 {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> u64 {
        let Some(provider) = self.provider.take() else {
            return 0;
        };
        let r = self.processor.shutdown_report(timeout);
        let _ = provider.shutdown_with_timeout(Duration::from_millis(100));
        r.dropped
    }

    /// Log records the exporter accepted so far.
    pub fn exported(&self) -> u64 {
        self.processor.delivered()
    }
}

impl Drop for OtlpLogs {
    fn drop(&mut self) {
        self.shutdown_inner(Duration::from_secs(5));
    }
}

#[derive(Debug)]
struct SharedLogProcessor(Arc<BatchProcessor<LogItem>>);

impl opentelemetry_sdk::logs::LogProcessor for SharedLogProcessor {
    fn emit(
        &self,
        record: &mut opentelemetry_sdk::logs::SdkLogRecord,
        scope: &opentelemetry::InstrumentationScope,
    ) {
        self.0.emit(record, scope)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        opentelemetry_sdk::logs::LogProcessor::force_flush(&*self.0)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        opentelemetry_sdk::logs::LogProcessor::shutdown_with_timeout(&*self.0, timeout)
    }
}

fn build_exporter(otlp: &ResolvedOtlp) -> Result<opentelemetry_otlp::LogExporter, String> {
    use opentelemetry_otlp::LogExporter;
    let result = match otlp.protocol {
        OtlpProtocol::Grpc => {
            super::with_tonic_settings(LogExporter::builder().with_tonic(), otlp)?.build()
        }
        OtlpProtocol::HttpProtobuf => {
            super::with_http_settings(LogExporter::builder().with_http(), otlp).build()
        }
    };
    result.map_err(|e| {
        format!(
            "cannot build the OTLP log exporter for {}: {e}",
            otlp.endpoint
        )
    })
}

/// The layer returned by [`OtlpLogs::layer`].
#[derive(Debug, Clone)]
pub struct OtlpLogLayer {
    logger: SdkLogger,
    // Field names whose values are written as `[REDACTED]`, as in the JSON log layer.
    redactor: Arc<Redactor>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OtlpLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        let meta = event.metadata();
        // The SDK's own diagnostics and observe's export warnings would feed back into the
        // exporter they are about.
        if meta.target().starts_with("opentelemetry") || meta.target() == "observe::export" {
            return;
        }
        let mut record = self.logger.create_log_record();
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        let (number, text) = match *meta.level() {
            tracing::Level::TRACE => (Severity::Trace, "TRACE"),
            tracing::Level::DEBUG => (Severity::Debug, "DEBUG"),
            tracing::Level::INFO => (Severity::Info, "INFO"),
            tracing::Level::WARN => (Severity::Warn, "WARN"),
            tracing::Level::ERROR => (Severity::Error, "ERROR"),
        };
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_target(meta.target().to_string());
        event.record(&mut RecordVisitor(&mut record, &self.redactor));
        if let Some(cx) = RequestContext::current() {
            record.set_trace_context(
                cx.trace_id.into(),
                cx.span_id.into(),
                Some(opentelemetry::trace::TraceFlags::new(cx.flags.bits())),
            );
        } else {
            let cx = opentelemetry::Context::current();
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
            }
        }
        self.logger.emit(record);
    }
}

struct RecordVisitor<'a, R>(&'a mut R, &'a Redactor);

impl<R: opentelemetry::logs::LogRecord> Visit for RecordVisitor<'_, R> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" && self.1.is_redacted(field.name()) {
            self.0.add_attribute(field.name(), REDACTED);
            return;
        }
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.0.set_body(AnyValue::from(v));
        } else {
            self.0.add_attribute(field.name(), v);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" && self.1.is_redacted(field.name()) {
            self.0.add_attribute(field.name(), REDACTED);
            return;
        }
        if field.name() == "message" {
            self.0.set_body(AnyValue::from(value.to_string()));
        } else {
            self.0.add_attribute(field.name(), value.to_string());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.1.is_redacted(field.name()) {
            return self.0.add_attribute(field.name(), REDACTED);
        }
        self.0.add_attribute(field.name(), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.1.is_redacted(field.name()) {
            return self.0.add_attribute(field.name(), REDACTED);
        }
        match i64::try_from(value) {
            Ok(v) => self.0.add_attribute(field.name(), v),
            Err(_) => self.0.add_attribute(field.name(), value.to_string()),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.1.is_redacted(field.name()) {
            return self.0.add_attribute(field.name(), REDACTED);
        }
        self.0.add_attribute(field.name(), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.1.is_redacted(field.name()) {
            return self.0.add_attribute(field.name(), REDACTED);
        }
        self.0.add_attribute(field.name(), value);
    }
}
