//! The data behind the status page: the bounded rings of recent slow and failed requests,
//! how spans become requests, ingestion from the span store, and waterfalls.

// Grouped under `status` so that `cargo test status` selects these tests.
mod status {

    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use observe_core::otel::opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
    };
    use observe_core::otel::opentelemetry::{Context, KeyValue};
    use observe_core::otel::opentelemetry_sdk::error::OTelSdkResult;
    use observe_core::otel::opentelemetry_sdk::trace::{
        SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    };
    use observe_core::status::{RecentRequest, RecentRequests, Waterfall, OTHER_ROUTES};
    use observe_core::trace::collector::SpanStore;

    const MS: Duration = Duration::from_millis(1);

    /// Collects every finished span, in end order.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    struct Spans {
        provider: SdkTracerProvider,
        exporter: Collect,
    }

    impl Spans {
        fn new() -> Self {
            let exporter = Collect::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            Spans { provider, exporter }
        }
        fn tracer(&self, scope: &'static str) -> SdkTracer {
            self.provider.tracer(scope)
        }
        fn finished(&self) -> Vec<SpanData> {
            self.exporter.0.lock().unwrap().clone()
        }
    }

    /// Ends a span started at `t0 + start` that lasted `dur`, under `parent`.
    #[allow(clippy::too_many_arguments)]
    fn span(
        tracer: &SdkTracer,
        parent: &Context,
        name: &str,
        kind: SpanKind,
        attrs: Vec<KeyValue>,
        t0: SystemTime,
        start: Duration,
        dur: Duration,
    ) -> Context {
        let mut s = tracer
            .span_builder(name.to_owned())
            .with_kind(kind)
            .with_attributes(attrs)
            .with_start_time(t0 + start)
            .start_with_context(tracer, parent);
        s.end_with_timestamp(t0 + start + dur);
        parent.with_remote_span_context(s.span_context().clone())
    }

    fn server(tracer: &SdkTracer, route: &str, status: i64, dur: Duration, end_offset: Duration) {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + end_offset;
        span(
            tracer,
            &Context::new(),
            &format!("GET {route}"),
            SpanKind::Server,
            vec![
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("http.response.status_code", status),
            ],
            t0,
            Duration::ZERO,
            dur,
        );
    }

    #[test]
    fn a_span_becomes_a_request_only_when_it_is_a_server_span() {
        let s = Spans::new();
        let t = s.tracer("svc");
        server(&t, "/slow", 200, 300 * MS, Duration::ZERO);
        server(&t, "/fail", 503, 2 * MS, Duration::ZERO);
        server(&t, "/ok", 404, 2 * MS, Duration::ZERO);
        let t0 = SystemTime::now();
        span(
            &t,
            &Context::new(),
            "GET",
            SpanKind::Client,
            vec![],
            t0,
            Duration::ZERO,
            900 * MS,
        );
        span(
            &t,
            &Context::new(),
            "work",
            SpanKind::Internal,
            vec![],
            t0,
            Duration::ZERO,
            900 * MS,
        );
        let reqs: Vec<Option<RecentRequest>> = s
            .finished()
            .iter()
            .map(|d| RecentRequest::from_span(d, 250 * MS))
            .collect();
        let slow = reqs[0].as_ref().unwrap();
        assert_eq!(
            (slow.route.as_str(), slow.slow, slow.failed),
            ("/slow", true, false)
        );
        assert_eq!(slow.duration, 300 * MS);
        assert_eq!(slow.name, "GET /slow");
        let fail = reqs[1].as_ref().unwrap();
        assert_eq!(
            (fail.status_code, fail.slow, fail.failed),
            (Some(503), false, true)
        );
        // A 4xx is the client's fault: neither slow nor failed.
        let ok = reqs[2].as_ref().unwrap();
        assert!(!ok.slow && !ok.failed);
        assert!(
            reqs[3].is_none() && reqs[4].is_none(),
            "client and internal spans are not requests"
        );
    }

    #[test]
    fn error_status_and_error_type_mark_a_request_failed_and_long_text_is_cut() {
        let s = Spans::new();
        let t = s.tracer("svc");
        let long = "x".repeat(1000);
        let mut sp = t
            .span_builder("POST /pay")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.route", long.clone())])
            .start(&t);
        sp.set_status(Status::error("card declined"));
        sp.end();
        let mut sp = t
            .span_builder("POST /pay")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("error.type", "cancelled")])
            .start(&t);
        sp.end();
        let spans = s.finished();
        let a = RecentRequest::from_span(&spans[0], Duration::from_secs(5)).unwrap();
        assert!(a.failed);
        assert_eq!(a.error.as_deref(), Some("card declined"));
        assert!(a.route.len() <= 200 + '…'.len_utf8(), "{}", a.route.len());
        let b = RecentRequest::from_span(&spans[1], Duration::from_secs(5)).unwrap();
        assert_eq!(
            (b.failed, b.error.as_deref(), b.route.as_str()),
            (true, Some("cancelled"), "POST /pay")
        );
        assert_eq!(b.status_code, None);
    }

    #[test]
    fn each_route_keeps_only_its_most_recent_slow_and_failed_requests() {
        let s = Spans::new();
        let t = s.tracer("svc");
        // 20 slow and 20 failed on /a, ending one second apart; 3 fast successes.
        for i in 0..20u64 {
            server(&t, "/a", 200, 400 * MS, Duration::from_secs(i));
            server(&t, "/a", 500, 2 * MS, Duration::from_secs(i));
        }
        for i in 0..3u64 {
            server(&t, "/a", 200, 2 * MS, Duration::from_secs(100 + i));
        }
        let recent = RecentRequests::new(4, 10, 250 * MS);
        let mut spans = s.finished();
        spans.reverse(); // arrival order does not matter: the newest by end time are kept
        let kept = spans.iter().filter(|d| recent.offer_span(d)).count();
        assert!(kept >= 8);
        assert_eq!(recent.len(), 8);
        let routes = recent.routes();
        assert_eq!(routes.len(), 1);
        let ends = |v: &[RecentRequest]| -> Vec<u64> {
            v.iter()
                .map(|r| {
                    r.end
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        - 1_000_000
                })
                .collect()
        };
        assert_eq!(ends(&routes[0].slow), [19, 18, 17, 16], "newest first");
        assert_eq!(ends(&routes[0].failed), [19, 18, 17, 16]);
        // Offering the same spans again changes nothing.
        assert_eq!(spans.iter().filter(|d| recent.offer_span(d)).count(), 0);
        assert_eq!(recent.len(), 8);
    }

    #[test]
    fn routes_past_the_limit_share_one_entry_and_memory_stays_bounded() {
        let s = Spans::new();
        let t = s.tracer("svc");
        for i in 0..2_000u64 {
            server(
                &t,
                &format!("/r{i}"),
                500,
                400 * MS,
                Duration::from_millis(i),
            );
        }
        let recent = RecentRequests::new(3, 50, 250 * MS);
        for d in s.finished() {
            recent.offer_span(&d);
        }
        let routes = recent.routes();
        assert_eq!(routes.len(), 51, "50 routes and the shared entry");
        let other = routes.iter().find(|r| r.route == OTHER_ROUTES).unwrap();
        assert_eq!((other.slow.len(), other.failed.len()), (3, 3));
        // Slow and failed at once: the request sits in both rings of its route.
        assert_eq!(recent.len(), 51 * 6 - 50 * 4);
    }

    fn store_provider(store: &Arc<SpanStore>) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_span_processor(store.processor())
            .build()
    }

    #[test]
    fn ingest_reads_only_slow_or_failed_traces_from_the_store() {
        let store = Arc::new(SpanStore::new(1000));
        let provider = store_provider(&store);
        let t = provider.tracer("svc");
        for i in 0..50u64 {
            server(&t, "/fast", 200, 3 * MS, Duration::from_secs(i));
        }
        server(&t, "/slow", 200, 800 * MS, Duration::ZERO);
        let mut failed = t
            .span_builder("GET /boom")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.route", "/boom")])
            .start(&t);
        failed.set_status(Status::error("500"));
        let failed_trace = failed.span_context().trace_id();
        failed.end();

        let recent = RecentRequests::new(5, 10, 250 * MS);
        assert_eq!(recent.ingest(&store), 2);
        let routes: Vec<String> = recent.routes().into_iter().map(|r| r.route).collect();
        assert_eq!(routes, ["/boom", "/slow"]);
        assert_eq!(recent.routes()[0].failed[0].trace_id, failed_trace.into());
        assert_eq!(recent.ingest(&store), 0, "idempotent");
    }

    #[test]
    fn the_processor_feeds_the_rings_directly() {
        let recent = Arc::new(RecentRequests::new(5, 10, 250 * MS));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recent.processor())
            .build();
        server(
            &provider.tracer("svc"),
            "/slow",
            200,
            800 * MS,
            Duration::ZERO,
        );
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn waterfall_lays_out_two_services_and_their_shares() {
        let s = Spans::new();
        let front = s.tracer("frontend");
        let back = s.tracer("backend");
        let t0 = SystemTime::now();
        // frontend server 0..100 ms; its client call 10..90; backend server 20..80 with a
        // 30..70 db span of its own; frontend also does 5 ms of internal work at 92..97.
        let root_span = front
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(t0)
            .start(&front);
        let root = Context::new().with_span(root_span);
        let client = span(
            &front,
            &root,
            "POST backend",
            SpanKind::Client,
            vec![],
            t0,
            10 * MS,
            80 * MS,
        );
        let bserver = span(
            &back,
            &client,
            "POST /price",
            SpanKind::Server,
            vec![],
            t0,
            20 * MS,
            60 * MS,
        );
        span(
            &back,
            &bserver,
            "db.query <b>",
            SpanKind::Internal,
            vec![],
            t0,
            30 * MS,
            40 * MS,
        );
        span(
            &front,
            &root,
            "render",
            SpanKind::Internal,
            vec![],
            t0,
            92 * MS,
            5 * MS,
        );
        root.span().end_with_timestamp(t0 + 100 * MS);

        let w = Waterfall::from_spans(s.finished(), "default-svc");
        assert_eq!(w.total, 100 * MS);
        let rows: Vec<(&str, &str, usize, Duration)> = w
            .spans
            .iter()
            .map(|s| (s.name.as_str(), s.service.as_str(), s.depth, s.offset))
            .collect();
        assert_eq!(
            rows,
            [
                ("GET /checkout", "frontend", 0, Duration::ZERO),
                ("POST backend", "frontend", 1, 10 * MS),
                ("POST /price", "backend", 2, 20 * MS),
                ("db.query <b>", "backend", 3, 30 * MS),
                ("render", "frontend", 1, 92 * MS),
            ]
        );
        // Self times: frontend = root (100 - 80 - 5 = 15) + client (80 - 60 = 20) + render 5 = 40;
        // backend = server (60 - 40 = 20) + db 40 = 60.
        let shares: Vec<(&str, Duration)> = w
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.self_time))
            .collect();
        assert_eq!(shares, [("backend", 60 * MS), ("frontend", 40 * MS)]);
        assert!((w.services[0].share - 0.6).abs() < 1e-9);
    }

    #[test]
    fn waterfall_uses_the_service_name_attribute_and_the_default_and_is_bounded() {
        let s = Spans::new();
        let t = s.tracer("observe");
        let t0 = SystemTime::now();
        let root = span(
            &t,
            &Context::new(),
            "root",
            SpanKind::Server,
            vec![],
            t0,
            Duration::ZERO,
            100 * MS,
        );
        span(
            &t,
            &root,
            "other",
            SpanKind::Server,
            vec![KeyValue::new("service.name", "inventory")],
            t0,
            MS,
            MS,
        );
        for i in 0..100u64 {
            span(
                &t,
                &root,
                "child",
                SpanKind::Internal,
                vec![],
                t0,
                2 * MS + MS * i as u32 / 10,
                MS / 10,
            );
        }
        let w = Waterfall::from_spans(s.finished(), "shop");
        assert_eq!(
            w.spans[0].service, "shop",
            "observe's own scope names no service"
        );
        assert_eq!(w.spans[1].service, "inventory");
        assert!(w.truncated);
        assert_eq!(w.spans.len(), observe_core::status::MAX_WATERFALL_SPANS);
    }

    #[test]
    fn a_page_fed_by_its_processor_does_not_rescan_the_store() {
        use observe_core::metrics::{Metrics, MetricsConfig};
        use observe_core::status::StatusPage;
        let store = Arc::new(SpanStore::new(100));
        let page = StatusPage::builder()
            .metrics(Metrics::new(MetricsConfig::default()).leak())
            .span_store(Arc::clone(&store))
            .build();
        // A slow request that reached only the store: a page reading the store lists it...
        let provider = store_provider(&store);
        server(
            &provider.tracer("svc"),
            "/only-in-store",
            200,
            900 * MS,
            Duration::ZERO,
        );
        page.tick();
        assert_eq!(page.recent().len(), 1);
        // ...but once the rings have their own processor, the page relies on it alone.
        let fed = StatusPage::builder()
            .metrics(Metrics::new(MetricsConfig::default()).leak())
            .span_store(Arc::clone(&store))
            .build();
        let direct = SdkTracerProvider::builder()
            .with_span_processor(fed.recent().processor())
            .with_span_processor(store.processor())
            .build();
        fed.tick();
        assert!(fed.recent().is_empty(), "the store was not scanned");
        server(
            &direct.tracer("svc"),
            "/direct",
            200,
            900 * MS,
            Duration::ZERO,
        );
        let snap = fed.snapshot();
        assert_eq!(snap.recent.len(), 1);
        assert_eq!(snap.recent[0].route, "/direct");
        assert!(
            snap.recent[0].slow[0].waterfall.is_some(),
            "waterfalls still come from the store"
        );
    }

    #[test]
    fn a_grpc_server_span_is_listed_by_method_with_its_status_name() {
        let s = Spans::new();
        let t = s.tracer("svc");
        let t0 = SystemTime::now();
        span(
            &t,
            &Context::new(),
            "shop.Cart/Add",
            SpanKind::Server,
            vec![
                KeyValue::new("rpc.system.name", "grpc"),
                KeyValue::new("rpc.method", "shop.Cart/Add"),
                KeyValue::new("rpc.response.status_code", "UNAVAILABLE"),
                KeyValue::new("error.type", "UNAVAILABLE"),
            ],
            t0,
            Duration::ZERO,
            MS,
        );
        let req = RecentRequest::from_span(&s.finished()[0], 250 * MS).unwrap();
        assert_eq!(req.route, "shop.Cart/Add");
        assert_eq!(req.grpc_status.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(req.status_code, None);
        assert!(req.failed && !req.slow);
    }
}
