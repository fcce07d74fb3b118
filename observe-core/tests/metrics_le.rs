//! Histogram bucket bounds are spelled the same in both exposition formats, so a Prometheus
//! server that switches between OpenMetrics and the text format by content negotiation keeps
//! the same `le` series: observe's own families and users' histograms on the registry alike.

use std::time::Duration;

use observe_core::metrics::prometheus_client::metrics::{family::Family, histogram::Histogram};
use observe_core::metrics::{
    Format, HttpMethod, HttpServerLabels, Metrics, MetricsConfig, Route, UrlScheme,
};

fn encode(m: &Metrics, f: Format) -> String {
    let mut b = Vec::new();
    m.encode(f, &mut b).unwrap();
    String::from_utf8(b).unwrap()
}

/// `(the other labels, sorted, and le)` of every `<family>_bucket` sample, in body order. (The
/// label order is not part of a series' identity: prometheus-client writes `le` first in
/// OpenMetrics and last in the text format. No label value in these tests holds a comma.)
fn bucket_labels(body: &str, family: &str) -> Vec<(Vec<String>, String)> {
    let prefix = format!("{family}_bucket{{");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let labels = &rest[..rest.find("} ").expect("end of labels")];
            let (mut others, mut le) = (Vec::new(), None);
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                match pair.strip_prefix("le=") {
                    Some(v) => le = Some(v.trim_matches('"').to_owned()),
                    None => others.push(pair.to_owned()),
                }
            }
            others.sort();
            (others, le.expect("an le label"))
        })
        .collect()
}

fn metrics_with_custom_histogram(bounds: &[f64]) -> Metrics {
    let m = Metrics::new(MetricsConfig::default());
    m.http_server().record(
        HttpServerLabels {
            method: HttpMethod::Get,
            scheme: UrlScheme::Http,
            route: Some(Route::intern("/le")),
            status: 200,
            error: None,
        },
        Duration::from_millis(3),
        None,
    );
    let bounds = bounds.to_vec();
    let sizes = Family::<[(&'static str, &'static str); 1], Histogram, _>::new_with_constructor(
        move || Histogram::new(bounds.clone()),
    );
    m.register("payload_size", "Payload sizes", sizes.clone())
        .unwrap();
    sizes.get_or_create(&[("kind", "upload")]).observe(3.0);
    m
}

#[test]
fn default_buckets_have_identical_canonical_le_in_both_formats() {
    let m = metrics_with_custom_histogram(&[1.0]);
    let om = bucket_labels(
        &encode(&m, Format::OpenMetrics),
        "http_server_request_duration_seconds",
    );
    let text = bucket_labels(
        &encode(&m, Format::PrometheusText),
        "http_server_request_duration_seconds",
    );
    assert_eq!(om, text);
    let les: Vec<&str> = om.iter().map(|(_, le)| le.as_str()).collect();
    assert_eq!(
        les,
        [
            "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5",
            "5.0", "7.5", "10.0", "+Inf"
        ]
    );
}

#[test]
fn custom_buckets_on_the_registry_have_identical_canonical_le_in_both_formats() {
    // Bounds where prometheus-client's two encoders disagree (Go's `1`/`1e+06` in text, `dtoa`'s
    // `1.0`/`1000000.0`/`1e-5` in OpenMetrics) and where the canonical form switches layout.
    let m = metrics_with_custom_histogram(&[1e-5, 0.0001, 0.5, 1.0, 3.0, 100000.0, 1e6, 2.5e7]);
    let om = bucket_labels(&encode(&m, Format::OpenMetrics), "payload_size");
    let text = bucket_labels(&encode(&m, Format::PrometheusText), "payload_size");
    assert_eq!(om, text);
    let les: Vec<&str> = om.iter().map(|(_, le)| le.as_str()).collect();
    assert_eq!(
        les,
        ["1e-05", "0.0001", "0.5", "1.0", "3.0", "100000.0", "1e+06", "2.5e+07", "+Inf"]
    );
    // Only the bound changed: the other labels and the cumulative counts are as written.
    assert!(
        om.iter().all(|(rest, _)| rest == &["kind=\"upload\""]),
        "{om:?}"
    );
    let text_body = encode(&m, Format::PrometheusText);
    assert!(text_body.contains("payload_size_bucket{kind=\"upload\",le=\"3.0\"} 1\n"));
    assert!(text_body.contains("payload_size_bucket{kind=\"upload\",le=\"1.0\"} 0\n"));
}
