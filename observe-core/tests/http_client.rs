//! The client layer: propagation from the current request, metrics, client spans.

mod http_support;

use std::convert::Infallible;

use http::{HeaderMap, Request, Response};
use http_support::{collecting_tracer, fresh_metrics, metrics_text, sample};
use observe_core::context::{FutureExt, RequestContext, SpanId, TraceFlags, TraceId};
use observe_core::http::{ClientLayer, ServerLayer};
use observe_core::trace::Sampler;
use tower::{service_fn, Layer, ServiceExt};

/// A "remote" service that answers with the headers it received.
fn echo_headers() -> impl tower::Service<
    Request<()>,
    Response = Response<HeaderMap>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(
        |r: Request<()>| async move { Ok::<_, Infallible>(Response::new(r.headers().clone())) },
    )
}

fn outgoing() -> Request<()> {
    Request::builder()
        .uri("http://inventory.internal:8080/items?key=x")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn outside_a_request_nothing_is_propagated_but_the_call_is_measured() {
    let metrics = fresh_metrics();
    let client = ClientLayer::new().metrics(metrics).layer(echo_headers());
    let headers = client.oneshot(outgoing()).await.unwrap().into_body();
    assert!(headers.get("traceparent").is_none());
    let text = metrics_text(metrics);
    assert_eq!(
        sample(
            &text,
            "http_client_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "200")
            ]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn inside_an_unsampled_request_the_current_ids_are_propagated() {
    let cx = RequestContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::default(),
    );
    let client = ClientLayer::new()
        .metrics(fresh_metrics())
        .layer(echo_headers());
    let headers = async move { client.oneshot(outgoing()).await.unwrap().into_body() }
        .with_context(cx)
        .await;
    assert_eq!(
        headers["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    );
}

#[tokio::test]
async fn tracestate_and_baggage_received_by_the_server_are_forwarded() {
    let metrics = fresh_metrics();
    let client = ClientLayer::new().metrics(metrics).layer(echo_headers());
    let server = ServerLayer::new()
        .metrics(metrics)
        .sampler(Sampler::ParentBasedAlwaysOn)
        .layer(service_fn(move |_r: Request<()>| {
            let client = client.clone();
            async move {
                let sent = client.oneshot(outgoing()).await.unwrap().into_body();
                Ok::<_, Infallible>(Response::new((RequestContext::current().unwrap(), sent)))
            }
        }));
    let incoming = Request::builder()
        .uri("/checkout")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        )
        .header("tracestate", "vendor=abc,other=1")
        .header("baggage", "user.tier=gold")
        .body(())
        .unwrap();
    let (cx, sent) = server.oneshot(incoming).await.unwrap().into_body();
    assert_eq!(
        sent["traceparent"].to_str().unwrap(),
        format!("00-0af7651916cd43dd8448eb211c80319c-{}-00", cx.span_id)
    );
    assert_eq!(sent["tracestate"], "vendor=abc,other=1");
    assert_eq!(sent["baggage"], "user.tier=gold");
}

#[tokio::test]
async fn a_sampled_call_gets_a_client_span_whose_id_is_sent_downstream() {
    let (tracer, spans) = collecting_tracer();
    let cx = RequestContext::new_root(true);
    let client = ClientLayer::new()
        .metrics(fresh_metrics())
        .tracer(tracer)
        .layer(echo_headers());
    let headers = async move { client.oneshot(outgoing()).await.unwrap().into_body() }
        .with_context(cx)
        .await;
    let spans = spans.take();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "GET");
    assert_eq!(
        span.span_context.trace_id().to_string(),
        cx.trace_id.to_string()
    );
    assert_eq!(span.parent_span_id.to_string(), cx.span_id.to_string());
    assert_eq!(
        headers["traceparent"].to_str().unwrap(),
        format!("00-{}-{}-03", cx.trace_id, span.span_context.span_id())
    );
    let full = http_support::attr(span, "url.full").unwrap();
    assert_eq!(
        full, "http://inventory.internal:8080/items",
        "no query string"
    );
    assert_eq!(
        http_support::attr(span, "server.address").as_deref(),
        Some("inventory.internal")
    );
}

#[tokio::test]
async fn failed_and_error_status_calls_are_labelled() {
    let metrics = fresh_metrics();
    let refused = ClientLayer::new()
        .metrics(metrics)
        .layer(service_fn(|_r: Request<()>| async {
            Err::<Response<()>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        }));
    assert!(refused.oneshot(outgoing()).await.is_err());
    let not_found =
        ClientLayer::new()
            .metrics(metrics)
            .layer(service_fn(|_r: Request<()>| async {
                let mut r = Response::new(());
                *r.status_mut() = http::StatusCode::NOT_FOUND;
                Ok::<_, Infallible>(r)
            }));
    not_found.oneshot(outgoing()).await.unwrap();
    let text = metrics_text(metrics);
    let count = "http_client_request_duration_seconds_count";
    let host = ("server_address", "inventory.internal");
    assert_eq!(
        sample(&text, count, &[host, ("error_type", "_OTHER")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            count,
            &[
                host,
                ("http_response_status_code", "404"),
                ("error_type", "404")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("key=x"), "never the query string: {text}");
}
