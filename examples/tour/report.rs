//! What the tour found, and how it prints it.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::cli::Role;
use super::orchestrate::{LogLine, ServiceInfo};
use super::prom::Red;
use super::spans::Trace;

/// One request the burst sent, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The gateway's route template for it.
    pub route: &'static str,
    /// The HTTP status; 0 when no response came.
    pub status: u16,
    /// Time to the full response, measured by the client.
    pub latency: Duration,
    /// The trace id the gateway returned in the body.
    pub trace_id: Option<String>,
}

/// A RED row of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct RedRow {
    /// `service.name`.
    pub service: String,
    /// `server` (requests it handled) or `client` (calls it made).
    pub side: &'static str,
    /// The figures.
    pub red: Red,
}

/// The waterfall part of the report.
#[derive(Clone, Debug, PartialEq)]
pub enum WaterfallSection {
    /// The trace, assembled from every service's collector.
    Trace(Trace),
    /// No service kept spans (tracing disabled, e.g. `OTEL_SDK_DISABLED=true`).
    NoCollector,
}

/// Everything the tour found.
#[derive(Clone, Debug)]
pub struct TourReport {
    /// The services and their ports.
    pub services: Vec<ServiceInfo>,
    /// Every request sent, in plan order.
    pub sent: Vec<Sent>,
    /// How long the burst took.
    pub burst_time: Duration,
    /// RED per service and operation, read back from each `/metrics`.
    pub red: Vec<RedRow>,
    /// `orders_placed_total` by outcome, from the backend's `/metrics`.
    pub orders_placed: Vec<(String, u64)>,
    /// The slowest request.
    pub slowest: Option<Sent>,
    /// Its trace.
    pub waterfall: Option<WaterfallSection>,
    /// Where the services export spans, when `OTEL_EXPORTER_OTLP_*ENDPOINT` is set.
    pub export_endpoint: Option<String>,
    /// The JSON log lines of the slowest request's trace, from every service, in order.
    pub logs: Vec<(Role, Value)>,
    /// Log lines the orchestrator dropped for space (0 in a normal run).
    pub logs_dropped: u64,
}

/// How many log lines of the chosen trace the report prints per service.
const LOG_LINES_PER_SERVICE: usize = 3;

impl TourReport {
    /// Keeps the log lines carrying the slowest request's trace id.
    pub fn attach_logs(&mut self, lines: &[LogLine], dropped: u64) {
        self.logs_dropped = dropped;
        let Some(id) = self.slowest.as_ref().and_then(|s| s.trace_id.as_deref()) else {
            return;
        };
        self.logs = lines
            .iter()
            .filter_map(|l| {
                let v: Value = serde_json::from_str(&l.line).ok()?;
                (v.get("trace_id")?.as_str()? == id).then_some((l.role, v))
            })
            .collect();
    }

    /// The RED row of `service`'s `side` operation `operation`.
    pub fn red_of(&self, service: &str, side: &str, operation: &str) -> Option<&Red> {
        self.red
            .iter()
            .find(|r| r.service == service && r.side == side && r.red.operation == operation)
            .map(|r| &r.red)
    }

    /// The service info of `role`.
    pub fn service(&self, role: Role) -> Option<&ServiceInfo> {
        self.services.iter().find(|s| s.role == role)
    }

    /// The report as the tour prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_intro(&mut out);
        self.render_logs(&mut out);
        self.render_red(&mut out);
        self.render_waterfall(&mut out);
        self.render_next(&mut out);
        out
    }

    fn render_intro(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "observe tour: three services, each its own process with its own init()"
        );
        for s in &self.services {
            let what = match s.role {
                Role::Gateway => "axum HTTP gateway",
                Role::Backend => "tonic gRPC backend",
                Role::Dependency => "axum HTTP stock service (slow dependency)",
            };
            let _ = writeln!(out, "  {:<16} {what} on 127.0.0.1:{}", s.service, s.port);
        }
        let mut by_status: Vec<(u16, usize)> = Vec::new();
        for s in &self.sent {
            match by_status.iter_mut().find(|(st, _)| *st == s.status) {
                Some((_, n)) => *n += 1,
                None => by_status.push((s.status, 1)),
            }
        }
        by_status.sort_unstable();
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{n}x {s}")).collect();
        let _ = writeln!(
            out,
            "sent {} requests to the gateway in {:.2}s: {}\n",
            self.sent.len(),
            self.burst_time.as_secs_f64(),
            statuses.join(", ")
        );
    }

    fn render_logs(&self, out: &mut String) {
        let Some(slow) = &self.slowest else { return };
        let id = slow.trace_id.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "1. LOGS - one request ({} {}, {:.1} ms), every service's JSON lines with its trace_id {id}:",
            slow.method,
            slow.route,
            slow.latency.as_secs_f64() * 1e3
        );
        if self.logs.is_empty() {
            let _ = writeln!(out, "   (no log line carries this trace id)");
        }
        let mut printed: Vec<(Role, usize)> = Vec::new();
        for (role, v) in &self.logs {
            let n = match printed.iter_mut().find(|(r, _)| r == role) {
                Some((_, n)) => n,
                None => {
                    printed.push((*role, 0));
                    &mut printed.last_mut().expect("just pushed").1
                }
            };
            if *n < LOG_LINES_PER_SERVICE {
                *n += 1;
                let _ = writeln!(out, "   {v}");
            }
        }
        let _ = writeln!(
            out,
            "   grep/jq any of them by trace_id: every line logged while handling the request has it.\n"
        );
    }

    fn render_red(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "2. METRICS - RED per service and operation, read back from each /metrics:"
        );
        let width = self
            .red
            .iter()
            .map(|r| r.red.operation.len())
            .max()
            .unwrap_or(9)
            .max(9);
        let _ = writeln!(
            out,
            "   {:<16} {:<6} {:<width$} {:>6} {:>6} {:>9} {:>9} {:>6}",
            "service", "side", "operation", "count", "errors", "p50", "p99", "sent"
        );
        let gateway = self.service(Role::Gateway).map(|s| s.service.as_str());
        for r in &self.red {
            let q = |v: Option<f64>| v.map_or_else(|| "-".into(), |s| format!("{:.1}ms", s * 1e3));
            // What the tour itself sent, beside what the gateway counted.
            let sent = if Some(r.service.as_str()) == gateway && r.side == "server" {
                let n = self
                    .sent
                    .iter()
                    .filter(|s| format!("{} {}", s.method, s.route) == r.red.operation)
                    .count();
                n.to_string()
            } else {
                String::new()
            };
            let line = format!(
                "   {:<16} {:<6} {:<width$} {:>6} {:>6} {:>9} {:>9} {:>6}",
                r.service,
                r.side,
                r.red.operation,
                r.red.count,
                r.red.errors,
                q(r.red.p50),
                q(r.red.p99),
                sent
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let placed: Vec<String> = self
            .orders_placed
            .iter()
            .map(|(o, n)| format!("{o}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "   business counter orders_placed_total (backend): {}",
            placed.join(" ")
        );
        let _ = writeln!(
            out,
            "   errors = requests with an error_type label (5xx, failing gRPC codes); 404/409 are not errors.\n   p50/p99 are interpolated within histogram buckets, as histogram_quantile does.\n"
        );
    }

    fn render_waterfall(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "3. TRACE - the slowest request, as one trace across services:"
        );
        match &self.waterfall {
            None => {
                let _ = writeln!(out, "   (no request returned a trace id)");
            }
            Some(WaterfallSection::NoCollector) => {
                let _ = writeln!(
                    out,
                    "   (tracing is disabled in the services: no spans were kept)"
                );
            }
            Some(WaterfallSection::Trace(t)) if t.spans.is_empty() => {
                let _ = writeln!(
                    out,
                    "   (no span of trace {} was kept; the request was not sampled)",
                    t.trace_id
                );
            }
            Some(WaterfallSection::Trace(t)) => {
                let _ = writeln!(
                    out,
                    "   trace {} - {:.1} ms, {} spans from {}",
                    t.trace_id,
                    t.duration().as_secs_f64() * 1e3,
                    t.spans.len(),
                    t.services().join(", ")
                );
                for line in t.waterfall().lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        match &self.export_endpoint {
            Some(endpoint) => {
                let _ = writeln!(
                    out,
                    "   The services also exported these spans over OTLP to {endpoint}: look the trace up there by its id.\n"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "   Read from each service's in-process span collector. Set OTEL_EXPORTER_OTLP_ENDPOINT\n   (e.g. http://localhost:4317) and the services export every span to your collector too.\n"
                );
            }
        }
    }

    fn render_next(&self, out: &mut String) {
        let _ = writeln!(out, "4. WHERE TO LOOK NEXT");
        for s in &self.services {
            let _ = writeln!(out, "   {:<16} metrics  {}", s.service, s.metrics_url());
            let _ = writeln!(
                out,
                "   {:<16} status   {}  (RED, recent slow/failed requests)",
                "",
                s.status_url()
            );
            let _ = writeln!(out, "   {:<16} spans    {}", "", s.spans_url());
        }
        let _ = writeln!(
            out,
            "   (these ports close when the tour exits; `--serve` keeps the services running and prints them as JSON)"
        );
        let _ = writeln!(out, "   Prometheus scrape config (prometheus.yml):");
        let _ = writeln!(out, "     scrape_configs:");
        for s in &self.services {
            let _ = writeln!(out, "       - job_name: {}", s.service);
            let _ = writeln!(
                out,
                "         static_configs: [{{ targets: [\"127.0.0.1:{}\"] }}]",
                s.metrics_port
            );
        }
        let _ = writeln!(
            out,
            "   Dashboards, alert rules and runbooks for these metrics: deploy/ (grafana/, prometheus/, runbooks/)."
        );
    }
}
