//! Spans across processes: each service serves its in-process span store as JSON
//! (`GET /tour/spans?trace_id=…`), and the orchestrator merges the answers into one trace and
//! draws it as a text waterfall with each service's share of the latency.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use observe_core::otel::opentelemetry::trace::{SpanKind, Status};
use observe_core::otel::opentelemetry_sdk::trace::SpanData;
use serde_json::{json, Value};

/// One finished span as the orchestrator sees it: ids, timing, and which service recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// The service that recorded it (`service.name`).
    pub service: String,
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, lowercase hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Span name (`GET /orders/{id}`, `shop.Orders/GetOrder`, …).
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: String,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u128,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u128,
    /// Whether the span's status is `Error`.
    pub error: bool,
}

impl SpanRecord {
    /// The span's duration.
    pub fn duration(&self) -> Duration {
        nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// Parses one element of the `spans` array served by `/tour/spans`.
    pub fn from_json(service: &str, v: &Value) -> Option<SpanRecord> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<u128>().ok())
        };
        Some(SpanRecord {
            service: service.to_string(),
            trace_id: s("trace_id")?,
            span_id: s("span_id")?,
            parent_span_id: s("parent_span_id"),
            name: s("name")?,
            kind: s("kind").unwrap_or_default(),
            start_unix_nanos: n("start_unix_nanos")?,
            end_unix_nanos: n("end_unix_nanos")?,
            error: v.get("error").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// The JSON for one stored span (what `/tour/spans` serves). Times are strings: nanoseconds
/// since the epoch do not fit a JSON number without losing precision in many readers.
pub fn span_json(span: &SpanData) -> Value {
    let parent = span.parent_span_id;
    let kind = match span.span_kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    json!({
        "trace_id": span.span_context.trace_id().to_string(),
        "span_id": span.span_context.span_id().to_string(),
        "parent_span_id": (parent != observe_core::otel::opentelemetry::trace::SpanId::INVALID)
            .then(|| parent.to_string()),
        "name": span.name.as_ref(),
        "kind": kind,
        "start_unix_nanos": unix_nanos(span.start_time).to_string(),
        "end_unix_nanos": unix_nanos(span.end_time).to_string(),
        "error": matches!(span.status, Status::Error { .. }),
    })
}

/// The body of `GET /tour/spans`: this service's stored spans of one trace (or, without a
/// `trace_id`, the most recent ones, at most `limit`).
pub fn spans_body(service: &str, trace_id: Option<&str>, limit: usize) -> Value {
    let Some(store) = observe_core::trace::collector::global() else {
        return json!({ "service": service, "collector": false, "spans": [] });
    };
    let spans: Vec<Value> = match trace_id.and_then(observe_core::context::TraceId::from_hex) {
        Some(id) => store.trace(id).iter().map(span_json).collect(),
        None => store
            .recent_traces(limit)
            .iter()
            .flat_map(|t| store.trace(t.trace_id))
            .take(limit)
            .map(|s| span_json(&s))
            .collect(),
    };
    json!({ "service": service, "collector": true, "spans": spans })
}

/// One trace assembled from every service's spans.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The trace id.
    pub trace_id: String,
    /// Its spans, earliest start first.
    pub spans: Vec<SpanRecord>,
}

/// How long one service spent on a trace doing its own work.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    /// `service.name`, or [`NETWORK`] for time between a client span and the server span it
    /// waited on.
    pub service: String,
    /// Time in the service's spans not covered by their child spans.
    pub time: Duration,
    /// `time` as a fraction of the trace's duration.
    pub fraction: f64,
}

/// The name [`Trace::shares`] gives to time spent between services: in a client span but
/// not in the server span it called (connection, serialization, queueing, the network).
pub const NETWORK: &str = "(between services)";

impl Trace {
    /// Assembles a trace from spans of any services (other traces' spans are ignored).
    pub fn new(trace_id: &str, spans: impl IntoIterator<Item = SpanRecord>) -> Trace {
        let mut spans: Vec<SpanRecord> = spans
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        spans.sort_by_key(|s| (s.start_unix_nanos, std::cmp::Reverse(s.end_unix_nanos)));
        spans.dedup_by(|a, b| a.span_id == b.span_id);
        Trace {
            trace_id: trace_id.to_string(),
            spans,
        }
    }

    /// The root span: the one whose parent is not in the trace (the earliest such).
    pub fn root(&self) -> Option<&SpanRecord> {
        self.spans.iter().find(|s| {
            s.parent_span_id
                .as_ref()
                .is_none_or(|p| !self.spans.iter().any(|x| &x.span_id == p))
        })
    }

    /// From the earliest start to the latest end.
    pub fn duration(&self) -> Duration {
        let start = self.spans.iter().map(|s| s.start_unix_nanos).min();
        let end = self.spans.iter().map(|s| s.end_unix_nanos).max();
        match (start, end) {
            (Some(s), Some(e)) => nanos(e.saturating_sub(s)),
            _ => Duration::ZERO,
        }
    }

    /// The services that recorded spans of this trace, in order of first appearance.
    pub fn services(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.spans {
            if !out.contains(&s.service.as_str()) {
                out.push(&s.service);
            }
        }
        out
    }

    fn depth(&self, span: &SpanRecord) -> usize {
        let mut depth = 0;
        let mut parent = span.parent_span_id.as_deref();
        while let Some(p) = parent {
            let Some(next) = self.spans.iter().find(|s| s.span_id == p) else {
                break;
            };
            depth += 1;
            parent = next.parent_span_id.as_deref();
            if depth > self.spans.len() {
                break; // a cycle in bad data
            }
        }
        depth
    }

    /// Each span's own time (its duration minus the union of its children's intervals),
    /// summed per service, largest first. A client span's own time counts as [`NETWORK`].
    pub fn shares(&self) -> Vec<Share> {
        let total = self.duration().as_secs_f64();
        let mut by_service: Vec<(String, Duration)> = Vec::new();
        for span in &self.spans {
            let mut children: Vec<(u128, u128)> = self
                .spans
                .iter()
                .filter(|c| c.parent_span_id.as_deref() == Some(span.span_id.as_str()))
                .map(|c| {
                    (
                        c.start_unix_nanos.max(span.start_unix_nanos),
                        c.end_unix_nanos.min(span.end_unix_nanos),
                    )
                })
                .filter(|(s, e)| e > s)
                .collect();
            children.sort_unstable();
            let mut covered = 0u128;
            let mut cursor = span.start_unix_nanos;
            for (s, e) in children {
                let s = s.max(cursor);
                if e > s {
                    covered += e - s;
                    cursor = e;
                }
            }
            let own = nanos(
                span.end_unix_nanos
                    .saturating_sub(span.start_unix_nanos)
                    .saturating_sub(covered),
            );
            let who = if span.kind == "client" {
                NETWORK
            } else {
                span.service.as_str()
            };
            match by_service.iter_mut().find(|(s, _)| s == who) {
                Some((_, t)) => *t += own,
                None => by_service.push((who.to_string(), own)),
            }
        }
        by_service.sort_by_key(|s| std::cmp::Reverse(s.1));
        by_service
            .into_iter()
            .map(|(service, time)| Share {
                fraction: if total > 0.0 {
                    time.as_secs_f64() / total
                } else {
                    0.0
                },
                service,
                time,
            })
            .collect()
    }

    /// The waterfall: one line per span (offset, duration, service, indented name, a bar on
    /// a common time axis), then each service's share.
    pub fn waterfall(&self) -> String {
        const BAR: usize = 32;
        let mut out = String::new();
        let Some(t0) = self.spans.iter().map(|s| s.start_unix_nanos).min() else {
            return out;
        };
        let total = self.duration().as_nanos().max(1);
        let width = self
            .spans
            .iter()
            .map(|s| 2 * self.depth(s) + s.name.len() + if s.kind == "client" { 9 } else { 0 })
            .max()
            .unwrap_or(0);
        let service_width = self
            .spans
            .iter()
            .map(|s| s.service.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:>9} {:>9}  {:sw$}  {:w$}  timeline",
            "start",
            "duration",
            "service",
            "span",
            sw = service_width,
            w = width
        );
        for s in &self.spans {
            let offset = s.start_unix_nanos - t0;
            let from = (offset * BAR as u128 / total) as usize;
            let to = ((s.end_unix_nanos - t0) * BAR as u128).div_ceil(total) as usize;
            let to = to.clamp(from + 1, BAR);
            let bar: String = (0..BAR)
                .map(|i| if i >= from && i < to { '#' } else { '.' })
                .collect();
            let label = format!(
                "{:indent$}{}{}",
                "",
                s.name,
                if s.kind == "client" { " (client)" } else { "" },
                indent = 2 * self.depth(s)
            );
            let _ = writeln!(
                out,
                "  {:>7.1}ms {:>7.1}ms  {:sw$}  {:w$}  |{bar}|{}",
                nanos(offset).as_secs_f64() * 1e3,
                s.duration().as_secs_f64() * 1e3,
                s.service,
                label,
                if s.error { " ERROR" } else { "" },
                sw = service_width,
                w = width
            );
        }
        let _ = writeln!(
            out,
            "  where the time went (each span's own time, children excluded):"
        );
        for share in self.shares() {
            let _ = writeln!(
                out,
                "    {:<20} {:>7.1}ms {:>5.1}%",
                share.service,
                share.time.as_secs_f64() * 1e3,
                share.fraction * 100.0
            );
        }
        out
    }
}

/// Groups spans of many traces by trace id.
pub fn by_trace(spans: impl IntoIterator<Item = SpanRecord>) -> HashMap<String, Vec<SpanRecord>> {
    let mut out: HashMap<String, Vec<SpanRecord>> = HashMap::new();
    for s in spans {
        out.entry(s.trace_id.clone()).or_default().push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        service: &str,
        id: &str,
        parent: Option<&str>,
        kind: &str,
        start: u128,
        end: u128,
    ) -> SpanRecord {
        SpanRecord {
            service: service.into(),
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            name: format!("span-{id}"),
            kind: kind.into(),
            start_unix_nanos: start * 1_000_000,
            end_unix_nanos: end * 1_000_000,
            error: false,
        }
    }

    fn trace() -> Trace {
        // gateway 0..100, its client call 10..90, backend server 12..88, backend's client call
        // 20..80, dependency server 21..79.
        Trace::new(
            "t",
            vec![
                span("dependency", "e", Some("d"), "server", 21, 79),
                span("gateway", "a", None, "server", 0, 100),
                span("gateway", "b", Some("a"), "client", 10, 90),
                span("backend", "c", Some("b"), "server", 12, 88),
                span("backend", "d", Some("c"), "client", 20, 80),
            ],
        )
    }

    #[test]
    fn shares_split_the_trace_by_own_time() {
        let t = trace();
        assert_eq!(t.root().unwrap().span_id, "a");
        assert_eq!(t.duration(), Duration::from_millis(100));
        assert_eq!(t.services(), ["gateway", "backend", "dependency"]);
        let shares = t.shares();
        let get = |name: &str| shares.iter().find(|s| s.service == name).unwrap().time;
        assert_eq!(get("dependency"), Duration::from_millis(58));
        assert_eq!(get("gateway"), Duration::from_millis(20));
        assert_eq!(get("backend"), Duration::from_millis(16));
        assert_eq!(get(NETWORK), Duration::from_millis(6));
        let sum: f64 = shares.iter().map(|s| s.fraction).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{shares:?}");
        assert_eq!(shares[0].service, "dependency");
    }

    #[test]
    fn waterfall_indents_children_and_names_every_service() {
        let w = trace().waterfall();
        let lines: Vec<&str> = w.lines().collect();
        assert!(
            lines[1].contains("gateway") && lines[1].contains(" span-a "),
            "{w}"
        );
        assert!(lines[2].contains("  span-b (client)"), "{w}");
        assert!(lines[5].contains("        span-e"), "{w}");
        assert!(
            lines[1].contains("|################################|"),
            "{w}"
        );
        assert!(w.contains("dependency") && w.contains("58.0ms"), "{w}");
    }

    #[test]
    fn json_round_trip() {
        let v = json!({"trace_id":"t","span_id":"a","parent_span_id":null,"name":"GET /x",
            "kind":"server","start_unix_nanos":"1","end_unix_nanos":"3","error":true});
        let s = SpanRecord::from_json("svc", &v).unwrap();
        assert_eq!(s.parent_span_id, None);
        assert_eq!(s.duration(), Duration::from_nanos(2));
        assert!(s.error);
        assert!(SpanRecord::from_json("svc", &json!({"name": "x"})).is_none());
    }
}
