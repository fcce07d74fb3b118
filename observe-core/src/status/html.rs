//! The HTML form: one self-contained document (inline CSS, no script, no external asset).
//!
//! Every value that a user, a client or a handler can influence — route templates, span
//! names, event messages, error types, service names — goes through [`escape`] before it
//! reaches the document, in text and in attribute values alike.

use std::fmt::Write as _;
use std::time::Duration;

use crate::metrics::{BUCKETS, DURATION_BUCKETS};

use super::model::{RequestView, RouteRow, StatusSnapshot};
use super::waterfall::Waterfall;

/// Escapes `s` for HTML text and double- or single-quoted attribute values: `&`, `<`, `>`,
/// `"` and `'` become character references, and NUL becomes U+FFFD.
///
/// ```
/// use observe_core::status::escape_html;
/// assert_eq!(escape_html("<img src=x onerror='a&b'>\""), "&lt;img src=x onerror=&#39;a&amp;b&#39;&gt;&quot;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Formats seconds as `0.42 ms`, `12.3 ms` or `1.23 s`.
pub(crate) fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "–".to_owned()
    } else if s < 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn fmt_opt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "–".to_owned(), fmt_secs)
}

fn fmt_dur(d: Duration) -> String {
    fmt_secs(d.as_secs_f64())
}

fn bucket_label(i: usize) -> String {
    if i < DURATION_BUCKETS.len() {
        format!("≤ {}", fmt_secs(DURATION_BUCKETS[i]))
    } else {
        format!(
            "> {}",
            fmt_secs(DURATION_BUCKETS[DURATION_BUCKETS.len() - 1])
        )
    }
}

const CSS: &str = r#"
:root{--fg:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#fff;--bar:#4f7cff;--err:#d92d20;--slow:#f79009}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:16px 24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:16px 0 6px}
.meta,.note{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:middle}
th{font-weight:600;color:var(--muted);font-size:12px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.hist{display:flex;align-items:flex-end;gap:1px;height:28px;width:150px}
.hist span{flex:1;background:var(--bar);min-height:1px}
.hist span.zero{background:var(--line)}
.err{color:var(--err);font-weight:600}
td.over{color:#b54708;font-weight:600}
.axis{display:flex;justify-content:space-between;width:150px;font-size:9px;color:var(--muted)}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;background:var(--line)}
.badge.failed{background:#fee4e2;color:var(--err)}.badge.slow{background:#fef0c7;color:#b54708}
details{border:1px solid var(--line);border-radius:6px;margin:4px 0;padding:4px 8px}
summary{cursor:pointer}
.wf{margin:8px 0}
.wf .row{display:grid;grid-template-columns:minmax(220px,32%) 1fr 80px;gap:8px;align-items:center;font-size:12px}
.wf .track{position:relative;height:12px;background:#f2f4f7;border-radius:2px}
.wf .bar{position:absolute;top:0;height:12px;background:var(--bar);border-radius:2px;min-width:2px}
.wf .bar.error{background:var(--err)}
.wf .svc{color:var(--muted)}
.wf .ev{grid-column:1/4;color:var(--muted);font-size:11px;padding-left:16px}
.shares{margin:4px 0;padding:0;list-style:none;display:flex;gap:16px;flex-wrap:wrap;font-size:12px}
.shares b{font-variant-numeric:tabular-nums}
"#;

/// Renders the whole document.
pub(crate) fn render(s: &StatusSnapshot, json_href: &str) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let svc = escape(&s.service);
    let ts = crate::logs::timestamp::format(s.generated_at);
    let ts = std::str::from_utf8(&ts[..19]).unwrap_or("");
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{svc} · observe status</title><style>{CSS}</style></head><body>\
         <header><h1 id=\"service\">{svc}</h1><p class=\"meta\">Generated {ts}Z · rates and \
         error ratios over the last <span id=\"window\">{:.0}</span> s · latency quantiles and \
         distributions since the process started (the same histograms as /metrics) · slow \
         means ≥ {} · <a href=\"{}\">JSON</a> · reload to refresh</p></header>",
        s.window.as_secs_f64(),
        fmt_dur(s.slow_threshold),
        escape(json_href),
    );
    render_rows(&mut h, &s.rows, s.slow_threshold);
    render_recent(&mut h, s);
    render_health(&mut h, s);
    h.push_str("</body></html>\n");
    h
}

fn render_rows(h: &mut String, rows: &[RouteRow], slow: Duration) {
    h.push_str("<section id=\"red\"><h2>Requests</h2>");
    if rows.is_empty() {
        h.push_str("<p class=\"note\" id=\"no-requests\">No requests recorded yet.</p></section>");
        return;
    }
    h.push_str(
        "<table id=\"routes\"><thead><tr><th>kind</th><th>method</th><th>route</th>\
         <th class=\"num\">req/s</th><th class=\"num\">errors</th><th class=\"num\">p50</th>\
         <th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">requests</th>\
         <th>latency distribution</th></tr></thead><tbody>",
    );
    for r in rows {
        let max = r.buckets.iter().copied().max().unwrap_or(0).max(1);
        let ratio = match r.error_ratio {
            Some(e) => format!("{:.1}%", e * 100.0),
            None => "–".to_owned(),
        };
        let err_class = if r.error_ratio.is_some_and(|e| e > 0.0) {
            " err"
        } else {
            ""
        };
        let slow_class = if r.p99.is_some_and(|p| p >= slow.as_secs_f64()) {
            " over"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr class=\"route\" data-kind=\"{kind}\" data-method=\"{method}\" data-route=\"{name}\">\
             <td>{kind}</td><td>{method}</td><td class=\"name\"><code>{name}</code></td>\
             <td class=\"num rate\">{rate:.2}</td><td class=\"num ratio{err_class}\">{ratio}</td>\
             <td class=\"num p50\">{p50}</td><td class=\"num p90\">{p90}</td><td class=\"num p99{slow_class}\">{p99}</td>\
             <td class=\"num count\">{count}</td><td><div class=\"hist\" role=\"img\" aria-label=\"latency histogram\">",
            kind = r.kind.as_str(),
            method = escape(r.method),
            name = escape(r.name),
            rate = r.rate,
            p50 = fmt_opt_secs(r.p50),
            p90 = fmt_opt_secs(r.p90),
            p99 = fmt_opt_secs(r.p99),
            count = r.count,
        );
        for (i, &n) in r.buckets.iter().enumerate().take(BUCKETS) {
            let pct = (n as f64 / max as f64 * 100.0).round();
            let _ = write!(
                h,
                "<span{} style=\"height:{pct}%\" title=\"{}: {n}\"></span>",
                if n == 0 { " class=\"zero\"" } else { "" },
                escape(&bucket_label(i)),
            );
        }
        h.push_str(
            "</div><div class=\"axis\"><span>≤ 5 ms</span><span>&gt; 10 s</span></div></td></tr>",
        );
    }
    h.push_str("</tbody></table></section>");
}

fn render_recent(h: &mut String, s: &StatusSnapshot) {
    h.push_str("<section id=\"recent\"><h2>Recent slow and failed requests</h2>");
    if s.recent.is_empty() {
        h.push_str(
            "<p class=\"note\" id=\"no-recent\">None yet. Only sampled requests are listed, and \
             only when the in-process span store is enabled.</p></section>",
        );
        return;
    }
    for r in &s.recent {
        let _ = write!(
            h,
            "<div class=\"recent-route\" data-route=\"{0}\"><h3><code>{0}</code></h3>",
            escape(&r.route)
        );
        // The newest request of each route starts unfolded, so its waterfall is in view.
        let mut first = true;
        for (what, list) in [("failed", &r.failed), ("slow", &r.slow)] {
            for v in list {
                render_request(h, what, v, std::mem::take(&mut first));
            }
        }
        h.push_str("</div>");
    }
    h.push_str("</section>");
}

fn render_request(h: &mut String, what: &str, v: &RequestView, open: bool) {
    let req = &v.request;
    let trace = req.trace_id.to_hex();
    let trace = std::str::from_utf8(&trace).unwrap_or("");
    let status = match (&req.grpc_status, req.status_code) {
        (Some(g), _) => escape(g),
        (None, Some(c)) => c.to_string(),
        (None, None) => "no response".to_owned(),
    };
    let _ = write!(
        h,
        "<details class=\"request {what}\" data-trace-id=\"{trace}\"{open}><summary>\
         <span class=\"badge {what}\">{what}</span> <code class=\"trace-id\">{trace}</code> \
         <span class=\"span-name\">{name}</span> · status <span class=\"status\">{status}</span> · \
         <span class=\"duration\">{dur}</span>",
        name = escape(&req.name),
        dur = fmt_dur(req.duration),
        open = if open { " open" } else { "" },
    );
    if let Some(e) = &req.error {
        let _ = write!(h, " · <span class=\"err error\">{}</span>", escape(e));
    }
    if let Some(top) = v.waterfall.as_ref().and_then(|w| w.services.first()) {
        if v.waterfall.as_ref().is_some_and(|w| w.services.len() > 1) {
            let _ = write!(
                h,
                " · most time in <b class=\"top-service\">{}</b> ({:.0}%)",
                escape(&top.service),
                top.share * 100.0
            );
        }
    }
    h.push_str("</summary>");
    match &v.waterfall {
        Some(w) => render_waterfall(h, w),
        None => h.push_str(
            "<p class=\"note\">Its spans are no longer in the in-process span store.</p>",
        ),
    }
    h.push_str("</details>");
}

fn render_waterfall(h: &mut String, w: &Waterfall) {
    let total = w.total.as_secs_f64().max(1e-9);
    h.push_str("<ul class=\"shares\">");
    for s in &w.services {
        let _ = write!(
            h,
            "<li class=\"share\" data-service=\"{0}\">{0}: <b>{1:.0}%</b> ({2})</li>",
            escape(&s.service),
            s.share * 100.0,
            fmt_dur(s.self_time),
        );
    }
    h.push_str("</ul><div class=\"wf\">");
    for sp in &w.spans {
        let left = sp.offset.as_secs_f64() / total * 100.0;
        let width = sp.duration.as_secs_f64() / total * 100.0;
        let _ = write!(
            h,
            "<div class=\"row span\" data-service=\"{svc}\"><span style=\"padding-left:{pad}em\">\
             {name} <span class=\"svc\">{svc} · {kind}</span></span><span class=\"track\">\
             <span class=\"bar{err}\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span>\
             <span class=\"ms\">{dur}</span>",
            svc = escape(&sp.service),
            pad = sp.depth.min(12),
            name = escape(&sp.name),
            kind = sp.kind,
            err = if sp.error { " error" } else { "" },
            dur = fmt_dur(sp.duration),
        );
        for e in &sp.events {
            let _ = write!(h, "<span class=\"ev\">{}</span>", escape(e));
        }
        h.push_str("</div>");
    }
    if w.truncated {
        h.push_str("<p class=\"note\">More spans than shown.</p>");
    }
    h.push_str("</div>");
}

fn render_health(h: &mut String, s: &StatusSnapshot) {
    let hl = &s.health;
    h.push_str("<section id=\"health\"><h2>SDK health</h2><table id=\"health-table\"><tbody>");
    let queue = match hl.export_queue {
        Some(q) => format!("{} / {}", q.len, q.capacity),
        None => "not reported".to_owned(),
    };
    let store = hl
        .span_store_len
        .map_or_else(|| "not enabled".to_owned(), |n| format!("{n} spans"));
    let series = hl
        .series
        .iter()
        .map(|(k, n)| format!("{} {n}", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    for (id, label, value) in [
        ("export-queue", "span export queue", queue),
        (
            "spans-dropped",
            "spans dropped",
            hl.spans_dropped.to_string(),
        ),
        (
            "logs-dropped",
            "log lines dropped",
            hl.log_records_dropped.to_string(),
        ),
        (
            "metric-overflow",
            "observations in overflow series",
            hl.metric_overflow.to_string(),
        ),
        (
            "export-errors",
            "failed exports",
            hl.export_errors.to_string(),
        ),
        (
            "propagation-invalid",
            "invalid trace headers dropped",
            hl.propagation_invalid.to_string(),
        ),
        ("series", "series held", series),
        ("span-store", "in-process span store", store),
    ] {
        let _ = write!(
            h,
            "<tr id=\"{id}\"><th>{label}</th><td class=\"num\">{}</td></tr>",
            escape(&value)
        );
    }
    h.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_both_quote_styles() {
        assert_eq!(
            escape("</td><script>alert('x')</script>&\"\0"),
            "&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\u{FFFD}"
        );
        assert_eq!(escape("/users/{id} ✓"), "/users/{id} ✓");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(0.00042), "0.42 ms");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_secs(1.234), "1.23 s");
        assert_eq!(fmt_secs(f64::NAN), "–");
        assert_eq!(bucket_label(0), "≤ 5.0 ms");
        assert_eq!(bucket_label(BUCKETS - 1), "> 10.00 s");
    }
}
