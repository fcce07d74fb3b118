//! `OTEL_TRACES_EXPORTER=console`: every finished sampled span as one JSON line on stdout, for
//! debugging without a collector.
//!
//! The exporter runs on the batch processor's thread like the OTLP one (same queue, same
//! limits, same drop counting; spans arrive already redacted), so a request never pays for
//! the formatting or the write. Lines are built with the JSON log layer's escaper and each is
//! written whole under the stdout lock, so they never interleave with log lines. A stdout that
//! stops draining (a full pipe) blocks this thread, not requests: spans then wait in the
//! processor's queue and, once it is full, are dropped and counted like any export backlog.
//! A line:
//!
//! ```text
//! {"signal":"span","name":"GET /users/{id}","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
//!  "span_id":"00f067aa0ba902b7","parent_span_id":null,"kind":"server",
//!  "start_time":"2026-11-27T15:04:05.123456Z","end_time":"2026-11-27T15:04:05.135801Z",
//!  "duration_ms":12.345,"status":{"code":"unset"},
//!  "attributes":{"http.request.method":"GET","http.response.status_code":200},
//!  "service.name":"checkout"}
//! ```
//!
//! `parent_span_id` is `null` for a root span; `status.message` is present only for an error;
//! `events` only when the span has some (see `Config::span_events`).

use std::fmt;
use std::io::Write as _;
use std::time::SystemTime;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing_subscriber::fmt::MakeWriter;

use crate::logs::escape::{escape_into, write_f64, write_i64, write_str, write_str_value};
use crate::logs::DEFAULT_MAX_VALUE_LEN;

/// Writes spans as JSON lines to `W` (stdout in production, a buffer in tests).
pub(crate) struct ConsoleExporter<W> {
    writer: W,
    service_name: String,
}

impl<W> fmt::Debug for ConsoleExporter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

impl<W> ConsoleExporter<W> {
    pub(crate) fn new(writer: W) -> Self {
        ConsoleExporter {
            writer,
            // Replaced by the resource's `service.name` in `set_resource`.
            service_name: String::from("unknown_service"),
        }
    }
}

impl<W> SpanExporter for ConsoleExporter<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut line = Vec::with_capacity(1024);
        let failed =
            |e: std::io::Error| OTelSdkError::InternalFailure(format!("console exporter: {e}"));
        for span in &batch {
            line.clear();
            write_span(&mut line, span, &self.service_name);
            line.push(b'\n');
            // One writer (for stdout: the lock) per line, not per batch: log lines written
            // meanwhile wait for one span line at most, never for a batch of 512.
            let mut out = self.writer.make_writer();
            out.write_all(&line).map_err(failed)?;
            out.flush().map_err(failed)?;
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(name) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
            self.service_name = name.as_str().into_owned();
        }
    }
}

/// Appends one span as a JSON object (no newline).
pub(crate) fn write_span(buf: &mut Vec<u8>, span: &SpanData, service_name: &str) {
    let cx = &span.span_context;
    buf.extend_from_slice(b"{\"signal\":\"span\",\"name\":");
    write_str_value(buf, &span.name, DEFAULT_MAX_VALUE_LEN);
    buf.extend_from_slice(b",\"trace_id\":\"");
    buf.extend_from_slice(
        crate::context::TraceId::from(cx.trace_id())
            .to_hex()
            .as_slice(),
    );
    buf.extend_from_slice(b"\",\"span_id\":\"");
    buf.extend_from_slice(
        crate::context::SpanId::from(cx.span_id())
            .to_hex()
            .as_slice(),
    );
    buf.extend_from_slice(b"\",\"parent_span_id\":");
    if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        buf.extend_from_slice(b"null");
    } else {
        buf.push(b'"');
        buf.extend_from_slice(
            crate::context::SpanId::from(span.parent_span_id)
                .to_hex()
                .as_slice(),
        );
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"kind\":\"");
    buf.extend_from_slice(match span.span_kind {
        SpanKind::Client => b"client".as_slice(),
        SpanKind::Server => b"server",
        SpanKind::Producer => b"producer",
        SpanKind::Consumer => b"consumer",
        SpanKind::Internal => b"internal",
    });
    buf.extend_from_slice(b"\",\"start_time\":");
    write_time(buf, span.start_time);
    buf.extend_from_slice(b",\"end_time\":");
    write_time(buf, span.end_time);
    buf.extend_from_slice(b",\"duration_ms\":");
    let micros = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
        .as_micros();
    write_f64(buf, micros as f64 / 1000.0);
    buf.extend_from_slice(b",\"status\":{\"code\":");
    match &span.status {
        Status::Unset => buf.extend_from_slice(b"\"unset\"}"),
        Status::Ok => buf.extend_from_slice(b"\"ok\"}"),
        Status::Error { description } => {
            buf.extend_from_slice(b"\"error\",\"message\":");
            write_str_value(buf, description, DEFAULT_MAX_VALUE_LEN);
            buf.push(b'}');
        }
    }
    buf.extend_from_slice(b",\"attributes\":");
    write_attributes(buf, &span.attributes);
    if !span.events.is_empty() {
        buf.extend_from_slice(b",\"events\":[");
        for (i, event) in span.events.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"name\":");
            write_str_value(buf, &event.name, DEFAULT_MAX_VALUE_LEN);
            buf.extend_from_slice(b",\"time\":");
            write_time(buf, event.timestamp);
            buf.extend_from_slice(b",\"attributes\":");
            write_attributes(buf, &event.attributes);
            buf.push(b'}');
        }
        buf.push(b']');
    }
    buf.extend_from_slice(b",\"service.name\":");
    write_str(buf, service_name);
    buf.push(b'}');
}

fn write_time(buf: &mut Vec<u8>, t: SystemTime) {
    buf.push(b'"');
    buf.extend_from_slice(&crate::logs::timestamp::format(t));
    buf.push(b'"');
}

fn write_attributes(buf: &mut Vec<u8>, attributes: &[KeyValue]) {
    buf.push(b'{');
    for (i, kv) in attributes.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'"');
        escape_into(buf, kv.key.as_str());
        buf.extend_from_slice(b"\":");
        write_value(buf, &kv.value);
    }
    buf.push(b'}');
}

fn write_value(buf: &mut Vec<u8>, value: &Value) {
    fn list<T>(buf: &mut Vec<u8>, items: &[T], mut one: impl FnMut(&mut Vec<u8>, &T)) {
        buf.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            one(buf, item);
        }
        buf.push(b']');
    }
    match value {
        Value::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I64(n) => write_i64(buf, *n),
        Value::F64(f) => write_f64(buf, *f),
        Value::String(s) => write_str_value(buf, s.as_str(), DEFAULT_MAX_VALUE_LEN),
        Value::Array(Array::Bool(v)) => list(buf, v, |buf, b| {
            buf.extend_from_slice(if *b { b"true" } else { b"false" })
        }),
        Value::Array(Array::I64(v)) => list(buf, v, |buf, n| write_i64(buf, *n)),
        Value::Array(Array::F64(v)) => list(buf, v, |buf, f| write_f64(buf, *f)),
        Value::Array(Array::String(v)) => list(buf, v, |buf, s| {
            write_str_value(buf, s.as_str(), DEFAULT_MAX_VALUE_LEN)
        }),
        // Kinds added by later opentelemetry versions: their text form, still escaped.
        other => write_str_value(buf, &other.to_string(), DEFAULT_MAX_VALUE_LEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn span(parent: SpanId, status: Status, attributes: Vec<KeyValue>) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("GET /q\"uote\n\u{2028}"),
            start_time: start,
            end_time: start + Duration::from_micros(12_345),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("observe").build(),
        }
    }

    fn line(span: &SpanData) -> (String, serde_json::Value) {
        let mut buf = Vec::new();
        write_span(&mut buf, span, "svc\"\\");
        let text = String::from_utf8(buf).unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (text, json)
    }

    #[test]
    fn a_span_is_one_parseable_json_object_with_every_field() {
        let attrs = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200i64),
            KeyValue::new("ratio", 0.5),
            KeyValue::new("ok", true),
            KeyValue::new("k\"ey\n", "v\u{0}al</script>"),
            KeyValue::new(
                "list",
                Value::Array(Array::String(vec!["a\"".into(), "b".into()])),
            ),
            KeyValue::new("nums", Value::Array(Array::I64(vec![1, -2]))),
        ];
        let parent = SpanId::from_hex("b7ad6b7169203331").unwrap();
        let (text, j) = line(&span(parent, Status::Unset, attrs));
        assert!(!text.contains('\n') && !text.contains('\u{2028}'), "{text}");
        assert_eq!(j["signal"], "span");
        assert_eq!(j["name"], "GET /q\"uote\n\u{2028}");
        assert_eq!(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(j["span_id"], "00f067aa0ba902b7");
        assert_eq!(j["parent_span_id"], "b7ad6b7169203331");
        assert_eq!(j["kind"], "server");
        assert_eq!(j["start_time"], "2026-11-18T11:06:40.123456Z");
        assert_eq!(j["end_time"], "2026-11-18T11:06:40.135801Z");
        assert_eq!(j["duration_ms"], 12.345);
        assert_eq!(j["status"], serde_json::json!({"code": "unset"}));
        let a = &j["attributes"];
        assert_eq!(a["http.request.method"], "GET");
        assert_eq!(a["http.response.status_code"], 200);
        assert_eq!(a["ratio"], 0.5);
        assert_eq!(a["ok"], true);
        assert_eq!(a["k\"ey\n"], "v\u{0}al</script>");
        assert_eq!(a["list"], serde_json::json!(["a\"", "b"]));
        assert_eq!(a["nums"], serde_json::json!([1, -2]));
        assert_eq!(j["service.name"], "svc\"\\");
        assert!(j.get("events").is_none());
    }

    #[test]
    fn roots_errors_and_events() {
        let mut s = span(SpanId::INVALID, Status::error("db \"down\""), vec![]);
        s.span_kind = SpanKind::Client;
        s.events.events.push(opentelemetry::trace::Event::new(
            "retry\u{7}",
            s.start_time,
            vec![KeyValue::new("attempt", 2i64)],
            0,
        ));
        let (_, j) = line(&s);
        assert_eq!(j["parent_span_id"], serde_json::Value::Null);
        assert_eq!(j["kind"], "client");
        assert_eq!(
            j["status"],
            serde_json::json!({"code": "error", "message": "db \"down\""})
        );
        assert_eq!(j["events"][0]["name"], "retry\u{7}");
        assert_eq!(j["events"][0]["time"], j["start_time"]);
        assert_eq!(j["events"][0]["attributes"]["attempt"], 2);
        let (_, ok) = line(&span(SpanId::INVALID, Status::Ok, vec![]));
        assert_eq!(ok["status"], serde_json::json!({"code": "ok"}));
    }

    #[test]
    fn export_writes_one_line_per_span_with_the_resource_service_name() {
        let out = Captured::default();
        let mut exporter = ConsoleExporter::new(out.clone());
        exporter.set_resource(
            &Resource::builder_empty()
                .with_attribute(KeyValue::new("service.name", "checkout"))
                .build(),
        );
        let batch = vec![
            span(SpanId::INVALID, Status::Unset, vec![]),
            span(SpanId::INVALID, Status::Ok, vec![]),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(exporter.export(batch)).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(text.ends_with('\n'));
        for l in lines {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(j["service.name"], "checkout");
        }
    }
}
