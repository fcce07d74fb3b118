//! The server layer over a plain tower service: context, metrics on every outcome, spans.

mod http_support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use http_support::{attr, collecting_tracer, fresh_metrics, metrics_text, sample};
use observe_core::context::{RequestContext, TraceId};
use observe_core::http::{ResponseHeader, ServerLayer};
use observe_core::metrics::Route;
use observe_core::trace::Sampler;
use tower::{service_fn, Layer, Service, ServiceExt};

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn request(traceparent: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/users/42?token=s3cret");
    if let Some(tp) = traceparent {
        builder = builder.header("traceparent", tp);
    }
    builder.body(()).unwrap()
}

/// Reports the context seen at the start of the handler and after two await points.
async fn echo_context(
    _req: Request<()>,
) -> Result<Response<(Option<RequestContext>, Option<RequestContext>)>, Infallible> {
    let before = RequestContext::current();
    tokio::task::yield_now().await;
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    let after = RequestContext::current();
    Ok(Response::new((before, after)))
}

/// A fixed route for every request, so metrics carry an `http_route` label.
#[derive(Clone)]
struct Fixed(&'static str);
impl observe_core::http::RouteExtractor for Fixed {
    fn route<B>(&self, _r: &Request<B>) -> Option<Route> {
        Some(Route::intern(self.0))
    }
}

#[tokio::test]
async fn incoming_traceparent_is_continued_and_current_across_awaits() {
    let svc = ServerLayer::new()
        .metrics(fresh_metrics())
        .sampler(Sampler::ParentBasedAlwaysOn)
        .layer(service_fn(echo_context));
    let tp = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-00");
    let response = svc.oneshot(request(Some(&tp))).await.unwrap();
    let (before, after) = response.into_body();
    let before = before.expect("context installed in the handler");
    assert_eq!(Some(before), after, "the same context after .await points");
    assert_eq!(before.trace_id, TraceId::from_hex(PARENT_TRACE).unwrap());
    assert_ne!(
        before.span_id.to_string(),
        PARENT_SPAN,
        "our own span id, not the caller's"
    );
    assert!(before.span_id.is_valid());
    assert!(
        !before.is_sampled(),
        "parent-based: unsampled parent, unsampled request"
    );
    assert_eq!(
        RequestContext::current(),
        None,
        "nothing leaks out of the request"
    );
}

#[tokio::test]
async fn without_or_with_malformed_traceparent_a_new_root_is_started() {
    for tp in [
        None,
        Some("00-zzzz-00f067aa0ba902b7-01"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ] {
        let svc = ServerLayer::new()
            .metrics(fresh_metrics())
            .sampler(Sampler::AlwaysOff)
            .layer(service_fn(echo_context));
        let (cx, _) = svc.oneshot(request(tp)).await.unwrap().into_body();
        let cx = cx.expect("a context even without a caller");
        assert!(cx.trace_id.is_valid() && cx.span_id.is_valid(), "{tp:?}");
        assert_ne!(cx.trace_id.to_string(), PARENT_TRACE);
        assert!(!cx.is_sampled());
    }
}

#[tokio::test]
async fn responses_and_inner_errors_are_recorded_with_route_and_status() {
    let metrics = fresh_metrics();
    let layer = ServerLayer::new()
        .metrics(metrics)
        .route_extractor(Fixed("/users/{id}"));
    let ok = layer.layer(service_fn(|_r: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    ok.oneshot(request(None)).await.unwrap();
    let failing = layer.layer(service_fn(|_r: Request<()>| async {
        let mut r = Response::new(());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok::<_, Infallible>(r)
    }));
    failing.oneshot(request(None)).await.unwrap();
    let erroring = layer.layer(service_fn(|_r: Request<()>| async {
        Err::<Response<()>, _>(std::io::Error::other("backend gone"))
    }));
    assert!(erroring.oneshot(request(None)).await.is_err());

    let text = metrics_text(metrics);
    let count = "http_server_request_duration_seconds_count";
    let route = ("http_route", "/users/{id}");
    assert_eq!(
        sample(&text, count, &[route, ("http_response_status_code", "200")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            count,
            &[
                route,
                ("http_response_status_code", "503"),
                ("error_type", "503")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, count, &[route, ("error_type", "_OTHER")]),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("/users/42"), "never the raw path: {text}");
    assert!(!text.contains("s3cret"), "never the query: {text}");
    // Sampled roots (the default sampler), but no tracer installed: no span was exported, so
    // no exemplar may point at one.
    let mut openmetrics = Vec::new();
    metrics
        .encode(observe_core::metrics::Format::OpenMetrics, &mut openmetrics)
        .unwrap();
    assert!(!String::from_utf8(openmetrics)
        .unwrap()
        .contains("trace_id="));
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(0.0),
        "{text}"
    );
}

/// A future that never completes, to stand for a handler the client abandons.
struct Forever;
impl Future for Forever {
    type Output = Result<Response<()>, Infallible>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_dropped_request_is_counted_once_and_the_gauge_returns() {
    let metrics = fresh_metrics();
    let mut svc = ServerLayer::new()
        .metrics(metrics)
        .route_extractor(Fixed("/slow"))
        .layer(service_fn(|_r: Request<()>| Forever));
    let fut = svc.ready().await.unwrap().call(request(None));
    let mut fut = Box::pin(fut);
    // Poll once so the request is in flight, then abandon it.
    assert!(futures_poll_once(fut.as_mut()).is_pending());
    let text = metrics_text(metrics);
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(1.0),
        "{text}"
    );
    drop(fut);
    let text = metrics_text(metrics);
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/slow"), ("error_type", "cancelled")]
        ),
        Some(1.0),
        "{text}"
    );
}

fn futures_poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = std::task::Waker::noop();
    fut.poll(&mut Context::from_waker(waker))
}

#[tokio::test]
async fn a_sampled_request_exports_a_server_span_with_the_logged_ids() {
    let (tracer, spans) = collecting_tracer();
    let metrics = fresh_metrics();
    let svc = ServerLayer::new()
        .metrics(metrics)
        .tracer(tracer)
        .sampler(Sampler::ParentBasedAlwaysOn)
        .route_extractor(Fixed("/users/{id}"))
        .layer(service_fn(|_r: Request<()>| async {
            let mut r = Response::new(RequestContext::current());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, Infallible>(r)
        }));
    let tp = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let mut req = request(Some(&tp));
    req.headers_mut()
        .insert("authorization", "Bearer hunter2".parse().unwrap());
    req.headers_mut()
        .insert("user-agent", "curl/8".parse().unwrap());
    let cx = svc.oneshot(req).await.unwrap().into_body().unwrap();
    assert!(cx.is_sampled());

    let spans = spans.take();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(
        span.span_kind,
        observe_core::otel::opentelemetry::trace::SpanKind::Server
    );
    assert_eq!(span.span_context.trace_id().to_string(), PARENT_TRACE);
    assert_eq!(
        span.span_context.span_id().to_string(),
        cx.span_id.to_string(),
        "logged id = exported id"
    );
    assert_eq!(span.parent_span_id.to_string(), PARENT_SPAN);
    assert!(span.parent_span_is_remote);
    assert_eq!(attr(span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(span, "http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(attr(span, "url.path").as_deref(), Some("/users/42"));
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(attr(span, "user_agent.original").as_deref(), Some("curl/8"));
    assert_eq!(
        attr(span, "url.query"),
        None,
        "no query string unless configured"
    );
    let dump = format!("{:?}", span.attributes);
    assert!(
        !dump.contains("hunter2") && !dump.contains("s3cret"),
        "{dump}"
    );
    let mut openmetrics = Vec::new();
    metrics
        .encode(observe_core::metrics::Format::OpenMetrics, &mut openmetrics)
        .unwrap();
    let openmetrics = String::from_utf8(openmetrics).unwrap();
    assert!(
        openmetrics.contains(&format!("trace_id=\"{PARENT_TRACE}\"")),
        "an exemplar points at the exported trace: {openmetrics}"
    );
    assert!(matches!(
        span.status,
        observe_core::otel::opentelemetry::trace::Status::Error { .. }
    ));
}

#[tokio::test]
async fn headers_and_query_are_recorded_only_when_configured_and_redacted() {
    let (tracer, spans) = collecting_tracer();
    let svc = ServerLayer::new()
        .metrics(fresh_metrics())
        .tracer(tracer)
        .sampler(Sampler::AlwaysOn)
        .record_query(true)
        .record_request_headers([
            http::HeaderName::from_static("authorization"),
            http::HeaderName::from_static("x-request-id"),
        ])
        .layer(service_fn(|_r: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let mut req = request(None);
    req.headers_mut()
        .insert("authorization", "Bearer hunter2".parse().unwrap());
    req.headers_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    svc.oneshot(req).await.unwrap();
    let spans = spans.take();
    let span = &spans[0];
    assert_eq!(span.name, "GET", "no route: the method alone");
    assert_eq!(attr(span, "url.query").as_deref(), Some("token=REDACTED"));
    let dump = format!("{:?}", span.attributes);
    assert!(dump.contains("abc-123"), "{dump}");
    assert!(
        dump.contains("[REDACTED]") && !dump.contains("hunter2"),
        "{dump}"
    );
}

#[tokio::test]
async fn response_header_is_off_by_default_and_matches_the_context_when_on() {
    let handler = || {
        service_fn(|_r: Request<()>| async {
            Ok::<_, Infallible>(Response::new(RequestContext::current()))
        })
    };
    let off = ServerLayer::new().metrics(fresh_metrics()).layer(handler());
    let response = off.oneshot(request(None)).await.unwrap();
    assert!(response.headers().get("traceresponse").is_none());
    assert!(response.headers().get("traceparent").is_none());

    let on = ServerLayer::new()
        .metrics(fresh_metrics())
        .sampler(Sampler::AlwaysOff)
        .response_header(ResponseHeader::TraceResponse)
        .layer(handler());
    let response = on.oneshot(request(None)).await.unwrap();
    let cx = response.body().unwrap();
    let header = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(header, format!("00-{}-{}-02", cx.trace_id, cx.span_id));
}

#[tokio::test]
async fn user_tracing_spans_in_a_sampled_request_are_children_of_the_server_span() {
    use observe_core::otel::tracing_opentelemetry;
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let (tracer, spans) = collecting_tracer();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    let _default = tracing::subscriber::set_default(subscriber);

    let svc = ServerLayer::new()
        .metrics(fresh_metrics())
        .tracer(tracer)
        .sampler(Sampler::AlwaysOn)
        .route_extractor(Fixed("/orders"))
        .layer(service_fn(|_r: Request<()>| async {
            async {
                tokio::task::yield_now().await;
            }
            .instrument(tracing::info_span!("db.query"))
            .await;
            Ok::<_, Infallible>(Response::new(RequestContext::current()))
        }));
    let cx = svc
        .oneshot(request(None))
        .await
        .unwrap()
        .into_body()
        .unwrap();

    let spans = spans.take();
    let server = spans
        .iter()
        .find(|s| s.name == "GET /orders")
        .expect("server span");
    let db = spans
        .iter()
        .find(|s| s.name == "db.query")
        .expect("user span");
    assert_eq!(
        server.span_context.span_id().to_string(),
        cx.span_id.to_string()
    );
    assert_eq!(
        server.span_context.trace_id().to_string(),
        cx.trace_id.to_string()
    );
    assert_eq!(db.span_context.trace_id(), server.span_context.trace_id());
    assert_eq!(
        db.parent_span_id,
        server.span_context.span_id(),
        "a child, not a new trace"
    );
}

#[test]
fn a_handler_panic_is_recorded_as_a_500_with_error_type_panic() {
    let metrics = fresh_metrics();
    let mut svc = ServerLayer::new()
        .metrics(metrics)
        .route_extractor(Fixed("/boom"))
        .layer(service_fn(|_r: Request<()>| async {
            if RequestContext::current().is_some() {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(Response::new(()))
        }));
    let fut = Service::call(&mut svc, request(None));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut fut = std::pin::pin!(fut);
        futures_poll_once(fut.as_mut())
    }));
    assert!(
        outcome.is_err(),
        "the panic propagates to whoever catches it"
    );
    let text = metrics_text(metrics);
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "/boom"),
                ("http_response_status_code", "500"),
                ("error_type", "panic")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        RequestContext::current(),
        None,
        "the context is restored while unwinding"
    );
}

/// The request clock (TSC-based where available) measures real time: a handler that sleeps
/// 60 ms is recorded as at least 60 ms, in the bucket the sleep puts it in or a later one.
#[tokio::test]
async fn recorded_duration_covers_the_time_the_handler_took() {
    let metrics = fresh_metrics();
    let svc = ServerLayer::new()
        .metrics(metrics)
        .layer(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            Ok::<_, Infallible>(Response::new(()))
        }));
    let started = std::time::Instant::now();
    svc.oneshot(request(None)).await.unwrap();
    let wall = started.elapsed().as_secs_f64();
    let snapshot = metrics.http_server().snapshot();
    let histogram = &snapshot[0].histogram;
    assert_eq!(histogram.count, 1);
    assert!(
        histogram.sum >= 0.060 && histogram.sum <= wall + 0.001,
        "recorded {} s for a 60 ms sleep that took {wall} s in all",
        histogram.sum
    );
    // Buckets 0..=3 end at 5, 10, 25 and 50 ms: a 60 ms request is never counted there.
    assert_eq!(histogram.cumulative()[3], 0, "{histogram:?}");
}

/// A service that works inside `call` itself (not only in its future) is timed from the
/// moment the layer received the request: 30 ms spent in `call` are in the observation.
#[tokio::test]
async fn recorded_duration_includes_work_done_in_the_inner_call() {
    #[derive(Clone)]
    struct SlowCall;
    impl tower::Service<Request<()>> for SlowCall {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;
        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _req: Request<()>) -> Self::Future {
            std::thread::sleep(std::time::Duration::from_millis(30));
            std::future::ready(Ok(Response::new(())))
        }
    }
    let metrics = fresh_metrics();
    let svc = ServerLayer::new().metrics(metrics).layer(SlowCall);
    svc.oneshot(request(None)).await.unwrap();
    let snapshot = metrics.http_server().snapshot();
    assert_eq!(snapshot[0].histogram.count, 1);
    assert!(
        snapshot[0].histogram.sum >= 0.029,
        "recorded {} s for 30 ms spent in call",
        snapshot[0].histogram.sum
    );
}

/// What the handler's outgoing calls would forward: the received `tracestate` and `baggage`,
/// current across an await point, whether or not the request is sampled; `tracestate` only
/// with a valid `traceparent` (the spec forbids reading it otherwise), and a sampled span
/// records the same `tracestate`.
#[tokio::test]
async fn received_tracestate_and_baggage_are_carried_into_the_handler() {
    use observe_core::propagation::carried;

    async fn echo_carried(_req: Request<()>) -> Result<Response<[Option<String>; 2]>, Infallible> {
        tokio::task::yield_now().await;
        let seen = carried::with_current(|c| {
            [&c.tracestate, &c.baggage].map(|v| v.as_ref().map(|v| v.to_str().unwrap().into()))
        });
        Ok(Response::new(seen))
    }
    let valid = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let invalid = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-0x");
    for sampled in [false, true] {
        let (tracer, spans) = collecting_tracer();
        let layer = ServerLayer::new().metrics(fresh_metrics()).tracer(tracer);
        let layer = layer.sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        });
        for (traceparent, expect_tracestate) in [(&valid, true), (&invalid, false)] {
            let mut req = request(Some(traceparent));
            req.headers_mut()
                .insert("tracestate", "vendor=v1".parse().unwrap());
            req.headers_mut().insert("baggage", "k=v".parse().unwrap());
            let seen = layer
                .clone()
                .layer(service_fn(echo_carried))
                .oneshot(req)
                .await
                .unwrap()
                .into_body();
            let want_tracestate = expect_tracestate.then(|| "vendor=v1".to_string());
            assert_eq!(
                seen,
                [want_tracestate.clone(), Some("k=v".into())],
                "sampled {sampled}, traceparent {traceparent}"
            );
            if sampled {
                let spans = spans.take();
                let recorded = spans[0].span_context.trace_state().header();
                assert_eq!(recorded, want_tracestate.unwrap_or_default());
            }
        }
        // Nothing received, nothing carried.
        let seen = layer
            .layer(service_fn(echo_carried))
            .oneshot(request(Some(&valid)))
            .await
            .unwrap()
            .into_body();
        assert_eq!(seen, [None, None]);
    }
    assert!(carried::with_current(carried::Carried::is_empty));
}
