//! A compact human-readable format for local development.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal as _, Write as _};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::redact::{Redactor, REDACTED};
use super::timestamp;
use super::writer::Stdout;
use crate::context::RequestContext;
use crate::counters::LOG_RECORDS_DROPPED;

/// One line per event, for people rather than log agents:
///
/// ```text
/// 15:04:05.123456  INFO checkout: paid amount=12 cart{user=7}:pay{} trace_id=4bf9…
/// ```
///
/// Levels are coloured when `ansi` is on (by default: when stdout is a terminal). Values go
/// through the same [`Redactor`] as the JSON layer, and control characters in values and
/// messages are escaped so user input cannot move the cursor or recolour the terminal. This
/// format allocates per line; use [`super::JsonLayer`] in production.
///
/// ```
/// use observe_core::logs::PrettyLayer;
/// use tracing_subscriber::layer::SubscriberExt;
/// let layer = PrettyLayer::new().with_ansi(false).with_writer(std::io::stderr);
/// let _ = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::info!(user = 7, "hello");
/// });
/// ```
#[derive(Debug)]
pub struct PrettyLayer<W = Stdout> {
    writer: W,
    ansi: bool,
    redactor: Redactor,
    max_value_len: usize,
}

impl Default for PrettyLayer {
    fn default() -> Self {
        PrettyLayer::new()
    }
}

impl PrettyLayer {
    /// Writes to stdout, coloured if stdout is a terminal, with the default redaction list.
    pub fn new() -> Self {
        PrettyLayer {
            writer: Stdout,
            ansi: std::io::stdout().is_terminal(),
            redactor: Redactor::default(),
            max_value_len: super::json::DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl<W> PrettyLayer<W> {
    /// Turns colours on or off.
    pub fn with_ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }

    /// Uses this redactor.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Values longer than this many bytes are cut.
    pub fn with_max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes.max(1);
        self
    }

    /// Writes to another [`MakeWriter`].
    pub fn with_writer<W2>(self, writer: W2) -> PrettyLayer<W2>
    where
        W2: for<'a> MakeWriter<'a> + 'static,
    {
        PrettyLayer {
            writer,
            ansi: self.ansi,
            redactor: self.redactor,
            max_value_len: self.max_value_len,
        }
    }
}

/// Span fields already rendered as ` k=v` pairs.
struct PrettyFields(String);

struct Pairs<'a> {
    out: &'a mut String,
    redactor: &'a Redactor,
    max_len: usize,
    message: Option<&'a mut String>,
}

/// Writes `s` with control characters escaped and cut after `max_len` bytes; quoted if it
/// contains spaces, quotes or escapes, so pairs stay readable.
fn push_text(out: &mut String, s: &str, max_len: usize, quote_if_needed: bool) {
    let mut cut = s.len().min(max_len);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let body = &s[..cut];
    let quote = quote_if_needed
        && (body.is_empty()
            || body
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c.is_control()));
    if quote {
        out.push('"');
    }
    for c in body.chars() {
        match c {
            '"' if quote => out.push_str("\\\""),
            '\\' if quote => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "{}", c.escape_default());
            }
            c => out.push(c),
        }
    }
    if cut < s.len() {
        out.push_str(super::escape::TRUNCATED_MARKER);
    }
    if quote {
        out.push('"');
    }
}

impl Visit for Pairs<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                push_text(m, value, self.max_len, false);
                return;
            }
        }
        let _ = write!(self.out, " {}=", field.name());
        if self.redactor.is_redacted(field.name()) {
            self.out.push_str(REDACTED);
        } else {
            push_text(self.out, value, self.max_len, true);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                push_text(m, &text, self.max_len, false);
                return;
            }
        }
        let _ = write!(self.out, " {}=", field.name());
        if self.redactor.is_redacted(field.name()) {
            self.out.push_str(REDACTED);
        } else {
            push_text(self.out, &text, self.max_len, true);
        }
    }
}

fn level_style(level: &Level) -> (&'static str, &'static str) {
    match *level {
        Level::TRACE => ("TRACE", "\x1b[35m"),
        Level::DEBUG => ("DEBUG", "\x1b[34m"),
        Level::INFO => (" INFO", "\x1b[32m"),
        Level::WARN => (" WARN", "\x1b[33m"),
        _ => ("ERROR", "\x1b[31m"),
    }
}

impl<S, W> Layer<S> for PrettyLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut out = String::new();
        attrs.record(&mut Pairs {
            out: &mut out,
            redactor: &self.redactor,
            max_len: self.max_value_len,
            message: None,
        });
        span.extensions_mut().replace(PrettyFields(out));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<PrettyFields>() {
            values.record(&mut Pairs {
                out: &mut fields.0,
                redactor: &self.redactor,
                max_len: self.max_value_len,
                message: None,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let ts = timestamp::format(std::time::SystemTime::now());
        // Only the time of day: this format is read on the machine that wrote it.
        let time = std::str::from_utf8(&ts[11..26]).unwrap_or("");
        let (level, colour) = level_style(meta.level());
        let mut line = String::with_capacity(256);
        if self.ansi {
            let _ = write!(
                line,
                "\x1b[2m{time}\x1b[0m {colour}{level}\x1b[0m \x1b[2m{}:\x1b[0m ",
                meta.target()
            );
        } else {
            let _ = write!(line, "{time} {level} {}: ", meta.target());
        }
        let mut message = String::new();
        let mut fields = String::new();
        event.record(&mut Pairs {
            out: &mut fields,
            redactor: &self.redactor,
            max_len: self.max_value_len,
            message: Some(&mut message),
        });
        line.push_str(&message);
        line.push_str(&fields);
        if let Some(scope) = ctx.event_scope(event) {
            line.push(' ');
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    line.push(':');
                }
                line.push_str(span.name());
                line.push('{');
                if let Some(f) = span.extensions().get::<PrettyFields>() {
                    line.push_str(f.0.trim_start());
                }
                line.push('}');
            }
        }
        if let Some(cx) = RequestContext::current() {
            let _ = write!(line, " trace_id={} span_id={}", cx.trace_id, cx.span_id);
        }
        line.push('\n');
        if self
            .writer
            .make_writer_for(meta)
            .write_all(line.as_bytes())
            .is_err()
        {
            LOG_RECORDS_DROPPED.inc();
        }
    }
}
