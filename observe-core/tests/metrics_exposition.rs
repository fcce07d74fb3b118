//! Exposition behaviour end to end: the standalone server over loopback (negotiation, gzip,
//! 404/405), exemplars only in OpenMetrics, the overflow series, custom registration errors,
//! and consistent histograms while recording runs concurrently with scrapes.

use std::io::Read;
use std::time::Duration;

use observe_core::context::{SpanId, TraceId};
use observe_core::metrics::prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge,
};
use observe_core::metrics::{
    Exemplar, Format, HttpMethod, HttpServerLabels, Metrics, MetricsConfig, MetricsServer,
    RegisterError, Route, UrlScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn labels(route: &str, status: u16) -> HttpServerLabels {
    HttpServerLabels {
        method: HttpMethod::Get,
        scheme: UrlScheme::Http,
        route: Some(Route::intern(route)),
        status,
        error: None,
    }
}

fn exemplar() -> Exemplar {
    Exemplar {
        trace_id: TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
    }
}

fn encode(m: &Metrics, f: Format) -> String {
    let mut b = Vec::new();
    m.encode(f, &mut b).unwrap();
    String::from_utf8(b).unwrap()
}

/// `(status, lowercase headers, body)` of a raw HTTP/1.1 request with `Connection: close`.
async fn request(addr: std::net::SocketAddr, head: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("server answered")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = headers[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 4 + size..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_negotiates_format_and_gzip() {
    let m = Metrics::new(MetricsConfig::default()).leak();
    m.http_server().record(
        labels("/x", 200),
        Duration::from_millis(20),
        Some(exemplar()),
    );
    let server = MetricsServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_metrics(m);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // What Prometheus 2.42 sends, plus gzip.
    let (status, headers, body) = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\
         Accept-Encoding: gzip\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{headers}"
    );
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    let mut om = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut om)
        .unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(
        om.contains(
            r#"# {trace_id="0af7651916cd43dd8448eb211c80319c",span_id="b7ad6b7169203331"} 0.02 "#
        ),
        "{om}"
    );

    // curl's default: Prometheus text, uncompressed, no exemplars, no EOF.
    let (status, headers, body) = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: */*\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(!headers.contains("content-encoding"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",url_scheme="http",http_route="/x",http_response_status_code="200",le="0.025"} 1"#), "{text}");
    assert!(!text.contains("# EOF") && !text.contains("trace_id"));

    let (status, _, _) = request(
        addr,
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404);
    let (status, headers, _) = request(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert!(headers.contains("allow: get, head"));

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[test]
fn exemplars_appear_only_in_openmetrics_and_on_their_bucket() {
    let m = Metrics::new(MetricsConfig::default());
    m.http_server().record(
        labels("/e", 200),
        Duration::from_millis(700),
        Some(exemplar()),
    );
    m.http_server()
        .record(labels("/e", 200), Duration::from_millis(1), None);
    let om = encode(&m, Format::OpenMetrics);
    let with_ex: Vec<&str> = om.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(with_ex.len(), 1, "{om}");
    assert!(
        with_ex[0].contains(r#"le="0.75"} 2 # {trace_id="#),
        "{}",
        with_ex[0]
    );
    // The exemplar's label set is within the OpenMetrics 128-character limit.
    let set = &with_ex[0][with_ex[0].find(" # {").unwrap() + 4..with_ex[0].rfind('}').unwrap()];
    let chars: usize = set
        .split(',')
        .map(|kv| kv.replace(['"', '='], "").chars().count())
        .sum();
    assert!(chars <= 128, "{chars}");
    assert!(!encode(&m, Format::PrometheusText).contains("trace_id"));
}

#[test]
fn overflow_series_carries_only_the_overflow_label() {
    let m = Metrics::new(MetricsConfig::default().with_cardinality_limit(2));
    for r in ["/a", "/b", "/c", "/d"] {
        m.http_server()
            .record(labels(r, 200), Duration::from_millis(1), None);
    }
    let text = encode(&m, Format::PrometheusText);
    assert!(
        text.contains(
            r#"http_server_request_duration_seconds_count{otel_metric_overflow="true"} 2"#
        ),
        "{text}"
    );
    assert!(!text.contains(r#"http_route="/c""#) && !text.contains(r#"http_route="/d""#));
    assert_eq!(m.http_server().series_count(), 2);
}

#[test]
fn custom_metrics_are_checked_at_registration() {
    let m = Metrics::new(MetricsConfig::default());
    assert_eq!(
        m.register("bad name", "x", Counter::<u64>::default()),
        Err(RegisterError::InvalidName("bad name".into()))
    );
    assert_eq!(
        m.register("__reserved", "x", Gauge::<i64>::default()),
        Err(RegisterError::InvalidName("__reserved".into()))
    );
    assert_eq!(
        m.register("orders_total", "x", Counter::<u64>::default()),
        Err(RegisterError::TotalSuffix("orders_total".into()))
    );
    assert_eq!(
        m.register("observe_spans_dropped", "x", Counter::<u64>::default()),
        Err(RegisterError::Duplicate("observe_spans_dropped".into()))
    );
    let bad_labels = Family::<Vec<(String, String)>, Counter>::default();
    bad_labels
        .get_or_create(&vec![("__name__".into(), "x".into())])
        .inc();
    assert!(matches!(
        m.register("tainted", "x", bad_labels),
        Err(RegisterError::InvalidLabelName { label, .. }) if label == "__name__"
    ));

    let ok = Family::<[(&'static str, &'static str); 1], Counter>::default();
    m.register("orders_placed", "Orders placed, by outcome", ok.clone())
        .unwrap();
    assert_eq!(
        m.register("orders_placed", "again", Counter::<u64>::default()),
        Err(RegisterError::Duplicate("orders_placed".into()))
    );
    ok.get_or_create(&[("outcome", "rejected")]).inc_by(2);
    let om = encode(&m, Format::OpenMetrics);
    assert!(
        om.contains("orders_placed_total{outcome=\"rejected\"} 2"),
        "{om}"
    );
    // User metrics come before the single EOF.
    assert_eq!(om.matches("# EOF").count(), 1);
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn scrapes_during_recording_see_consistent_histograms() {
    let m = Metrics::new(MetricsConfig::default());
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let m = &m;
            s.spawn(move || {
                for i in 0..20_000u64 {
                    m.http_server().record(
                        labels(["/a", "/b"][(i % 2) as usize], 200),
                        Duration::from_micros((i * 37 + t) % 3_000_000),
                        (i % 100 == 0).then(exemplar),
                    );
                }
            });
        }
        for _ in 0..30 {
            let text = encode(&m, Format::OpenMetrics);
            for series in ["/a", "/b"] {
                let inf = format!(
                    r#"http_route="{series}",http_response_status_code="200",le="+Inf"}} "#
                );
                let count = format!(
                    r#"http_server_request_duration_seconds_count{{http_request_method="GET",url_scheme="http",http_route="{series}",http_response_status_code="200"}} "#
                );
                let value = |needle: &str| -> Option<u64> {
                    let line = text.lines().find(|l| l.contains(needle))?;
                    line[line.find(needle)? + needle.len()..]
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                };
                assert_eq!(value(&inf), value(&count), "+Inf bucket and _count differ");
            }
        }
    });
    let total: u64 = m
        .http_server()
        .snapshot()
        .iter()
        .map(|s| s.histogram.count)
        .sum();
    assert_eq!(total, 60_000);
    let last = encode(&m, Format::OpenMetrics);
    assert!(last.contains(r#"http_route="/a",http_response_status_code="200",le="+Inf"} 30000"#));
}
