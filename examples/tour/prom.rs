//! Reading RED figures back from a `/metrics` page: a small parser for the Prometheus text
//! format, and rate/errors/duration per route computed from histogram series the way
//! Prometheus' `histogram_quantile` does.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_count`, `_sum`, `_total` suffixes as exposed).
    pub name: String,
    /// Labels in exposition order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text format (and the sample lines of OpenMetrics; exemplars and
/// timestamps are ignored). Comment lines and lines that do not parse are skipped.
///
/// ```
/// use observe_examples::tour::prom::parse;
/// let s = parse("# HELP x y\nx_total{a=\"1\",b=\"q\\\"\"} 3\nup 1\n");
/// assert_eq!(s.len(), 2);
/// assert_eq!(s[0].label("b"), Some("q\""));
/// assert_eq!(s[1].value, 1.0);
/// ```
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // key
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            let (start, c) = *chars.peek()?;
            if c == '}' {
                end = start + 1;
                break;
            }
            let eq = body[start..].find('=')? + start;
            let key = body[start..eq].trim().to_string();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.push((key, value));
        }
        rest = &body[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Rate, errors and duration of one operation (a route or an RPC method) of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct Red {
    /// `GET /orders/{id}` or `shop.Orders/GetOrder`.
    pub operation: String,
    /// Requests seen (the histogram's `_count`, summed over status codes).
    pub count: u64,
    /// Of those, the ones with an `error_type` label (server 5xx, failing gRPC codes,
    /// cancellations).
    pub errors: u64,
    /// Median duration in seconds, interpolated within its bucket; `None` without requests.
    pub p50: Option<f64>,
    /// 99th percentile in seconds, interpolated within its bucket.
    pub p99: Option<f64>,
}

/// RED per operation from one histogram family (`base` without suffix, e.g.
/// `http_server_request_duration_seconds`); `operation` names an operation from a series'
/// labels (`None` skips the series, e.g. unrouted requests).
pub fn red(
    samples: &[Sample],
    base: &str,
    operation: impl Fn(&Sample) -> Option<String>,
) -> Vec<Red> {
    let count_name = format!("{base}_count");
    let bucket_name = format!("{base}_bucket");
    // operation -> (count, errors, le -> cumulative count)
    type Acc = (f64, f64, BTreeMap<OrderedLe, f64>);
    let mut ops: BTreeMap<String, Acc> = BTreeMap::new();
    for s in samples {
        let is_count = s.name == count_name;
        let is_bucket = s.name == bucket_name;
        if !is_count && !is_bucket {
            continue;
        }
        let Some(op) = operation(s) else { continue };
        let acc = ops.entry(op).or_default();
        if is_count {
            acc.0 += s.value;
            if s.label("error_type").is_some() {
                acc.1 += s.value;
            }
        } else if let Some(le) = s.label("le").and_then(parse_le) {
            *acc.2.entry(OrderedLe(le)).or_default() += s.value;
        }
    }
    ops.into_iter()
        .map(|(operation, (count, errors, buckets))| {
            let buckets: Vec<(f64, f64)> = buckets.into_iter().map(|(le, c)| (le.0, c)).collect();
            Red {
                operation,
                count: count as u64,
                errors: errors as u64,
                p50: quantile(0.5, &buckets),
                p99: quantile(0.99, &buckets),
            }
        })
        .collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

/// A bucket bound as a map key: ordered by `total_cmp`, so `+Inf` sorts last.
#[derive(Clone, Copy, Debug)]
struct OrderedLe(f64);
impl PartialEq for OrderedLe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrderedLe {}
impl PartialOrd for OrderedLe {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedLe {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `q` quantile of cumulative buckets `(upper bound, count)` sorted by bound, as
/// Prometheus' `histogram_quantile` computes it: linear within the bucket holding the rank;
/// a rank in the `+Inf` bucket gives the highest finite bound.
///
/// ```
/// use observe_examples::tour::prom::quantile;
/// let b = [(0.1, 50.0), (0.5, 90.0), (f64::INFINITY, 100.0)];
/// assert_eq!(quantile(0.5, &b), Some(0.1));
/// assert!((quantile(0.7, &b).unwrap() - 0.3).abs() < 1e-9);
/// assert_eq!(quantile(0.99, &b), Some(0.5));
/// assert_eq!(quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
/// ```
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            if count == prev.1 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / (count - prev.1));
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// The sum of the samples named `name` whose labels include every pair in `labels`.
///
/// ```
/// use observe_examples::tour::prom::{parse, sum};
/// let s = parse("c_total{a=\"x\",b=\"1\"} 2\nc_total{a=\"x\",b=\"2\"} 3\nc_total{a=\"y\"} 9\n");
/// assert_eq!(sum(&s, "c_total", &[("a", "x")]), 5.0);
/// ```
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP http_server_request_duration_seconds Duration.
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="200",le="0.005"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="200",le="0.01"} 3
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="200",le="+Inf"} 3
http_server_request_duration_seconds_sum{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="200"} 0.02
http_server_request_duration_seconds_count{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="200"} 3
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="500",error_type="500",le="0.005"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="500",error_type="500",le="0.01"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="500",error_type="500",le="+Inf"} 1
http_server_request_duration_seconds_count{http_request_method="GET",url_scheme="http",http_route="/a",http_response_status_code="500",error_type="500"} 1
http_server_request_duration_seconds_count{http_request_method="GET",url_scheme="http",http_response_status_code="404"} 7
"#;

    #[test]
    fn red_sums_statuses_and_counts_error_types() {
        let samples = parse(PAGE);
        let rows = red(&samples, "http_server_request_duration_seconds", |s| {
            Some(format!(
                "{} {}",
                s.label("http_request_method")?,
                s.label("http_route")?
            ))
        });
        assert_eq!(rows.len(), 1, "the unrouted series is skipped: {rows:?}");
        let r = &rows[0];
        assert_eq!((r.operation.as_str(), r.count, r.errors), ("GET /a", 4, 1));
        // Cumulative over both series: 1 at 5 ms, 3 at 10 ms, 4 at +Inf. Rank 2 of 4.
        assert!((r.p50.unwrap() - 0.0075).abs() < 1e-12, "{r:?}");
        assert_eq!(r.p99, Some(0.01));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let s = parse("ok 1\nbad{a=\"1\" 2\nbad2{a=1} 3\nnovalue\nx{} 4 1700000000\n");
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ok", "x"]);
    }
}
