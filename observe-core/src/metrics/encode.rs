//! Exposition: OpenMetrics text (with exemplars and `# EOF`) or Prometheus text 0.0.4, chosen
//! from the scraper's `Accept` header, gzip when `Accept-Encoding` allows it.
//!
//! observe's own families are written here directly (prometheus-client offers no way to attach
//! exemplars to a histogram it does not own); users' metrics on the prometheus-client registry
//! are written by prometheus-client's encoders into the same body.
//!
//! ```
//! use http::HeaderValue;
//! use observe_core::metrics::Format;
//! let prom = HeaderValue::from_static(
//!     "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
//! assert_eq!(Format::negotiate(Some(&prom)), Format::OpenMetrics);
//! assert_eq!(Format::negotiate(Some(&HeaderValue::from_static("*/*"))), Format::PrometheusText);
//! assert_eq!(Format::negotiate(None), Format::PrometheusText);
//! ```

use std::fmt::{self, Display, Write as _};
use std::io::Write as _;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::family::{Series, SeriesSnapshot, BUCKETS};

/// An exposition format.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum Format {
    /// OpenMetrics 1.0 text: exemplars on histogram buckets, terminated by `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (no exemplars).
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    ///
    /// ```
    /// # use observe_core::metrics::Format;
    /// assert!(Format::OpenMetrics.content_type().starts_with("application/openmetrics-text"));
    /// ```
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// Chooses the format from an `Accept` header: OpenMetrics when the scraper asks for
    /// `application/openmetrics-text` with a quality at least that of plain text, Prometheus
    /// text otherwise (including no header, `*/*`, or an unparsable header).
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
            return Format::PrometheusText;
        };
        let (mut q_om, mut q_text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q = quality(parts);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                q_om = q_om.max(q);
            } else if media.eq_ignore_ascii_case("text/plain")
                || media == "*/*"
                || media.eq_ignore_ascii_case("text/*")
            {
                q_text = q_text.max(q);
            }
        }
        if q_om > 0.0 && q_om >= q_text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// The `q` parameter among `params` (1 when absent, 0 when malformed).
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("q") {
                return v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
    }
    1.0
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*` with a non-zero quality).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            (name.eq_ignore_ascii_case("gzip")
                || name.eq_ignore_ascii_case("x-gzip")
                || name == "*")
                && quality(parts) > 0.0
        })
}

/// The scrape failed: a user-registered metric's encoder returned an error.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A metric on the prometheus-client registry failed to encode.
    #[error("a metric registered on the prometheus-client registry failed to encode")]
    Registry,
}

impl super::Metrics {
    /// Encodes every metric (observe's, process, target_info, the SDK's counters and users'
    /// own) in `format`, appending to `out`.
    ///
    /// ```
    /// # use observe_core::metrics::{Format, Metrics, MetricsConfig};
    /// let metrics = Metrics::new(MetricsConfig::default());
    /// let mut body = Vec::new();
    /// metrics.encode(Format::OpenMetrics, &mut body).unwrap();
    /// assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));
    /// ```
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut s = String::with_capacity(16 * 1024);
        {
            let mut w = Writer {
                out: &mut s,
                format,
            };
            self.encode_builtin(&mut w);
        }
        self.encode_registry(format, &mut s)?;
        if format == Format::OpenMetrics {
            s.push_str("# EOF\n");
        }
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// A complete `/metrics` response for a request with these headers: the format from
    /// `Accept`, gzip when `Accept-Encoding` allows it, `Vary` set. A failed encoding gives a
    /// 500 with a plain-text reason.
    ///
    /// ```
    /// # use http::{HeaderMap, HeaderValue};
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// let metrics = Metrics::new(MetricsConfig::default());
    /// let mut headers = HeaderMap::new();
    /// headers.insert("accept", HeaderValue::from_static("application/openmetrics-text"));
    /// headers.insert("accept-encoding", HeaderValue::from_static("gzip"));
    /// let resp = metrics.http_response(&headers);
    /// assert_eq!(resp.headers()["content-encoding"], "gzip");
    /// ```
    pub fn http_response(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let format = Format::negotiate(headers.get(ACCEPT));
        self.http_response_in(format, accepts_gzip(headers))
    }

    pub(crate) fn http_response_in(&self, format: Format, gzip: bool) -> Response<Full<Bytes>> {
        let mut body = Vec::with_capacity(16 * 1024);
        if let Err(e) = self.encode(format, &mut body) {
            let mut resp = Response::new(Full::new(Bytes::from(e.to_string())));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return resp;
        }
        let mut encoding = None;
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail; if it somehow does, send the body uncompressed.
            if let Ok(compressed) = enc.write_all(&body).and_then(|()| enc.finish()) {
                body = compressed;
                encoding = Some(HeaderValue::from_static("gzip"));
            }
        }
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if let Some(e) = encoding {
            h.insert(CONTENT_ENCODING, e);
        }
        resp
    }

    fn encode_registry(&self, format: Format, s: &mut String) -> Result<(), EncodeError> {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = s.len();
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode_registry(s, &registry),
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(s, &registry)
            }
        }
        .map_err(|_| EncodeError::Registry)?;
        // Registering a metric waits on this lock: rewrite after letting it go.
        drop(registry);
        canonicalize_bucket_bounds(s, start);
        Ok(())
    }
}

/// Rewrites the `le` label of every histogram bucket sample in `s[start..]` (the users'
/// metrics) into the canonical form observe's own families use. prometheus-client's text
/// encoder writes bounds as Go does (`1`, `1e+06`) and its OpenMetrics encoder with `dtoa`
/// (`1.0`, `1000000.0`), so a user's histogram would otherwise change series when Prometheus
/// switches format. Lines it cannot parse are left as they are. Every series of a family
/// repeats the same bounds, so each distinct bound is formatted once per scrape.
fn canonicalize_bucket_bounds(s: &mut String, start: usize) {
    if !s[start..].contains("le=\"") {
        return;
    }
    let tail = s.split_off(start);
    let mut formatted: Vec<(u64, String)> = Vec::new();
    let mut histogram = false;
    for line in tail.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            histogram = matches!(
                rest.trim_end().rsplit(' ').next(),
                Some("histogram" | "gaugehistogram")
            );
        } else if histogram && !line.starts_with('#') {
            if let Some((value, le)) = bucket_bound(line) {
                s.push_str(&line[..value.start]);
                let bits = le.to_bits();
                match formatted.iter().find(|(b, _)| *b == bits) {
                    Some((_, text)) => s.push_str(text),
                    // A handful of bucket layouts in practice; past that, no cache to search.
                    None if formatted.len() >= 64 => write_canonical_float(s, le),
                    None => {
                        let mut text = String::new();
                        write_canonical_float(&mut text, le);
                        s.push_str(&text);
                        formatted.push((bits, text));
                    }
                }
                s.push_str(&line[value.end..]);
                continue;
            }
        }
        s.push_str(line);
    }
}

/// The byte range of the `le` label value of a `…_bucket{…}` sample line, and its value.
fn bucket_bound(line: &str) -> Option<(std::ops::Range<usize>, f64)> {
    let open = line.find(['{', ' '])?;
    if !line[..open].ends_with("_bucket") || line.as_bytes()[open] != b'{' {
        return None;
    }
    let b = line.as_bytes();
    let mut i = open + 1;
    let mut found = None;
    while *b.get(i)? != b'}' {
        let eq = i + line[i..].find('=')?;
        let name = &line[i..eq];
        if b.get(eq + 1) != Some(&b'"') {
            return None;
        }
        // The value ends at the first quote not escaped by a backslash.
        let value_start = eq + 2;
        let mut j = value_start;
        loop {
            match *b.get(j)? {
                b'\\' => j += 2,
                b'"' => break,
                _ => j += 1,
            }
        }
        if name == "le" {
            found = Some((value_start..j, line[value_start..j].parse::<f64>().ok()?));
        }
        i = j + 1;
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
    found
}

/// Metric kinds, as the two formats name them.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Writes families of observe's own metrics into a text body.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut String,
    pub(crate) format: Format,
}

/// Label values of the bucket bounds, in the OpenMetrics canonical form (`1.0`, not `1`) in
/// both formats: a Prometheus server that switches scrape format by content negotiation must
/// see the same series, and the text format takes any float spelling in a label value.
/// (`canonical_bounds_match_the_buckets` checks these against [`write_canonical_float`].)
const LE: [&str; BUCKETS] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0",
    "7.5", "10.0", "+Inf",
];

/// Writes `v` in the OpenMetrics canonical number form used for `le` and `quantile` label
/// values: Go's shortest `%g` (exponent form below 1e-4 and from 1e6, with a sign and at least
/// two exponent digits) with `.0` appended when there is neither a decimal point nor an
/// exponent; `+Inf`, `-Inf`, `NaN`. So `1.0`, `0.005`, `100000.0`, `1e+06`, `1e-05`.
pub(crate) fn write_canonical_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits and the decimal exponent (`5e-3`,
    // `1.25e6`), which is what Go's shortest `%g` starts from; only the layout differs.
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && !(-4..6).contains(&exp) {
        let _ = write!(
            out,
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
        return;
    }
    // Within [1e-4, 1e6) Rust's `Display` writes the same digits without an exponent.
    let start = out.len();
    let _ = write!(out, "{v}");
    if !out[start..].contains('.') {
        out.push_str(".0");
    }
}

impl Writer<'_> {
    /// `# HELP` and `# TYPE`. `name` is the family name: for counters without `_total`.
    pub(crate) fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let om = self.format == Format::OpenMetrics;
        let suffix = if kind == Kind::Counter && !om {
            "_total"
        } else {
            ""
        };
        let _ = write!(self.out, "# HELP {name}{suffix} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '"' if om => self.out.push_str("\\\""),
                c => self.out.push(c),
            }
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "\n# TYPE {name}{suffix} {kind}");
    }

    /// One sample line: `name{labels} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family with a single unlabelled sample.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, help, Kind::Counter);
        self.out.push_str(name);
        let _ = writeln!(self.out, "_total {value}");
    }

    /// A gauge family with a single unlabelled sample.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.header(name, help, Kind::Gauge);
        self.sample(name, "", value);
    }

    /// A histogram family: buckets (with exemplars in OpenMetrics), `_sum`, `_count` per series.
    pub(crate) fn histogram<K: WriteLabels>(
        &mut self,
        name: &str,
        help: &str,
        series: &[SeriesSnapshot<K>],
    ) {
        self.header(name, help, Kind::Histogram);
        let om = self.format == Format::OpenMetrics;
        for s in series {
            let mut labels = LabelList::default();
            match &s.series {
                Series::Labels(k) => k.write_labels(&mut labels),
                Series::Overflow => labels.push("otel_metric_overflow", "true"),
            }
            let labels = labels.finish();
            let sep = if labels.is_empty() { "" } else { "," };
            let h = &s.histogram;
            let mut cumulative = 0u64;
            for (i, le) in LE.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = write!(
                    self.out,
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
                );
                if let (true, Some(ex)) = (om, h.exemplars[i]) {
                    let ts = ex.timestamp.duration_since(UNIX_EPOCH).unwrap_or_default();
                    // 8 + 32 + 7 + 16 = 63 characters of label names and values: within the
                    // OpenMetrics limit of 128.
                    let _ = write!(
                        self.out,
                        " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}.{:03}",
                        ex.trace_id,
                        ex.span_id,
                        ex.value,
                        ts.as_secs(),
                        ts.subsec_millis()
                    );
                }
                self.out.push('\n');
            }
            self.sample(&format!("{name}_sum"), &labels, h.sum);
            self.sample(&format!("{name}_count"), &labels, h.count);
        }
    }
}

/// A label set being written: `name="value",…` with values escaped for both text formats.
#[derive(Default)]
pub(crate) struct LabelList {
    buf: String,
}

impl LabelList {
    /// Adds `name="value"`; `name` must be a valid label name (checked by callers).
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.start(name);
        escape_label_value(&mut self.buf, value);
        self.buf.push('"');
    }

    pub(crate) fn push_u64(&mut self, name: &str, value: u64) {
        self.start(name);
        self.buf.push_str(itoa::Buffer::new().format(value));
        self.buf.push('"');
    }

    pub(crate) fn push_display(&mut self, name: &str, value: &dyn Display) {
        let mut v = String::new();
        let _ = write!(v, "{value}");
        self.push(name, &v);
    }

    fn start(&mut self, name: &str) {
        if !self.buf.is_empty() {
            self.buf.push(',');
        }
        self.buf.push_str(name);
        self.buf.push_str("=\"");
    }

    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

/// Escapes a label value: backslash, double quote and newline, as both formats require.
/// Everything else, non-ASCII included, is written as UTF-8.
pub(crate) fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label sets that know how to write themselves.
pub(crate) trait WriteLabels {
    fn write_labels(&self, l: &mut LabelList);
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("format", &self.format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut l = LabelList::default();
        l.push("a", "q\"b\\n\nü");
        assert_eq!(l.finish(), r#"a="q\"b\\n\nü""#);
    }

    fn canonical(v: f64) -> String {
        let mut s = String::new();
        write_canonical_float(&mut s, v);
        s
    }

    #[test]
    fn canonical_floats_follow_the_openmetrics_examples() {
        // The examples of the OpenMetrics 1.0 specification, "Canonical Numbers".
        for (v, want) in [
            (0.0, "0.0"),
            (0.001, "0.001"),
            (0.002, "0.002"),
            (0.01, "0.01"),
            (0.1, "0.1"),
            (0.9, "0.9"),
            (0.95, "0.95"),
            (0.99, "0.99"),
            (0.999, "0.999"),
            (1.0, "1.0"),
            (1.7, "1.7"),
            (10.0, "10.0"),
            (1e-10, "1e-10"),
            (1e-9, "1e-09"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (1e5, "100000.0"),
            (1e6, "1e+06"),
            (1e10, "1e+10"),
            (1.5e-7, "1.5e-07"),
            (1234567.0, "1.234567e+06"),
            (1e100, "1e+100"),
            (-2.5, "-2.5"),
            (-3.0, "-3.0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(canonical(v), want, "{v:?}");
        }
    }

    #[test]
    fn canonical_bounds_match_the_buckets() {
        for (i, le) in LE.iter().enumerate() {
            let bound = super::super::family::DURATION_BUCKETS
                .get(i)
                .copied()
                .unwrap_or(f64::INFINITY);
            assert_eq!(*le, canonical(bound));
        }
    }

    #[test]
    fn bucket_bounds_of_registry_output_are_rewritten() {
        let mut s = String::from("kept\n");
        let start = s.len();
        s.push_str(concat!(
            "# TYPE h histogram\n",
            "h_bucket{le=\"1\"} 1\n",
            "h_bucket{a=\"x,le=\\\"2\\\"\",le=\"1e+06\",} 2 # {trace_id=\"t\"} 1 2\n",
            "h_bucket{le=\"+Inf\"} 3\n",
            "h_bucket{le=\"bogus\"} 3\n",
            "h_sum 4\n",
            "# TYPE g gauge\n",
            "g_bucket{le=\"1\"} 1\n",
        ));
        canonicalize_bucket_bounds(&mut s, start);
        assert_eq!(
            s,
            concat!(
                "kept\n",
                "# TYPE h histogram\n",
                "h_bucket{le=\"1.0\"} 1\n",
                "h_bucket{a=\"x,le=\\\"2\\\"\",le=\"1e+06\",} 2 # {trace_id=\"t\"} 1 2\n",
                "h_bucket{le=\"+Inf\"} 3\n",
                "h_bucket{le=\"bogus\"} 3\n",
                "h_sum 4\n",
                "# TYPE g gauge\n",
                "g_bucket{le=\"1\"} 1\n",
            )
        );
    }

    #[test]
    fn negotiation_respects_quality() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            Format::negotiate(Some(&h("application/openmetrics-text;q=0.2, text/plain"))),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some(&h("application/openmetrics-text;q=0"))),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some(&h("text/plain;q=0.5, application/OpenMetrics-Text"))),
            Format::OpenMetrics
        );
    }

    #[test]
    fn gzip_acceptance() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0"));
        assert!(!accepts_gzip(&h));
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, GZIP;q=0.5"),
        );
        assert!(accepts_gzip(&h));
    }
}
