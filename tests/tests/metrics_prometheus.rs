//! observe's exposition against the real Prometheus tools: `promtool check metrics` on the
//! Prometheus text output, and a real Prometheus scraping both formats over loopback and
//! returning the recorded values (and, for OpenMetrics, the exemplars) through its HTTP API.

use std::time::Duration;

use observe_core::context::{SpanId, TraceId};
use observe_core::metrics::prometheus_client::metrics::{
    counter::Counter, family::Family, histogram::Histogram,
};
use observe_core::metrics::{
    ErrorType, Exemplar, Format, GrpcCode, HttpClientLabels, HttpMethod, HttpServerLabels, Metrics,
    MetricsConfig, MetricsServer, Route, RpcLabels, RpcMethod, ServerAddress, UrlScheme,
};
use observe_tests::prometheus::{promtool_check_metrics, Prometheus, ScrapeJob};

/// A route template with every character the formats must escape, and some that they must not.
const NASTY_ROUTE: &str = "/q\"uote/back\\slash/new\nline/ünï/{id}";

/// A user label set. (`#[derive(EncodeLabelSet)]` needs `prometheus-client` as a direct
/// dependency; an array of pairs does not.)
type Outcome = [(&'static str, &'static str); 1];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exemplar() -> Exemplar {
    Exemplar {
        trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap(),
    }
}

/// Metrics with one of everything: server and client, gRPC, overflow, a cancelled request,
/// unmatched routes, a nasty route, resource attributes and a user counter.
fn populated() -> &'static Metrics {
    let m = Metrics::new(
        MetricsConfig::default()
            .with_cardinality_limit(4)
            .with_resource_attribute("service.name", "checkout")
            .with_resource_attribute("service.version", "1.2.3")
            .with_resource_attribute("service.instance.id", "i-1")
            .with_resource_attribute("deployment.environment.name", "test \"env\""),
    )
    .leak();
    let http = m.http_server();
    let get = |route: Option<&str>, status| HttpServerLabels {
        method: HttpMethod::Get,
        scheme: UrlScheme::Http,
        route: route.map(Route::intern),
        status,
        error: None,
    };
    let _idle = http.start(HttpMethod::Post, UrlScheme::Https);
    let in_flight = http.start(HttpMethod::Get, UrlScheme::Http);
    for _ in 0..3 {
        http.record(get(Some("/users/{id}"), 200), ms(30), None);
    }
    http.record(get(Some("/users/{id}"), 200), ms(300), Some(exemplar()));
    http.record(get(None, 404), ms(1), None);
    http.record(get(Some(NASTY_ROUTE), 500), ms(2), None);
    http.record(
        HttpServerLabels {
            status: 0,
            error: Some(ErrorType::Cancelled),
            ..get(Some("/slow"), 0)
        },
        ms(8000),
        None,
    );
    // Past the limit of 4 label sets: overflow.
    http.record(get(Some("/overflow/a"), 200), ms(3), None);
    http.record(get(Some("/overflow/b"), 200), ms(3), None);
    std::mem::forget(in_flight); // stays at 1 for the scrape

    m.http_client().record(
        HttpClientLabels {
            method: HttpMethod::Post,
            server_address: Some(ServerAddress::intern("payments.internal")),
            status: 503,
            error: None,
        },
        ms(40),
        None,
    );
    m.rpc_server().record(
        RpcLabels {
            method: RpcMethod::intern("shop.Cart/Checkout"),
            code: GrpcCode::Unavailable,
            error: None,
        },
        ms(12),
        Some(exemplar()),
    );
    m.rpc_client().record(
        RpcLabels {
            method: RpcMethod::OTHER,
            code: GrpcCode::Ok,
            error: None,
        },
        ms(5),
        None,
    );
    let orders = Family::<Outcome, Counter>::default();
    m.register("orders_placed", "Orders placed, by outcome", orders.clone())
        .unwrap();
    orders.get_or_create(&[("outcome", "accepted")]).inc_by(7);
    // A user histogram whose bounds prometheus-client alone writes differently per format
    // (`1`/`1e+06` in text, `1.0`/`1000000.0` in OpenMetrics).
    let sizes = Histogram::new([1.0, 512.0, 1e6]);
    m.register("payload_size_bytes", "Payload sizes", sizes.clone())
        .unwrap();
    sizes.observe(100.0);
    m
}

#[test]
fn promtool_accepts_prometheus_text_output() {
    let m = populated();
    let mut body = Vec::new();
    m.encode(Format::PrometheusText, &mut body).unwrap();
    let Some(result) = promtool_check_metrics(&body) else {
        return;
    };
    let text = String::from_utf8(body).unwrap();
    result.unwrap_or_else(|e| panic!("{e}\n--- body ---\n{text}"));
    // Sanity: what promtool checked is the populated output, not an empty body.
    assert!(text.contains("http_server_request_duration_seconds_bucket"));
    assert!(text.contains(r#"otel_metric_overflow="true""#));
    assert!(text.contains(r#"http_route="/q\"uote/back\\slash/new\nline/ünï/{id}""#));
}

#[test]
fn prometheus_scrapes_both_formats_and_stores_exemplars() {
    let m = populated();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (negotiating, forced_text) = rt.block_on(async {
        let a = MetricsServer::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_metrics(m);
        let b = MetricsServer::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_metrics(m)
            .with_format(Format::PrometheusText);
        (a, b)
    });
    let (addr_om, addr_text) = (
        negotiating.local_addr().unwrap(),
        forced_text.local_addr().unwrap(),
    );
    rt.spawn(negotiating.run());
    rt.spawn(forced_text.run());

    // Prometheus 2.42 has no `scrape_protocols` option and always prefers OpenMetrics, so the
    // text format is scraped from a second endpoint that ignores Accept.
    let Some(prom) = Prometheus::start(&[
        ScrapeJob::new("om", addr_om),
        ScrapeJob::new("text", addr_text),
    ]) else {
        return;
    };

    for job in ["om", "text"] {
        let q = format!(
            r#"http_server_request_duration_seconds_count{{job="{job}",http_route="/users/{{id}}"}}"#
        );
        let r = prom
            .wait_for_query(&q, Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "no {q} after 30s; targets: {}\nlog:\n{}",
                    prom.targets(),
                    prom.log()
                )
            });
        assert_eq!(r[0]["value"][1], "4", "{job}: {r}");
        let metric = &r[0]["metric"];
        assert_eq!(metric["http_request_method"], "GET");
        assert_eq!(metric["url_scheme"], "http");
        assert_eq!(metric["http_response_status_code"], "200");
        assert!(metric.get("error_type").is_none(), "{job}: {metric}");
    }

    // Both targets are healthy: Prometheus parsed both bodies without error.
    let targets = prom.targets();
    for t in targets.as_array().unwrap() {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["lastError"], "", "{t}");
    }

    let one = |q: &str| -> serde_json::Value {
        let r = prom.query(q);
        assert_eq!(r.as_array().map(Vec::len), Some(1), "{q} -> {r}");
        r[0].clone()
    };
    for job in ["om", "text"] {
        let bucket = |le: &str| {
            one(&format!(
                r#"http_server_request_duration_seconds_bucket{{job="{job}",http_route="/users/{{id}}",le="{le}"}}"#
            ))["value"][1]
                .clone()
        };
        // 3 of 4 observations at 30 ms land at or below 0.05 s; all 4 at or below 1 s. Both
        // formats write bounds in the OpenMetrics canonical form (`1.0`), and Prometheus 2.42
        // stores the label value as written, so the series are the same whatever the format.
        assert_eq!(bucket("0.05"), "3", "{job}");
        assert_eq!(bucket("1.0"), "4", "{job}");
        let sum = one(&format!(
            r#"http_server_request_duration_seconds_sum{{job="{job}",http_route="/users/{{id}}"}}"#
        ));
        let sum: f64 = sum["value"][1].as_str().unwrap().parse().unwrap();
        assert!((sum - 0.39).abs() < 1e-9, "{job}: {sum}");

        // Escaping round-trips through Prometheus' own parsers.
        let nasty = prom.query(&format!(
            r#"http_server_request_duration_seconds_count{{job="{job}",http_response_status_code="500"}}"#
        ));
        assert_eq!(nasty[0]["metric"]["http_route"], NASTY_ROUTE, "{job}");
        assert_eq!(nasty[0]["metric"]["error_type"], "500", "{job}");

        // Unmatched route: no http_route label at all.
        let unmatched = one(&format!(
            r#"http_server_request_duration_seconds_count{{job="{job}",http_response_status_code="404"}}"#
        ));
        assert!(unmatched["metric"].get("http_route").is_none(), "{job}");

        // Cancelled: no status code label, error_type="cancelled".
        let cancelled = one(&format!(
            r#"http_server_request_duration_seconds_count{{job="{job}",error_type="cancelled"}}"#
        ));
        assert!(cancelled["metric"]
            .get("http_response_status_code")
            .is_none());
        assert_eq!(cancelled["metric"]["http_route"], "/slow");

        let overflow = one(&format!(
            r#"http_server_request_duration_seconds_count{{job="{job}",otel_metric_overflow="true"}}"#
        ));
        assert_eq!(overflow["value"][1], "2", "{job}");

        let active = one(&format!(
            r#"http_server_active_requests{{job="{job}",http_request_method="GET",url_scheme="http"}}"#
        ));
        assert_eq!(active["value"][1], "1");
        let idle = one(&format!(
            r#"http_server_active_requests{{job="{job}",http_request_method="POST",url_scheme="https"}}"#
        ));
        assert_eq!(idle["value"][1], "0");

        let client = one(&format!(
            r#"http_client_request_duration_seconds_count{{job="{job}",server_address="payments.internal"}}"#
        ));
        assert_eq!(client["metric"]["error_type"], "503");
        let rpc = one(&format!(
            r#"rpc_server_call_duration_seconds_count{{job="{job}",rpc_method="shop.Cart/Checkout"}}"#
        ));
        assert_eq!(rpc["metric"]["rpc_system_name"], "grpc");
        assert_eq!(rpc["metric"]["rpc_response_status_code"], "UNAVAILABLE");
        assert_eq!(rpc["metric"]["error_type"], "UNAVAILABLE");
        one(&format!(
            r#"rpc_client_call_duration_seconds_count{{job="{job}",rpc_method="_OTHER",rpc_response_status_code="OK"}}"#
        ));

        let info = one(&format!(r#"target_info{{job="{job}"}}"#));
        assert_eq!(info["metric"]["service_name"], "checkout");
        assert_eq!(info["metric"]["service_version"], "1.2.3");
        assert_eq!(info["metric"]["service_instance_id"], "i-1");
        assert_eq!(
            info["metric"]["deployment_environment_name"],
            "test \"env\""
        );

        let orders = one(&format!(
            r#"orders_placed_total{{job="{job}",outcome="accepted"}}"#
        ));
        assert_eq!(orders["value"][1], "7");
        one(&format!(r#"observe_metric_overflow_total{{job="{job}"}}"#));
        one(&format!(r#"observe_spans_dropped_total{{job="{job}"}}"#));
        for p in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let v = one(&format!(r#"{p}{{job="{job}"}}"#));
            let v: f64 = v["value"][1].as_str().unwrap().parse().unwrap();
            // CPU time may still round to 0 in a short test; the others are positive.
            assert!(v > 0.0 || p == "process_cpu_seconds_total", "{p} = {v}");
        }
    }

    // Every bucket bound, observe's and the user's histogram's, is the same label value
    // whichever format Prometheus scraped.
    for family in [
        "http_server_request_duration_seconds_bucket",
        "payload_size_bytes_bucket",
    ] {
        let les = |job: &str| {
            let r = prom.query(&format!(r#"{family}{{job="{job}"}}"#));
            let mut les: Vec<String> = r
                .as_array()
                .unwrap_or_else(|| panic!("{family}: {r}"))
                .iter()
                .map(|s| s["metric"]["le"].as_str().unwrap().to_owned())
                .collect();
            les.sort();
            les.dedup();
            les
        };
        let om = les("om");
        assert!(om.len() > 3, "{family}: {om:?}");
        assert_eq!(om, les("text"), "{family}");
    }
    assert_eq!(
        one(r#"payload_size_bytes_bucket{job="text",le="1e+06"}"#)["value"][1],
        "1"
    );
    assert_eq!(
        one(r#"payload_size_bytes_bucket{job="text",le="512.0"}"#)["value"][1],
        "1"
    );

    // Exemplars: the OpenMetrics job carries the sampled request's trace on its bucket.
    let ex = prom.query_exemplars(r#"http_server_request_duration_seconds_bucket{job="om"}"#);
    let series = ex.as_array().expect("exemplar series");
    let hit = series
        .iter()
        .flat_map(|s| {
            s["exemplars"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (s.clone(), e))
        })
        .find(|(_, e)| e["labels"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        .unwrap_or_else(|| panic!("no exemplar with our trace id: {ex}"));
    assert_eq!(hit.1["labels"]["span_id"], "00f067aa0ba902b7");
    assert_eq!(hit.1["value"], "0.3");
    assert_eq!(
        hit.0["seriesLabels"]["le"], "0.5",
        "the 300 ms bucket: {}",
        hit.0
    );
    let rpc_ex = prom.query_exemplars(r#"rpc_server_call_duration_seconds_bucket{job="om"}"#);
    assert!(
        rpc_ex
            .to_string()
            .contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{rpc_ex}"
    );

    // The text format carries none.
    let none = prom.query_exemplars(r#"http_server_request_duration_seconds_bucket{job="text"}"#);
    assert!(
        none.as_array().is_none_or(|a| a
            .iter()
            .all(|s| s["exemplars"].as_array().is_none_or(Vec::is_empty))),
        "{none}"
    );
    drop(prom);
    rt.shutdown_timeout(Duration::from_secs(1));
}
