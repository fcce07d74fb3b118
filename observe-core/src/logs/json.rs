//! The JSON lines layer.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::escape::{
    escape_into, write_debug_value, write_error_value, write_f64, write_i128, write_i64, write_str,
    write_str_value, write_u128, write_u64,
};
use super::redact::{NameFilter, Redactor, REDACTED};
use super::timestamp;
use super::writer::Stdout;
use crate::context::RequestContext;
use crate::counters::LOG_RECORDS_DROPPED;

/// Default maximum length of one value, in bytes of its text before escaping.
///
/// ```
/// assert_eq!(observe_core::logs::DEFAULT_MAX_VALUE_LEN, 16 * 1024);
/// ```
pub const DEFAULT_MAX_VALUE_LEN: usize = 16 * 1024;

/// The keys observe writes at the top level of a line. A user field with one of these names
/// is written as `fields.<name>` (see [`JsonLayer`]).
///
/// ```
/// assert!(observe_core::logs::RESERVED_KEYS.contains(&"trace_id"));
/// ```
pub const RESERVED_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "message",
    "target",
    "span",
    "spans",
    "trace_id",
    "span_id",
    "service.name",
];

/// The keys observe writes in the `span` object.
const RESERVED_SPAN_KEYS: &[&str] = &["name"];

/// The reserved keys of a line or a span, and their filter (most field names skip the list).
struct Reserved {
    keys: &'static [&'static str],
    filter: NameFilter,
}

static RESERVED_LINE: Reserved = Reserved {
    keys: RESERVED_KEYS,
    filter: NameFilter::of(RESERVED_KEYS),
};
static RESERVED_SPAN: Reserved = Reserved {
    keys: RESERVED_SPAN_KEYS,
    filter: NameFilter::of(RESERVED_SPAN_KEYS),
};

/// Prefix for user fields whose names clash with observe's keys.
const CLASH_PREFIX: &str = "fields.";

/// The formatting buffer is kept per thread up to this capacity; a line that grew it further
/// gives the memory back afterwards.
const RETAINED_BUFFER: usize = 64 * 1024;

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Runs `f` with this thread's line buffer, cleared; or with a fresh one when that buffer is
/// already in use (a writer that logs) or the thread is being torn down.
pub(crate) fn with_line_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut f = Some(f);
    let reused = LINE.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        buf.clear();
        let f = f.take()?;
        let r = f(&mut buf);
        if buf.capacity() > RETAINED_BUFFER {
            *buf = Vec::with_capacity(1024);
        }
        Some(r)
    });
    match (reused, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Vec::new()),
        // `f` was taken, so the closure above returned `Some`.
        (_, None) => unreachable!("line buffer closure consumed without a result"),
    }
}

static NEXT_LAYER_ID: AtomicUsize = AtomicUsize::new(0);

/// Span fields pre-formatted as a JSON fragment (`,"k":v,...`), one per `JsonLayer`
/// instance (they may differ in redaction and limits).
#[derive(Default)]
struct SpanFields {
    per_layer: Vec<(usize, Fragment)>,
}

#[derive(Default)]
struct Fragment {
    json: Vec<u8>,
    /// Where each field's `,"key":value` sits in `json`, so a re-recorded field replaces its
    /// old value instead of producing a duplicate key.
    entries: Vec<(&'static str, usize, usize)>,
}

/// Writes one JSON object per event, one event per line.
///
/// Each line holds `timestamp` (RFC 3339 UTC, microseconds), `level`, `message`, `target`, the
/// event's fields, `span` (the current span's `name` and fields) and `spans` (the names of all
/// entered spans, root first), `trace_id` and `span_id` (lowercase hex) when the event happens
/// inside a request, and `service.name`.
///
/// - **Ids** come from [`RequestContext::current()`] — installed by observe's server layers for
///   every request, sampled or not — or else from the active OpenTelemetry context (what
///   `tracing-opentelemetry` activates when a span with OpenTelemetry data is entered).
/// - **Key clashes**: a user field named like one of observe's keys ([`RESERVED_KEYS`] at the
///   top level, `name` inside `span`), or whose name starts with `fields.`, is written as
///   `fields.<name>`. That keeps every key unique and the mapping reversible.
/// - **Values**: integers are JSON numbers (128-bit ones only when they fit in 64 bits, else
///   strings); finite floats are numbers, NaN and infinities the strings `"NaN"`, `"inf"`,
///   `"-inf"`; `?debug`, `%display` and strings are JSON strings, escaped completely
///   (control characters, ANSI escapes, U+2028/U+2029) and cut after the maximum value length
///   with `...[truncated]` appended; errors are their message and sources joined by `": "`.
/// - **Redaction**: values of fields named in the [`Redactor`] (by default
///   [`super::DEFAULT_REDACTED_FIELDS`]) are written as `"[REDACTED]"`, in events and spans.
///
/// Formatting a line allocates nothing: it uses a per-thread buffer (a writer that itself logs
/// gets a fresh buffer instead of a panic), and the writer receives the line in one
/// `write_all`. Span fields are formatted once when recorded and stored in the span.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use observe_core::context::{RequestContext, SpanId, TraceFlags, TraceId};
/// use observe_core::logs::JsonLayer;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// #[derive(Clone, Default)]
/// struct Capture(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Capture {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let out = Capture::default();
/// let w = out.clone();
/// let layer = JsonLayer::builder()
///     .service_name("checkout")
///     .redact_fields(["card_number"])
///     .writer(move || w.clone())
///     .build();
/// let cx = RequestContext::new(
///     TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
///     SpanId::from_hex("00f067aa0ba902b7").unwrap(),
///     TraceFlags::default(),
/// );
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     let _cx = cx.enter();
///     tracing::info!(card_number = "4111", level = 3, "paid");
/// });
/// let line: serde_json::Value = serde_json::from_slice(&out.0.lock().unwrap()).unwrap();
/// assert_eq!(line["message"], "paid");
/// assert_eq!(line["level"], "INFO");
/// assert_eq!(line["fields.level"], 3);
/// assert_eq!(line["card_number"], "[REDACTED]");
/// assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(line["service.name"], "checkout");
/// ```
pub struct JsonLayer<W = Stdout> {
    writer: W,
    /// `,"service.name":"..."}` followed by the newline: the fixed end of every line.
    tail: Box<[u8]>,
    redactor: Redactor,
    max_value_len: usize,
    id: usize,
}

impl<W> fmt::Debug for JsonLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLayer")
            .field("tail", &String::from_utf8_lossy(&self.tail))
            .field("redactor", &self.redactor)
            .field("max_value_len", &self.max_value_len)
            .finish()
    }
}

/// Builds a [`JsonLayer`]. Defaults: service name `unknown_service`, the default redaction
/// list, 16 KiB per value, [`Stdout`].
///
/// ```
/// use observe_core::logs::{JsonLayer, NonBlocking};
/// let (writer, _guard) = NonBlocking::builder().finish(std::io::stdout())?;
/// let layer = JsonLayer::builder()
///     .service_name("checkout")
///     .redact_fields(["card_number", "cvv"])
///     .max_value_len(4096)
///     .writer(writer)
///     .build();
/// # let _ = layer;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct JsonLayerBuilder<W = Stdout> {
    writer: W,
    service_name: String,
    redactor: Redactor,
    max_value_len: usize,
}

impl Default for JsonLayerBuilder {
    fn default() -> Self {
        JsonLayerBuilder {
            writer: Stdout,
            service_name: "unknown_service".to_owned(),
            redactor: Redactor::default(),
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl JsonLayer {
    /// A builder with the defaults.
    pub fn builder() -> JsonLayerBuilder {
        JsonLayerBuilder::default()
    }
}

impl<W> JsonLayerBuilder<W> {
    /// The `service.name` written on every line.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Redacts these field names too (on top of the defaults unless
    /// [`Self::without_default_redaction`] is called first).
    pub fn redact_fields<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.redactor = self.redactor.with_fields(names);
        self
    }

    /// Forgets the redaction list so far (the defaults included).
    pub fn without_default_redaction(mut self) -> Self {
        self.redactor = Redactor::none();
        self
    }

    /// Uses this redactor instead.
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Values longer than this many bytes are cut (default 16 KiB; at least 1).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes.max(1);
        self
    }

    /// Where lines go: any [`MakeWriter`], e.g. [`Stdout`], [`super::NonBlocking`],
    /// `std::io::stderr`, or a closure returning a test capture.
    pub fn writer<W2>(self, writer: W2) -> JsonLayerBuilder<W2>
    where
        W2: for<'a> MakeWriter<'a> + 'static,
    {
        JsonLayerBuilder {
            writer,
            service_name: self.service_name,
            redactor: self.redactor,
            max_value_len: self.max_value_len,
        }
    }

    /// The layer.
    pub fn build(self) -> JsonLayer<W> {
        let mut tail = Vec::with_capacity(self.service_name.len() + 20);
        tail.extend_from_slice(b",\"service.name\":");
        write_str(&mut tail, &self.service_name);
        tail.extend_from_slice(b"}\n");
        JsonLayer {
            writer: self.writer,
            tail: tail.into_boxed_slice(),
            redactor: self.redactor,
            max_value_len: self.max_value_len,
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

fn level_str(level: &Level) -> &'static [u8] {
    match *level {
        Level::TRACE => b"TRACE",
        Level::DEBUG => b"DEBUG",
        Level::INFO => b"INFO",
        Level::WARN => b"WARN",
        _ => b"ERROR",
    }
}

/// Writes `,"key":` applying the clash rule.
fn write_key(buf: &mut Vec<u8>, name: &str, reserved: &Reserved) {
    buf.extend_from_slice(b",\"");
    if name.starts_with(CLASH_PREFIX)
        || (reserved.filter.may_contain(name.as_bytes()) && reserved.keys.contains(&name))
    {
        buf.extend_from_slice(CLASH_PREFIX.as_bytes());
    }
    escape_into(buf, name);
    buf.extend_from_slice(b"\":");
}

/// Writes fields as `,"key":value` pairs.
struct FieldWriter<'a> {
    buf: &'a mut Vec<u8>,
    redactor: &'a Redactor,
    max_len: usize,
    reserved: &'static Reserved,
    /// The field already written as `message` (events only): skipped here.
    skip: Option<Field>,
    /// For span fragments: where each field landed.
    entries: Option<&'a mut Vec<(&'static str, usize, usize)>>,
}

impl FieldWriter<'_> {
    /// Writes the key and returns `false` if the value must be redacted (then already written).
    fn key(&mut self, field: &Field) -> bool {
        if self.skip.as_ref() == Some(field) {
            return false;
        }
        if let Some(entries) = self.entries.as_deref_mut() {
            // Re-recording a field replaces it.
            if let Some(pos) = entries.iter().position(|e| e.0 == field.name()) {
                let (_, s, e) = entries.remove(pos);
                self.buf.drain(s..e);
                let removed = e - s;
                for entry in entries.iter_mut().filter(|x| x.1 >= e) {
                    entry.1 -= removed;
                    entry.2 -= removed;
                }
            }
        }
        let start = self.buf.len();
        write_key(self.buf, field.name(), self.reserved);
        let redacted = self.redactor.is_redacted(field.name());
        if redacted {
            write_str(self.buf, REDACTED);
        }
        if let Some(entries) = self.entries.as_deref_mut() {
            // The end is fixed up in `done` once the value is written.
            entries.push((field.name(), start, usize::MAX));
        }
        if redacted {
            self.done();
        }
        !redacted
    }

    fn done(&mut self) {
        let len = self.buf.len();
        if let Some(last) = self.entries.as_deref_mut().and_then(|e| e.last_mut()) {
            if last.2 == usize::MAX {
                last.2 = len;
            }
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            write_f64(self.buf, value);
            self.done();
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            write_i64(self.buf, value);
            self.done();
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            write_u64(self.buf, value);
            self.done();
        }
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.key(field) {
            write_i128(self.buf, value);
            self.done();
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.key(field) {
            write_u128(self.buf, value);
            self.done();
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.buf
                .extend_from_slice(if value { b"true" } else { b"false" });
            self.done();
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            write_str_value(self.buf, value, self.max_len);
            self.done();
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            write_error_value(self.buf, value, self.max_len);
            self.done();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            write_debug_value(self.buf, value, self.max_len);
            self.done();
        }
    }
}

/// Writes the `message` field's value (the first field so named) and remembers which it was.
struct MessageWriter<'a> {
    buf: &'a mut Vec<u8>,
    max_len: usize,
    found: Option<Field>,
}

impl MessageWriter<'_> {
    fn take(&mut self, field: &Field) -> bool {
        if self.found.is_none() && field.name() == "message" {
            self.found = Some(field.clone());
            self.buf.extend_from_slice(b",\"message\":");
            true
        } else {
            false
        }
    }
}

impl Visit for MessageWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.take(field) {
            write_str_value(self.buf, value, self.max_len);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.take(field) {
            write_debug_value(self.buf, value, self.max_len);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.take(field) {
            write_error_value(self.buf, value, self.max_len);
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.take(field) {
            write_f64(self.buf, value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.take(field) {
            write_i64(self.buf, value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.take(field) {
            write_u64(self.buf, value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.take(field) {
            self.buf
                .extend_from_slice(if value { b"true" } else { b"false" });
        }
    }
}

/// The trace and span id of the active OpenTelemetry span, if any and valid.
fn otel_ids() -> Option<([u8; 32], [u8; 16])> {
    use opentelemetry::trace::TraceContextExt as _;
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            (
                crate::context::TraceId::from(sc.trace_id()).to_hex(),
                crate::context::SpanId::from(sc.span_id()).to_hex(),
            )
        })
    })
}

impl<W> JsonLayer<W> {
    fn write_fragment(&self, fragment: &mut Fragment, record: impl FnOnce(&mut dyn Visit)) {
        let mut v = FieldWriter {
            buf: &mut fragment.json,
            redactor: &self.redactor,
            max_len: self.max_value_len,
            reserved: &RESERVED_SPAN,
            skip: None,
            entries: Some(&mut fragment.entries),
        };
        record(&mut v);
    }

    fn format_event<S>(&self, buf: &mut Vec<u8>, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        buf.extend_from_slice(b"{\"timestamp\":\"");
        buf.extend_from_slice(&timestamp::format(std::time::SystemTime::now()));
        buf.extend_from_slice(b"\",\"level\":\"");
        buf.extend_from_slice(level_str(meta.level()));
        buf.push(b'"');

        let mut m = MessageWriter {
            buf,
            max_len: self.max_value_len,
            found: None,
        };
        event.record(&mut m);
        let message = m.found;
        if message.is_none() {
            buf.extend_from_slice(b",\"message\":\"\"");
        }
        buf.extend_from_slice(b",\"target\":");
        write_str(buf, meta.target());

        event.record(&mut FieldWriter {
            buf,
            redactor: &self.redactor,
            max_len: self.max_value_len,
            reserved: &RESERVED_LINE,
            skip: message,
            entries: None,
        });

        // One registry walk gives both the list of names and the leaf span (the event's).
        let mut leaf = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                buf.extend_from_slice(if leaf.is_none() {
                    b",\"spans\":["
                } else {
                    b","
                });
                write_str(buf, span.name());
                leaf = Some(span);
            }
        }
        if let Some(span) = leaf {
            buf.extend_from_slice(b"],\"span\":{\"name\":");
            write_str(buf, span.name());
            let ext = span.extensions();
            if let Some(fields) = ext.get::<SpanFields>() {
                if let Some((_, f)) = fields.per_layer.iter().find(|(id, _)| *id == self.id) {
                    buf.extend_from_slice(&f.json);
                }
            }
            buf.push(b'}');
        }

        let ids = match RequestContext::current() {
            Some(cx) => Some((cx.trace_id.to_hex(), cx.span_id.to_hex())),
            None => otel_ids(),
        };
        if let Some((trace_id, span_id)) = ids {
            buf.extend_from_slice(b",\"trace_id\":\"");
            buf.extend_from_slice(&trace_id);
            buf.extend_from_slice(b"\",\"span_id\":\"");
            buf.extend_from_slice(&span_id);
            buf.push(b'"');
        }
        buf.extend_from_slice(&self.tail);
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fragment = Fragment::default();
        self.write_fragment(&mut fragment, |v| attrs.record(v));
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(fields) => fields.per_layer.push((self.id, fragment)),
            None => ext.insert(SpanFields {
                per_layer: vec![(self.id, fragment)],
            }),
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(fields) = ext.get_mut::<SpanFields>() else {
            return;
        };
        if let Some((_, fragment)) = fields.per_layer.iter_mut().find(|(i, _)| *i == self.id) {
            self.write_fragment(fragment, |v| values.record(v));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        with_line_buffer(|buf| {
            self.format_event(buf, event, &ctx);
            let mut w = self.writer.make_writer_for(event.metadata());
            if w.write_all(buf).is_err() {
                LOG_RECORDS_DROPPED.inc();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_use_of_the_line_buffer_gets_a_fresh_one() {
        with_line_buffer(|outer| {
            outer.extend_from_slice(b"outer");
            let inner_ptr = with_line_buffer(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
                inner.as_ptr()
            });
            assert_ne!(inner_ptr, outer.as_ptr());
            assert_eq!(outer, b"outer");
        });
        // And the thread's buffer is reusable afterwards, cleared.
        with_line_buffer(|b| assert!(b.is_empty()));
    }
}
