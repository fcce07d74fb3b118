//! The JSON form of the page, for scripts. Strings are escaped by `serde_json`; non-finite
//! numbers (no data) are `null`.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::model::{RequestView, StatusSnapshot};
use crate::metrics::DURATION_BUCKETS;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn hex<const N: usize>(b: [u8; N]) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

fn request(v: &RequestView) -> Value {
    let r = &v.request;
    json!({
        "trace_id": hex(r.trace_id.to_hex()),
        "span_id": hex(r.span_id.to_hex()),
        "route": r.route,
        "name": r.name,
        "status_code": r.status_code,
        "grpc_status": r.grpc_status,
        "error": r.error,
        "duration_seconds": secs(r.duration),
        "end_unix_seconds": r.end.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        "slow": r.slow,
        "failed": r.failed,
        "waterfall": v.waterfall.as_ref().map(|w| json!({
            "total_seconds": secs(w.total),
            "truncated": w.truncated,
            "services": w.services.iter().map(|s| json!({
                "service": s.service,
                "self_seconds": secs(s.self_time),
                "share": s.share,
            })).collect::<Vec<_>>(),
            "spans": w.spans.iter().map(|s| json!({
                "name": s.name,
                "service": s.service,
                "kind": s.kind,
                "depth": s.depth,
                "offset_seconds": secs(s.offset),
                "duration_seconds": secs(s.duration),
                "error": s.error,
                "events": s.events,
            })).collect::<Vec<_>>(),
        })),
    })
}

/// Renders the snapshot as one JSON document.
pub(crate) fn render(s: &StatusSnapshot) -> String {
    let h = &s.health;
    let doc = json!({
        "service": s.service,
        "generated_at_unix_seconds": s.generated_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        "rate_window_seconds": secs(s.window),
        "latency_scope": "since process start",
        "slow_threshold_seconds": secs(s.slow_threshold),
        "bucket_bounds_seconds": DURATION_BUCKETS,
        "routes": s.rows.iter().map(|r| json!({
            "kind": r.kind.as_str(),
            "method": r.method,
            "name": r.name,
            "rate_per_second": r.rate,
            "error_ratio": r.error_ratio,
            "count": r.count,
            "errors": r.errors,
            "cancelled": r.cancelled,
            "p50_seconds": r.p50,
            "p90_seconds": r.p90,
            "p99_seconds": r.p99,
            "mean_seconds": r.mean,
            "buckets": r.buckets,
        })).collect::<Vec<_>>(),
        "recent": s.recent.iter().map(|r| json!({
            "route": r.route,
            "failed": r.failed.iter().map(request).collect::<Vec<_>>(),
            "slow": r.slow.iter().map(request).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "health": {
            "export_queue": h.export_queue.map(|q| json!({"len": q.len, "capacity": q.capacity})),
            "spans_dropped": h.spans_dropped,
            "log_records_dropped": h.log_records_dropped,
            "metric_overflow": h.metric_overflow,
            "export_errors": h.export_errors,
            "propagation_invalid": h.propagation_invalid,
            "series": h.series.iter().map(|(k, n)| (k.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "span_store_len": h.span_store_len,
        },
    });
    doc.to_string()
}
