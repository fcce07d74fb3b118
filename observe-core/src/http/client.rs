//! The client layer: propagates the current trace context on outgoing requests, records
//! `http_client_request_duration_seconds`, and creates a client span when sampled.
//!
//! Works with any tower-based HTTP client (hyper-util's legacy `Client`, tonic channels,
//! reqwest-middleware-style stacks): it needs only `Service<http::Request<B>, Response =
//! http::Response<RB>>`.
//!
//! **Cost.** Writing `traceparent` builds the 55 bytes on the stack, but
//! `http::HeaderValue::from_bytes` copies them into a fresh buffer: one allocation per
//! outgoing request (plus the header map's own growth). Forwarded `tracestate` and `baggage`
//! values are refcounted clones of the received headers, not copies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tower_layer::Layer;
use tower_service::Service;

use super::attributes;
use crate::clock::{self, Instant};
use crate::context::RequestContext;
use crate::metrics::{
    ErrorType, Exemplar, HttpClientLabels, HttpMethod, Metrics, ServerAddress, UrlScheme,
};
use crate::propagation::carried as carry;
use crate::{propagation, trace};

#[derive(Clone, Default)]
struct ClientSettings {
    metrics: Option<&'static Metrics>,
    tracer: Option<&'static SdkTracer>,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("custom_metrics", &self.metrics.is_some())
            .field("custom_tracer", &self.tracer.is_some())
            .finish()
    }
}

/// A tower [`Layer`] for outgoing HTTP requests.
///
/// Inside a request handled by the server layer (or any future run with a
/// [`RequestContext`]), it writes `traceparent` — and forwards the incoming `tracestate` and
/// `baggage` — so the next service continues the same trace; outside one it propagates
/// nothing. Every call is recorded in `http_client_request_duration_seconds`.
///
/// ```no_run
/// use observe_core::http::ClientLayer;
/// use tower::ServiceBuilder;
///
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<String>();
/// let client = ServiceBuilder::new().layer(ClientLayer::new()).service(client);
/// # let _ = client;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    settings: Arc<ClientSettings>,
}

impl ClientLayer {
    /// A layer recording into the global registry and tracing with the global tracer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records into `metrics` instead of [`Metrics::global`].
    ///
    /// ```
    /// use observe_core::http::ClientLayer;
    /// let layer = ClientLayer::new().metrics(observe_core::metrics::Metrics::global());
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: &'static Metrics) -> Self {
        Arc::make_mut(&mut self.settings).metrics = Some(metrics);
        self
    }

    /// Creates client spans on `tracer` instead of the global one.
    ///
    /// ```no_run
    /// use observe_core::http::ClientLayer;
    /// use observe_core::otel::opentelemetry::trace::TracerProvider as _;
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// let tracer: &'static _ = Box::leak(Box::new(SdkTracerProvider::builder().build().tracer("t")));
    /// let layer = ClientLayer::new().tracer(tracer);
    /// # let _ = layer;
    /// ```
    pub fn tracer(mut self, tracer: &'static SdkTracer) -> Self {
        Arc::make_mut(&mut self.settings).tracer = Some(tracer);
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // At client construction, so that no request pays for calibrating the clock.
        clock::calibrate();
        ClientService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The [`Service`] made by [`ClientLayer`].
///
/// ```
/// use observe_core::http::{ClientLayer, ClientService};
/// use tower::Layer;
/// let svc: ClientService<_> = ClientLayer::new().layer(tower::service_fn(
///     |_r: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) },
/// ));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    settings: Arc<ClientSettings>,
}

impl<S, B, RB> Service<Request<B>> for ClientService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ClientResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let metrics = self.settings.metrics.unwrap_or_else(Metrics::global);
        let method = HttpMethod::from(request.method());
        let address = request.uri().host().map(ServerAddress::intern);
        let scheme = UrlScheme::from_bytes(request.uri().scheme_str().unwrap_or("http").as_bytes());
        let current = RequestContext::current();

        let mut span = None;
        let outgoing = current.map(|cx| {
            let tracer = if cx.is_sampled() {
                self.settings.tracer.or_else(trace::tracer)
            } else {
                None
            };
            match tracer {
                Some(tracer) => {
                    let span_cx = start_client_span(tracer, &cx, &request, method);
                    let sc = span_cx.span().span_context().clone();
                    let out = if sc.is_valid() {
                        RequestContext::new(cx.trace_id, sc.span_id().into(), cx.flags)
                    } else {
                        cx
                    };
                    span = Some(span_cx);
                    out
                }
                None => cx,
            }
        });
        if let Some(out) = outgoing {
            carry::with_current(|carried| {
                propagation::inject(
                    &out,
                    carried.tracestate.as_ref(),
                    carried.baggage.as_ref(),
                    request.headers_mut(),
                );
            });
        }

        let in_flight = metrics.http_client().start(method, scheme);
        let exemplar = outgoing.as_ref().and_then(Exemplar::from_context);
        // Before the inner `call`, which may already do work (connect, say).
        let start = Instant::now();
        ClientResponseFuture {
            inner: self.inner.call(request),
            span,
            state: Some(ClientPending {
                metrics,
                _in_flight: in_flight,
                start,
                method,
                address,
                exemplar,
            }),
        }
    }
}

fn start_client_span<B>(
    tracer: &SdkTracer,
    cx: &RequestContext,
    request: &Request<B>,
    method: HttpMethod,
) -> opentelemetry::Context {
    // Prefer the attached OpenTelemetry context (the server span, or a user's span made
    // current with `Context::attach`) when it belongs to this trace; otherwise parent on the
    // request context's ids.
    let current = opentelemetry::Context::current();
    let parent_cx = if current.span().span_context().trace_id() == cx.trace_id.into() {
        current
    } else {
        opentelemetry::Context::new().with_remote_span_context(
            opentelemetry::trace::SpanContext::new(
                cx.trace_id.into(),
                cx.span_id.into(),
                opentelemetry::trace::TraceFlags::new(cx.flags.bits()),
                false,
                Default::default(),
            ),
        )
    };
    let span = tracer
        .span_builder(method.as_str())
        .with_kind(SpanKind::Client)
        .with_attributes(attributes::client_request(request, method))
        .start_with_context(tracer, &parent_cx);
    parent_cx.with_span(span)
}

struct ClientPending {
    metrics: &'static Metrics,
    _in_flight: crate::metrics::InFlight<'static>,
    start: Instant,
    method: HttpMethod,
    address: Option<ServerAddress>,
    exemplar: Option<Exemplar>,
}

impl ClientPending {
    fn record(self, span: Option<&opentelemetry::Context>, status: u16, error: Option<ErrorType>) {
        self.metrics.http_client().record(
            HttpClientLabels {
                method: self.method,
                server_address: self.address,
                status,
                error,
            },
            self.start.elapsed(),
            self.exemplar,
        );
        if let Some(span) = span {
            attributes::end_span(span, status, error);
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ClientService`]: records the call when the response head
    /// arrives, the call fails, or the future is dropped (as cancelled).
    pub struct ClientResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<opentelemetry::Context>,
        state: Option<ClientPending>,
    }

    impl<F> PinnedDrop for ClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(pending) = this.state.take() {
                pending.record(this.span.as_ref(), 0, Some(ErrorType::Cancelled));
            }
        }
    }
}

impl<F> fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .field("done", &self.state.is_none())
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.poll(task) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        if let Some(pending) = this.state.take() {
            match &result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // Client spans: 4xx and 5xx are errors (semconv); metrics label 5xx and 4xx.
                    let error = (status >= 400).then_some(ErrorType::Status(status));
                    pending.record(this.span.as_ref(), status, error);
                }
                Err(_) => pending.record(this.span.as_ref(), 0, Some(ErrorType::Other)),
            }
        }
        Poll::Ready(result)
    }
}
