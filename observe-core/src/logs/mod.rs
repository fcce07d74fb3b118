//! Structured logs: a JSON lines `tracing-subscriber` layer, its writers, and redaction.
//!
//! [`JsonLayer`] writes one JSON object per event and line — `timestamp`, `level`, `message`,
//! `target`, the event's fields, the current `span` and the `spans` above it, `trace_id` and
//! `span_id` whenever the event happens inside a request, and `service.name` — without
//! allocating. Every line parses as JSON whatever the message and fields contain; secrets are
//! redacted by field name ([`Redactor`]); values are cut at a maximum length.
//! [`PrettyLayer`] is the same information for a terminal. Lines go to [`Stdout`], to a
//! [`NonBlocking`] queue drained by its own thread (a full queue drops and counts, it never
//! blocks the caller), or to any [`MakeWriter`](tracing_subscriber::fmt::MakeWriter).
//!
//! `observe_core::init` builds this for you; [`layer_for`] is the one call it makes:
//!
//! ```
//! use observe_core::logs::{layer_for, LogFormat, LogOptions, LogWriter};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let options = LogOptions::new("checkout")
//!     .format(LogFormat::Json)
//!     .redact_fields(["card_number"])
//!     .writer(LogWriter::NonBlockingStdout { capacity: 8192 })
//!     .max_value_len(16 * 1024);
//! let (layer, guard) = layer_for(options)?;
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(order_id = 42, card_number = "4111 1111", "order paid");
//! });
//! drop(guard); // flushes the non-blocking queue
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A line looks like this (one line in reality):
//!
//! ```text
//! {"timestamp":"2026-11-27T15:04:05.123456Z","level":"INFO","message":"order paid",
//!  "target":"checkout","order_id":42,"card_number":"[REDACTED]","spans":["request"],
//!  "span":{"name":"request","http.route":"/orders"},
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "service.name":"checkout"}
//! ```

// The trace console exporter writes its JSON lines with the same escaper.
pub(crate) mod escape;
mod json;
mod pretty;
mod redact;
pub mod timestamp;
mod writer;

use std::io;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub use json::{JsonLayer, JsonLayerBuilder, DEFAULT_MAX_VALUE_LEN, RESERVED_KEYS};
pub use pretty::PrettyLayer;
pub use redact::{Redactor, DEFAULT_REDACTED_FIELDS, REDACTED};
pub use writer::{
    NonBlocking, NonBlockingBuilder, NonBlockingGuard, NonBlockingWriter, Stdout, DEFAULT_CAPACITY,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_SHUTDOWN_TIMEOUT,
};

/// How log lines are formatted.
///
/// ```
/// use observe_core::logs::LogFormat;
/// assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
/// assert!("xml".parse::<LogFormat>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line ([`JsonLayer`]): what log agents collect.
    #[default]
    Json,
    /// Compact text, coloured on a terminal ([`PrettyLayer`]): for local development.
    Pretty,
}

/// The value given for a [`LogFormat`] was neither `json` nor `pretty`.
///
/// ```
/// use observe_core::logs::{LogFormat, UnknownLogFormat};
/// let err = "yaml".parse::<LogFormat>().unwrap_err();
/// assert_eq!(err, UnknownLogFormat("yaml".into()));
/// assert_eq!(err.to_string(), r#"unknown log format "yaml": expected "json" or "pretty""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: expected \"json\" or \"pretty\"")]
pub struct UnknownLogFormat(pub String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("json") {
            Ok(LogFormat::Json)
        } else if s.eq_ignore_ascii_case("pretty") {
            Ok(LogFormat::Pretty)
        } else {
            Err(UnknownLogFormat(s.to_owned()))
        }
    }
}

/// Where [`layer_for`] sends lines.
///
/// ```
/// use observe_core::logs::LogWriter;
/// assert_eq!(LogWriter::default(), LogWriter::NonBlockingStdout { capacity: 8192 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogWriter {
    /// Standard output, written by the logging thread under the stdout lock.
    Stdout,
    /// Standard error, likewise.
    Stderr,
    /// Standard output through a [`NonBlocking`] queue of this many lines.
    NonBlockingStdout {
        /// Lines the queue holds before dropping.
        capacity: usize,
    },
}

impl Default for LogWriter {
    fn default() -> Self {
        LogWriter::NonBlockingStdout {
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Everything [`layer_for`] needs; defaults: JSON, the default redaction list, non-blocking
/// stdout, 16 KiB per value.
///
/// ```
/// use observe_core::logs::{LogFormat, LogOptions, LogWriter};
/// let options = LogOptions::new("checkout").format(LogFormat::Pretty).writer(LogWriter::Stderr);
/// assert_eq!(options.service_name, "checkout");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogOptions {
    /// Written as `service.name` on every JSON line.
    pub service_name: String,
    /// JSON or pretty.
    pub format: LogFormat,
    /// Which fields are redacted.
    pub redactor: Redactor,
    /// Where lines go.
    pub writer: LogWriter,
    /// Longest value kept, in bytes.
    pub max_value_len: usize,
}

impl LogOptions {
    /// Defaults for this service.
    pub fn new(service_name: impl Into<String>) -> Self {
        LogOptions {
            service_name: service_name.into(),
            format: LogFormat::default(),
            redactor: Redactor::default(),
            writer: LogWriter::default(),
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
    /// Sets the format.
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }
    /// Redacts these field names as well as the defaults.
    pub fn redact_fields<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.redactor = self.redactor.with_fields(names);
        self
    }
    /// Replaces the redactor (e.g. [`Redactor::none()`] to redact nothing).
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }
    /// Sets where lines go.
    pub fn writer(mut self, writer: LogWriter) -> Self {
        self.writer = writer;
        self
    }
    /// Sets the longest value kept.
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }
}

/// A type-erased log layer, as returned by [`layer_for`].
///
/// ```
/// use observe_core::logs::{BoxedLayer, JsonLayer};
/// let layer: BoxedLayer<tracing_subscriber::Registry> = Box::new(JsonLayer::builder().build());
/// # let _ = layer;
/// ```
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

/// Keeps the log writer alive; dropping it flushes a non-blocking queue (with its timeout).
///
/// ```
/// use observe_core::logs::{layer_for, LogOptions, LogWriter};
/// let (_layer, guard) = layer_for::<tracing_subscriber::Registry>(
///     LogOptions::new("svc").writer(LogWriter::Stdout),
/// )?;
/// drop(guard);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard shuts a non-blocking writer down"]
pub struct LogGuard {
    non_blocking: Option<NonBlockingGuard>,
}

impl LogGuard {
    /// Flushes and stops a non-blocking writer, waiting at most `timeout`; returns whether
    /// everything was written (always `true` for blocking writers).
    pub fn shutdown(&self, timeout: std::time::Duration) -> bool {
        self.non_blocking
            .as_ref()
            .is_none_or(|g| g.shutdown(timeout))
    }
}

/// Builds the log layer `init` installs, and the guard that flushes its writer.
///
/// ```
/// use observe_core::logs::{layer_for, LogFormat, LogOptions, LogWriter};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let (layer, _guard) = layer_for(
///     LogOptions::new("checkout").format(LogFormat::Pretty).writer(LogWriter::Stderr),
/// )?;
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || tracing::info!("to stderr, readable"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// Only the error from spawning the non-blocking writer's thread.
pub fn layer_for<S>(options: LogOptions) -> io::Result<(BoxedLayer<S>, LogGuard)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn boxed<S, W>(options: LogOptions, writer: W) -> BoxedLayer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        match options.format {
            LogFormat::Json => Box::new(
                JsonLayer::builder()
                    .service_name(options.service_name)
                    .redactor(options.redactor)
                    .max_value_len(options.max_value_len)
                    .writer(writer)
                    .build(),
            ),
            LogFormat::Pretty => Box::new(
                PrettyLayer::new()
                    .with_redactor(options.redactor)
                    .with_max_value_len(options.max_value_len)
                    .with_writer(writer),
            ),
        }
    }

    Ok(match options.writer {
        LogWriter::Stdout => (boxed(options, Stdout), LogGuard { non_blocking: None }),
        LogWriter::Stderr => (boxed(options, io::stderr), LogGuard { non_blocking: None }),
        LogWriter::NonBlockingStdout { capacity } => {
            let (writer, guard) = NonBlocking::builder()
                .capacity(capacity)
                .finish(io::stdout())?;
            (
                boxed(options, writer),
                LogGuard {
                    non_blocking: Some(guard),
                },
            )
        }
    })
}
