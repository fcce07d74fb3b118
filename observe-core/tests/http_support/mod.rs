//! Shared by the `http_*` test binaries: an in-memory span exporter and a Prometheus text
//! reader. (A directory module, so cargo does not build it as a test of its own.)
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use observe_core::otel::opentelemetry::trace::TracerProvider as _;
use observe_core::otel::opentelemetry_sdk::error::OTelSdkResult;
use observe_core::otel::opentelemetry_sdk::trace::{
    SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

/// Finished spans, in the order they ended.
#[derive(Clone, Debug, Default)]
pub struct Spans(pub Arc<Mutex<Vec<SpanData>>>);

impl Spans {
    pub fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Debug)]
struct Collecting(Spans);

impl SpanExporter for Collecting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0 .0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A real SDK tracer exporting synchronously into memory.
pub fn collecting_tracer() -> (&'static SdkTracer, Spans) {
    let spans = Spans::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(Collecting(spans.clone()))
        .build();
    let tracer: &'static SdkTracer = Box::leak(Box::new(provider.tracer("observe-test")));
    // Keep the provider alive for the whole test binary.
    Box::leak(Box::new(provider));
    (tracer, spans)
}

/// The value of the sample `name{labels}` in Prometheus text, matching labels as a subset.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            all.then(|| value.parse().ok()).flatten()
        })
}

/// Every label set (as the raw `{...}` text) of series named `name`.
pub fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s))
        .collect()
}

/// A string attribute of a span.
pub fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// A fresh registry of its own, so tests in one binary do not see each other's requests.
pub fn fresh_metrics() -> &'static observe_core::metrics::Metrics {
    observe_core::metrics::Metrics::new(Default::default()).leak()
}

/// The registry in Prometheus text format.
pub fn metrics_text(metrics: &observe_core::metrics::Metrics) -> String {
    let mut buf = Vec::new();
    metrics
        .encode(observe_core::metrics::Format::PrometheusText, &mut buf)
        .expect("encode metrics");
    String::from_utf8(buf).expect("metrics text is UTF-8")
}
