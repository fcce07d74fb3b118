//! The status page as served: access rules, headers, both renderings from one snapshot, and
//! HTML escaping of everything user-controlled.

// Grouped under `status` so that `cargo test status` selects these tests.
mod status {

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use observe_core::metrics::{
        ErrorType, HttpMethod, HttpServerLabels, Metrics, MetricsConfig, Route, UrlScheme,
    };
    use observe_core::otel::opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
    };
    use observe_core::otel::opentelemetry::{Context, KeyValue};
    use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    use observe_core::status::StatusPage;
    use observe_core::trace::collector::SpanStore;

    const XSS: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn get(path: &str) -> http::Request<()> {
        http::Request::get(path).body(()).unwrap()
    }

    fn body(r: http::Response<Full<Bytes>>) -> String {
        let b = futures_executor(r.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// `Full` resolves on its first poll; no runtime is needed.
    fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context as TaskCx, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut TaskCx::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("Full<Bytes> body was not ready"),
        }
    }

    fn record(m: &Metrics, route: &str, status: u16, ms: u64) {
        m.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: Some(Route::intern(route)),
                status,
                error: None,
            },
            Duration::from_millis(ms),
            None,
        );
    }

    #[test]
    fn only_loopback_peers_are_answered_unless_allowed() {
        let page = StatusPage::builder()
            .metrics(Metrics::new(MetricsConfig::default()).leak())
            .no_span_store()
            .build();
        for ok in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(
                page.handle(&get("/observe"), addr(ok)).unwrap().status(),
                200,
                "{ok}"
            );
        }
        for denied in [
            "10.0.0.1:1",
            "192.168.1.5:80",
            "[2001:db8::1]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            let r = page.handle(&get("/observe.json"), addr(denied)).unwrap();
            assert_eq!(r.status(), 403, "{denied}");
            assert!(
                !body(r).contains("routes"),
                "nothing of the page leaks in a 403"
            );
        }
        assert_eq!(
            page.handle(&get("/observe"), None).unwrap().status(),
            403,
            "unknown peer"
        );

        let open = StatusPage::builder()
            .metrics(Metrics::new(MetricsConfig::default()).leak())
            .no_span_store()
            .allow_remote(true)
            .build();
        assert_eq!(
            open.handle(&get("/observe"), addr("10.0.0.1:1"))
                .unwrap()
                .status(),
            200
        );
        assert_eq!(open.handle(&get("/observe"), None).unwrap().status(), 200);
    }

    #[test]
    fn paths_methods_and_headers() {
        let page = StatusPage::builder()
            .metrics(Metrics::new(MetricsConfig::default()).leak())
            .no_span_store()
            .path("/_status")
            .build();
        let local = addr("127.0.0.1:9");
        assert!(page.handle(&get("/observe"), local).is_none());
        assert!(page.handle(&get("/_status/x"), local).is_none());
        assert!(page.handle(&get("/metrics"), local).is_none());

        let html = page.handle(&get("/_status?token=secret"), local).unwrap();
        assert_eq!(html.status(), 200);
        let h = html.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
        let text = body(html);
        assert!(!text.contains("secret"), "the query string is never shown");
        assert!(text.contains("href=\"_status.json\""));
        // Self-contained: no external asset of any kind.
        for needle in ["<script", "<link", "src=\"http", "@import", "url("] {
            assert!(!text.contains(needle), "{needle}");
        }

        let json = page.handle(&get("/_status.json"), local).unwrap();
        assert_eq!(json.headers()["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body(json)).unwrap();
        assert_eq!(
            v["rate_window_seconds"].as_f64().map(|w| w < 5.0),
            Some(true)
        );

        let head = page
            .handle(&http::Request::head("/_status").body(()).unwrap(), local)
            .unwrap();
        assert_eq!(head.status(), 200);
        assert!(body(head).is_empty());
        let post = page
            .handle(&http::Request::post("/_status").body(()).unwrap(), local)
            .unwrap();
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()["allow"], "GET, HEAD");
    }

    /// A page over real metrics and a real span store, after traffic on three routes.
    fn busy_page() -> (StatusPage, Arc<SpanStore>, String, String) {
        let metrics = Metrics::new(MetricsConfig::default()).leak();
        let store = Arc::new(SpanStore::new(500));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(store.processor())
            .build();
        let page = StatusPage::builder()
            .metrics(metrics)
            .span_store(Arc::clone(&store))
            .service_name("shop")
            .slow_threshold(Duration::from_millis(100))
            .build();
        for _ in 0..40 {
            record(metrics, "/fast", 200, 3);
        }
        for _ in 0..9 {
            record(metrics, "/users/{id}", 200, 20);
        }
        record(metrics, "/users/{id}", 500, 20);
        record(metrics, "/slow", 200, 800);

        let tracer = provider.tracer("shop");
        let t0 = std::time::SystemTime::now();
        // A slow request whose time went mostly to a downstream call.
        let root = tracer
            .span_builder("GET /slow")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.route", "/slow"),
                KeyValue::new("http.response.status_code", 200),
                KeyValue::new("url.query", "token=hunter2"),
                KeyValue::new("user_agent.original", "agent-secret-ua"),
            ])
            .with_start_time(t0)
            .start(&tracer);
        let slow_trace = root.span_context().trace_id();
        let cx = Context::new().with_span(root);
        let mut db = tracer
            .span_builder("db.query")
            .with_start_time(t0 + Duration::from_millis(50))
            .start_with_context(&tracer, &cx);
        db.end_with_timestamp(t0 + Duration::from_millis(750));
        cx.span()
            .end_with_timestamp(t0 + Duration::from_millis(800));

        // A failed request whose handler logged a message carrying user input.
        let mut failed = tracer
            .span_builder("GET /users/{id}")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.route", "/users/{id}"),
                KeyValue::new("http.response.status_code", 500),
                KeyValue::new("error.type", "500"),
            ])
            .start(&tracer);
        failed.add_event(
            format!("user {XSS} not found"),
            vec![KeyValue::new("password", "pw-secret")],
        );
        failed.set_status(Status::error("500"));
        let failed_trace = failed.span_context().trace_id();
        failed.end();
        let hex = |t: observe_core::otel::opentelemetry::trace::TraceId| t.to_string();
        (page, store, hex(slow_trace), hex(failed_trace))
    }

    #[test]
    fn html_shows_red_rows_recent_requests_and_waterfalls() {
        let (page, _store, slow_trace, failed_trace) = busy_page();
        let html = page.render_html();
        assert!(html.starts_with("<!doctype html>"));
        for route in ["/fast", "/users/{id}", "/slow"] {
            assert!(
            html.contains(&format!("<tr class=\"route\" data-kind=\"http_server\" data-method=\"GET\" data-route=\"{route}\">")),
            "{route}"
        );
        }
        assert!(html.contains("<td class=\"num count\">40</td>"));
        assert!(
            html.contains("<td class=\"num ratio err\">10.0%</td>"),
            "one in ten failed"
        );
        assert!(html.contains(&format!("data-trace-id=\"{slow_trace}\"")));
        assert!(html.contains(&format!("data-trace-id=\"{failed_trace}\"")));
        assert!(html.contains("<li class=\"share\" data-service=\"shop\">shop: <b>100%</b>"));
        assert!(html.contains("db.query"));
        // Never header values, query strings, or event attributes.
        for secret in ["hunter2", "agent-secret-ua", "pw-secret"] {
            assert!(!html.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn user_controlled_text_renders_escaped() {
        let (page, _store, _, _) = busy_page();
        let html = page.render_html();
        assert!(!html.contains("<script>"), "raw script tag in the page");
        assert!(!html.contains("<img src=x"), "raw img tag in the page");
        assert!(html.contains(
        "user &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp; not found"
    ));
        // Routes and service names go through the same escaping, in text and attributes.
        let metrics = Metrics::new(MetricsConfig::default()).leak();
        record(metrics, XSS, 200, 1);
        let page = StatusPage::builder()
            .metrics(metrics)
            .no_span_store()
            .service_name(XSS)
            .build();
        let html = page.render_html();
        assert!(!html.contains("<script>") && !html.contains("<img src=x"));
        assert!(html.contains("data-route=\"&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;\""));
        // JSON keeps the text exactly (it is data, escaped by JSON's rules).
        let v: serde_json::Value = serde_json::from_str(&page.render_json()).unwrap();
        assert_eq!(v["service"], XSS);
        assert_eq!(v["routes"][0]["name"], XSS);
    }

    #[test]
    fn json_carries_the_same_data() {
        let (page, _store, slow_trace, failed_trace) = busy_page();
        let v: serde_json::Value = serde_json::from_str(&page.render_json()).unwrap();
        let routes = v["routes"].as_array().unwrap();
        let users = routes.iter().find(|r| r["name"] == "/users/{id}").unwrap();
        assert_eq!(users["count"], 10);
        assert_eq!(users["errors"], 1);
        assert_eq!(users["error_ratio"], 0.1);
        assert_eq!(users["buckets"].as_array().unwrap().len(), 15);
        // 10 observations of 20 ms in (0.01, 0.025]: the median interpolates to 17.5 ms.
        assert!((users["p50_seconds"].as_f64().unwrap() - 0.0175).abs() < 1e-9);
        let slow = routes.iter().find(|r| r["name"] == "/slow").unwrap();
        // One 800 ms observation in (0.75, 1]: p99 interpolates to 0.75 + 0.25 × 0.99.
        assert!((slow["p99_seconds"].as_f64().unwrap() - 0.9975).abs() < 1e-9);
        let recent = v["recent"].as_array().unwrap();
        let slow_recent = recent.iter().find(|r| r["route"] == "/slow").unwrap();
        let req = &slow_recent["slow"][0];
        assert_eq!(req["trace_id"], slow_trace);
        assert_eq!(req["duration_seconds"], 0.8);
        let wf = &req["waterfall"];
        assert_eq!(wf["spans"][1]["name"], "db.query");
        assert_eq!(wf["spans"][1]["depth"], 1);
        let users_recent = recent.iter().find(|r| r["route"] == "/users/{id}").unwrap();
        assert_eq!(users_recent["failed"][0]["trace_id"], failed_trace);
        assert_eq!(users_recent["failed"][0]["status_code"], 500);
        assert!(v["health"]["span_store_len"].as_u64().unwrap() >= 3);
        assert_eq!(v["health"]["series"]["http_server"], 4);
    }

    #[test]
    fn evicted_spans_keep_the_request_listed_without_a_waterfall() {
        let (page, store, slow_trace, _) = busy_page();
        page.tick(); // moves them into the rings
        store.clear();
        let snap = page.snapshot();
        let view = snap
            .recent
            .iter()
            .flat_map(|r| r.slow.iter())
            .find(|v| v.request.trace_id.to_hex() == *slow_trace.as_bytes())
            .expect("still listed");
        assert!(view.waterfall.is_none());
        assert!(page
            .render_html()
            .contains("no longer in the in-process span store"));
    }

    #[test]
    fn cancelled_requests_are_not_errors() {
        let metrics = Metrics::new(MetricsConfig::default()).leak();
        let page = StatusPage::builder()
            .metrics(metrics)
            .no_span_store()
            .build();
        record(metrics, "/c", 200, 1);
        metrics.http_server().record(
            HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: Some(Route::intern("/c")),
                status: 0,
                error: Some(ErrorType::Cancelled),
            },
            Duration::from_millis(1),
            None,
        );
        let row = &page.snapshot().rows[0];
        assert_eq!((row.count, row.errors, row.cancelled), (2, 0, 1));
        assert_eq!(row.error_ratio, Some(0.0));
    }

    #[test]
    fn the_sampler_thread_ticks_and_stops() {
        let (page, _store, _, _) = busy_page();
        assert!(page.recent().is_empty());
        let handle = page.spawn_sampler(Duration::from_millis(10)).unwrap();
        let mut waited = 0;
        while page.recent().is_empty() && waited < 500 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(page.recent().len(), 2, "the slow and the failed request");
        drop(handle); // joins: would hang if the thread did not stop
    }

    #[test]
    fn disabled_unless_configured() {
        use observe_core::config::Config;
        assert!(StatusPage::from_config(&Config::default()).is_none());
        let cfg = Config::default()
            .with_env_from(|k| (k == "OBSERVE_STATUS_PAGE").then(|| "true".to_owned()))
            .unwrap();
        assert!(StatusPage::from_config(&cfg).is_some());
    }

    #[test]
    fn grpc_methods_get_rows_of_their_own() {
        use observe_core::metrics::{GrpcCode, RpcLabels, RpcMethod};
        use observe_core::status::RowKind;
        let metrics = Metrics::new(MetricsConfig::default()).leak();
        let page = StatusPage::builder()
            .metrics(metrics)
            .no_span_store()
            .build();
        let method = RpcMethod::intern("shop.Cart/Add");
        for code in [
            GrpcCode::Ok,
            GrpcCode::Ok,
            GrpcCode::NotFound,
            GrpcCode::Unavailable,
        ] {
            metrics.rpc_server().record(
                RpcLabels {
                    method,
                    code,
                    error: None,
                },
                Duration::from_millis(40),
                None,
            );
        }
        metrics.rpc_client().record(
            RpcLabels {
                method: RpcMethod::intern("stock.Stock/Reserve"),
                code: GrpcCode::NotFound,
                error: None,
            },
            Duration::from_millis(5),
            None,
        );
        let rows = page.snapshot().rows;
        let server = rows.iter().find(|r| r.kind == RowKind::GrpcServer).unwrap();
        assert_eq!((server.method, server.name), ("", "shop.Cart/Add"));
        // Server side, NOT_FOUND is the caller's problem; UNAVAILABLE is ours.
        assert_eq!((server.count, server.errors), (4, 1));
        let client = rows.iter().find(|r| r.kind == RowKind::GrpcClient).unwrap();
        assert_eq!(
            (client.name, client.errors),
            ("stock.Stock/Reserve", 1),
            "client side every non-OK code fails"
        );
        let html = page.render_html();
        assert!(html
            .contains("data-kind=\"grpc_server\" data-method=\"\" data-route=\"shop.Cart/Add\""));
    }
}
