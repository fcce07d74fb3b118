//! The server layer: trace context, RED metrics and the request span for every request.
//!
//! See "The request path" in `docs/DESIGN.md`. Per request, in order:
//!
//! 1. `traceparent`/`tracestate`/`baggage` are extracted (no allocation; invalid ones dropped).
//! 2. Sampling is decided parent-based by the configured [`Sampler`].
//! 3. The request's [`RequestContext`] is chosen: the caller's trace id (or a new one) and a
//!    fresh span id, so logs carry ids whether or not the request is sampled.
//! 4. The active-requests gauge goes up (down again exactly once, whatever happens).
//! 5. The inner service runs; its future is polled inside the request context (and, for
//!    sampled requests, inside an `opentelemetry::Context` holding the server span).
//! 6. When the response head is ready — or the inner service fails, or the future is dropped
//!    before either — one histogram observation is recorded and the span ends.
//!
//! **Where a request is "done".** The duration ends when the inner service returns the
//! response head (status and headers), as in most peers and the OpenTelemetry HTTP
//! instrumentations; time spent streaming a body afterwards is not included. That keeps the
//! response body type unchanged (no wrapper, no per-chunk cost). A client that disconnects
//! while the body streams is therefore not counted as cancelled; one that disconnects before
//! the head is ready is (`error_type="cancelled"`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tower_layer::Layer;
use tower_service::Service;

use super::attributes;
use super::route::{NoRoute, RouteExtractor, Routed};
use crate::clock::{self, Instant};
use crate::context::RequestContext;
use crate::metrics::{
    ErrorType, Exemplar, HttpMethod, HttpServerLabels, InFlight, Metrics, Route, UrlScheme,
};
use crate::propagation::carried::{self, Carried};
use crate::propagation::{Found, TraceParent};
use crate::trace::{self, Sampler};

/// Which trace-context header, if any, the server adds to its responses.
///
/// Off by default: telling arbitrary clients the trace id is a choice, not a default.
///
/// ```
/// use observe_core::http::{ResponseHeader, ServerLayer};
/// let layer = ServerLayer::new().response_header(ResponseHeader::TraceResponse);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseHeader {
    /// No header (the default).
    #[default]
    None,
    /// `traceresponse: 00-{trace id}-{span id}-{flags}` (W3C Trace Context Level 2 draft).
    TraceResponse,
    /// `traceparent: 00-{trace id}-{span id}-{flags}`, for clients that read that name.
    TraceParent,
}

/// What the server layer records beyond the defaults, off unless configured.
///
/// Held inline and `Copy`, not behind an `Arc`: axum clones the route's service for every
/// request, and an `Arc` would cost two atomic read-modify-writes per request; anything
/// needing a destructor would add a branch to each clone and drop.
#[derive(Clone, Copy, Default)]
pub(crate) struct Settings {
    pub(crate) metrics: Option<&'static Metrics>,
    pub(crate) tracer: Option<&'static SdkTracer>,
    pub(crate) sampler: Option<Sampler>,
    pub(crate) scheme: Option<UrlScheme>,
    pub(crate) response_header: ResponseHeader,
    pub(crate) request_headers: Option<&'static [HeaderName]>,
    pub(crate) record_query: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("custom_metrics", &self.metrics.is_some())
            .field("custom_tracer", &self.tracer.is_some())
            .field("scheme", &self.scheme)
            .field("response_header", &self.response_header)
            .field("request_headers", &self.request_headers)
            .field("record_query", &self.record_query)
            .finish_non_exhaustive()
    }
}

/// A tower [`Layer`] that gives every request RED metrics, trace context and (when sampled) a
/// server span. Framework crates wrap it with their [`RouteExtractor`]; `observe-axum`'s
/// `layer()` is this with axum's `MatchedPath`.
///
/// Defaults: the global metrics registry ([`Metrics::global`]), the global tracer and sampler
/// ([`trace::tracer`], [`trace::sampler`]), scheme `http` unless the request URI says
/// otherwise, no response header, no request headers or query string recorded.
///
/// ```
/// use observe_core::http::ServerLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(ServerLayer::new())
///     .service(service_fn(|_req: http::Request<()>| async {
///         // Every log line here carries this request's trace id.
///         let cx = observe_core::context::RequestContext::current().unwrap();
///         Ok::<_, std::convert::Infallible>(http::Response::new(cx.trace_id.to_string()))
///     }));
/// let response = service.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(response.body().len(), 32);
/// # }
/// ```
#[derive(Clone)]
pub struct ServerLayer<R = NoRoute> {
    route: R,
    settings: Settings,
}

impl fmt::Debug for ServerLayer<NoRoute> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServerLayer<NoRoute> {
    /// A layer with the defaults and no route extractor.
    pub fn new() -> Self {
        ServerLayer {
            route: NoRoute,
            settings: Settings::default(),
        }
    }
}

impl Default for ServerLayer<NoRoute> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> ServerLayer<R> {
    fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Uses `route` to find each request's route template.
    ///
    /// ```
    /// use observe_core::http::{NoRoute, ServerLayer};
    /// let layer = ServerLayer::new().route_extractor(NoRoute);
    /// # let _ = layer;
    /// ```
    pub fn route_extractor<R2: RouteExtractor>(self, route: R2) -> ServerLayer<R2> {
        ServerLayer {
            route,
            settings: self.settings,
        }
    }

    /// Records into `metrics` instead of [`Metrics::global`] (tests, several registries).
    ///
    /// ```
    /// use observe_core::http::ServerLayer;
    /// use observe_core::metrics::Metrics;
    /// let layer = ServerLayer::new().metrics(Metrics::global());
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: &'static Metrics) -> Self {
        self.settings_mut().metrics = Some(metrics);
        self
    }

    /// Creates spans on `tracer` instead of the global one installed by `init`.
    ///
    /// ```no_run
    /// use observe_core::http::ServerLayer;
    /// use observe_core::otel::opentelemetry::trace::TracerProvider as _;
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// let provider = SdkTracerProvider::builder().build();
    /// let tracer: &'static _ = Box::leak(Box::new(provider.tracer("test")));
    /// let layer = ServerLayer::new().tracer(tracer);
    /// # let _ = layer;
    /// ```
    pub fn tracer(mut self, tracer: &'static SdkTracer) -> Self {
        self.settings_mut().tracer = Some(tracer);
        self
    }

    /// Decides sampling with `sampler` instead of the global one.
    ///
    /// ```
    /// use observe_core::http::ServerLayer;
    /// use observe_core::trace::Sampler;
    /// let layer = ServerLayer::new().sampler(Sampler::AlwaysOff);
    /// # let _ = layer;
    /// ```
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.settings_mut().sampler = Some(sampler);
        self
    }

    /// The `url.scheme` to record when the request URI has none (behind a TLS-terminating
    /// proxy, say `https`). Default `http`.
    ///
    /// ```
    /// use observe_core::http::ServerLayer;
    /// use observe_core::metrics::UrlScheme;
    /// let layer = ServerLayer::new().scheme(UrlScheme::Https);
    /// # let _ = layer;
    /// ```
    pub fn scheme(mut self, scheme: UrlScheme) -> Self {
        self.settings_mut().scheme = Some(scheme);
        self
    }

    /// Adds a trace-context header to every response (off by default).
    ///
    /// ```
    /// use observe_core::http::{ResponseHeader, ServerLayer};
    /// let layer = ServerLayer::new().response_header(ResponseHeader::TraceParent);
    /// # let _ = layer;
    /// ```
    pub fn response_header(mut self, header: ResponseHeader) -> Self {
        self.settings_mut().response_header = header;
        self
    }

    /// Records these request headers on sampled server spans as
    /// `http.request.header.<name>`. Values of credential-bearing headers (`authorization`,
    /// `cookie`, `proxy-authorization`, `x-api-key`, and any name containing `token`,
    /// `secret`, `password`, `session` or `auth`) are replaced by `[REDACTED]`.
    ///
    /// ```
    /// use observe_core::http::ServerLayer;
    /// let layer = ServerLayer::new()
    ///     .record_request_headers([http::header::HeaderName::from_static("x-request-id")]);
    /// # let _ = layer;
    /// ```
    pub fn record_request_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let names: Vec<HeaderName> = names.into_iter().collect();
        self.settings_mut().request_headers =
            (!names.is_empty()).then(|| intern_header_list(names));
        self
    }

    /// Records the query string on sampled server spans as `url.query`, with the values of
    /// secret-looking keys (`token`, `key`, `secret`, `password`, `sig`, `auth`, ...)
    /// replaced by `REDACTED`. Off by default.
    ///
    /// ```
    /// use observe_core::http::ServerLayer;
    /// let layer = ServerLayer::new().record_query(true);
    /// # let _ = layer;
    /// ```
    pub fn record_query(mut self, record: bool) -> Self {
        self.settings_mut().record_query = record;
        self
    }
}

impl<S, R: Clone> Layer<S> for ServerLayer<R> {
    type Service = ServerService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        // At router construction, so that no request pays for calibrating the clock.
        clock::calibrate();
        ServerService {
            inner,
            route: self.route.clone(),
            settings: self.settings,
        }
    }
}

/// The [`Service`] made by [`ServerLayer`].
///
/// ```
/// use observe_core::http::{ServerLayer, ServerService};
/// use tower::Layer;
/// let svc: ServerService<_, _> = ServerLayer::new().layer(tower::service_fn(
///     |_r: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) },
/// ));
/// # let _ = svc;
/// ```
#[derive(Clone)]
pub struct ServerService<S, R = NoRoute> {
    inner: S,
    route: R,
    settings: Settings,
}

impl<S: fmt::Debug, R> fmt::Debug for ServerService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, R, B, RB> Service<Request<B>> for ServerService<S, R>
where
    S: Service<Request<B>, Response = Response<RB>>,
    R: RouteExtractor,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Out of line on purpose: inlined into axum's route service (as the bench binary's
    // compiler chose to do) it compiles worse, about 25 ns per request there (measured by
    // alternating builds of `benches/request_path.rs`'s timed turns). Likewise `poll`.
    #[inline(never)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Routed::Measure(route) = self.route.routed(&request) else {
            return ResponseFuture {
                inner: self.inner.call(request),
                cx: None,
                carried: None,
                otel: None,
                state: None,
            };
        };
        // From here, not after the inner `call`: a service may do real work in `call` itself.
        let start = Instant::now();
        let settings = &self.settings;
        let metrics = settings.metrics.unwrap_or_else(Metrics::global);
        let method = HttpMethod::from(request.method());
        let scheme = match request.uri().scheme_str() {
            Some("https") => UrlScheme::Https,
            Some("http") => UrlScheme::Http,
            _ => settings.scheme.unwrap_or(UrlScheme::Http),
        };

        let found = Found::in_headers(request.headers());
        let parent = found.traceparent();
        // Usually the request carries neither `tracestate` nor `baggage`: then this is `None`,
        // one tag, and nothing is validated, moved or stored for them.
        let carried = found.carried(parent.is_some());
        let sampler = settings.sampler.unwrap_or_else(trace::sampler);
        let mut cx = sampler.request_context(parent.as_ref());
        let sampled = cx.is_sampled();

        let tracer = if sampled {
            settings.tracer.or_else(trace::tracer)
        } else {
            None
        };
        let otel = tracer.map(|tracer| {
            let span_cx = start_server_span(
                tracer,
                settings,
                &request,
                method,
                scheme,
                route,
                parent.as_ref(),
                carried.as_ref().and_then(|c| c.tracestate.as_ref()),
            );
            // The SDK chose the span id (and the trace id of a new root); make the ids in
            // logs and outgoing headers the exported span's own.
            let sc = span_cx.span().span_context().clone();
            if sc.is_valid() {
                cx = RequestContext::new(
                    sc.trace_id().into(),
                    sc.span_id().into(),
                    cx.flags.with_sampled(sc.is_sampled()),
                );
            }
            span_cx
        });

        let in_flight = metrics.http_server().start(method, scheme);
        // The inner service's `call` may already do work (and log): give it the context, until
        // the future is built. (The compiler still builds the inner future aside and copies it
        // in, 320 bytes in the bench; a `MaybeUninit` placement added a third copy.)
        // SAFETY: the guard is a local declared after `cx`, dropped first.
        let _entered = unsafe { cx.enter_scoped() };
        let _otel = otel.as_ref().map(|otel| otel.clone().attach());
        ResponseFuture {
            inner: self.inner.call(request),
            cx: Some(cx),
            carried,
            otel,
            state: Some(Pending {
                metrics,
                _in_flight: in_flight,
                start,
                method,
                scheme,
                route,
                response_header: settings.response_header,
            }),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn start_server_span<B>(
    tracer: &SdkTracer,
    settings: &Settings,
    request: &Request<B>,
    method: HttpMethod,
    scheme: UrlScheme,
    route: Option<Route>,
    parent: Option<&TraceParent>,
    tracestate: Option<&HeaderValue>,
) -> opentelemetry::Context {
    let parent_cx = match parent {
        Some(p) => opentelemetry::Context::new().with_remote_span_context(
            opentelemetry::trace::SpanContext::new(
                p.trace_id.into(),
                p.parent_id.into(),
                opentelemetry::trace::TraceFlags::new(p.flags.bits()),
                true,
                tracestate
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default(),
            ),
        ),
        None => opentelemetry::Context::new(),
    };
    let name = span_name(method, route);
    let attributes = attributes::server_request(
        request,
        method,
        scheme,
        route,
        settings.request_headers.unwrap_or_default(),
        settings.record_query,
    );
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent_cx);
    parent_cx.with_span(span)
}

/// The interned copy of a list of request headers to record: one per distinct list, kept for
/// the life of the process. Lists are configuration (the same list given again is shared), and
/// a `&'static` list keeps [`Settings`] `Copy`.
fn intern_header_list(names: Vec<HeaderName>) -> &'static [HeaderName] {
    static LISTS: Mutex<Vec<&'static [HeaderName]>> = Mutex::new(Vec::new());
    let mut lists = LISTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(list) = lists.iter().find(|list| ***list == names[..]) {
        return list;
    }
    let list: &'static [HeaderName] = Box::leak(names.into_boxed_slice());
    lists.push(list);
    list
}

/// Distinct `"{method} {route}"` span names kept; past it, names are formatted per span.
const MAX_SPAN_NAMES: usize = 4096;

/// The server span's name, `"{method} {route}"` (or the method alone), built once per pair and
/// then borrowed: a sampled request does not format and allocate its name. Bounded: methods
/// are an enum and routes are interned templates, and past [`MAX_SPAN_NAMES`] pairs a name is
/// formatted per span as before.
fn span_name(method: HttpMethod, route: Option<Route>) -> Cow<'static, str> {
    type Names = HashMap<(HttpMethod, Route), &'static str, foldhash::fast::RandomState>;
    static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(Default::default);
    let Some(route) = route else {
        return Cow::Borrowed(method.as_str());
    };
    let key = (method, route);
    if let Some(name) = NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Cow::Borrowed(name);
    }
    let name = format!("{} {}", method.as_str(), route.as_str());
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(name) = names.get(&key) {
        return Cow::Borrowed(name);
    }
    if names.len() >= MAX_SPAN_NAMES {
        return Cow::Owned(name);
    }
    // Leaked on purpose, once per pair: the map bounds how many there can be.
    let name: &'static str = Box::leak(name.into_boxed_str());
    names.insert(key, name);
    Cow::Borrowed(name)
}

/// What a request still owes the metrics until it completes (taken exactly once).
struct Pending {
    metrics: &'static Metrics,
    // Lowers the active-requests gauge when dropped, on every path.
    _in_flight: InFlight<'static>,
    start: Instant,
    method: HttpMethod,
    scheme: UrlScheme,
    route: Option<Route>,
    response_header: ResponseHeader,
}

impl Pending {
    #[inline(always)]
    fn record(
        &self,
        cx: &RequestContext,
        otel: Option<&opentelemetry::Context>,
        status: u16,
        error: Option<ErrorType>,
    ) {
        let elapsed_ns = self.start.elapsed_nanos();
        // Only a span that is actually exported may be pointed at by an exemplar.
        let exemplar = otel.and_then(|_| Exemplar::from_context(cx));
        self.metrics.http_server().record_ns(
            HttpServerLabels {
                method: self.method,
                scheme: self.scheme,
                route: self.route,
                status,
                error,
            },
            elapsed_ns,
            exemplar,
        );
        if let Some(otel) = otel {
            attributes::end_span(otel, status, error);
        }
        // The caller drops `self` next: the gauge goes down after the observation is recorded.
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerService`].
    ///
    /// Installs the request's [`RequestContext`] (and, when sampled, the OpenTelemetry context
    /// holding the server span) around every poll of the inner future, records the request
    /// when the response head is ready or the inner service fails, and — if it is dropped
    /// before either — records it as cancelled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` for requests the route extractor skips.
        cx: Option<RequestContext>,
        // `None` when the request carried neither header (usually).
        carried: Option<Carried>,
        otel: Option<opentelemetry::Context>,
        state: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Recorded already (the common case), or skipped: nothing to do, and nothing
            // set up for the rare case below.
            if this.state.is_some() {
                record_dropped(this.state, this.cx.as_ref(), this.otel.as_ref());
            }
        }
    }
}

/// A response future dropped before completing: the client went away, a timeout fired, or
/// the inner future panicked (unwinding drops it).
#[cold]
#[inline(never)]
fn record_dropped(
    state: &mut Option<Pending>,
    cx: Option<&RequestContext>,
    otel: Option<&opentelemetry::Context>,
) {
    if let (Some(pending), Some(cx)) = (state.take(), cx) {
        let (status, error) = if std::thread::panicking() {
            (500, ErrorType::Named("panic"))
        } else {
            (0, ErrorType::Cancelled)
        };
        pending.record(cx, otel, status, Some(error));
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("cx", &self.cx)
            .field("done", &self.state.is_none())
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(cx) = this.cx.as_ref() else {
            // A skipped request: observe stays out of the way.
            return this.inner.poll(task);
        };
        let mut poll = {
            // SAFETY: `cx` and `carried` are borrowed from the pinned future for this whole
            // block, and the guards are dropped at its end.
            let _entered = unsafe { cx.enter_scoped() };
            let _carried = unsafe { carried::enter_scoped(this.carried.as_ref()) };
            let _otel = this.otel.as_ref().map(|otel| otel.clone().attach());
            this.inner.poll(task)
        };
        // Inspected in place: the response is handed on without being moved out and back.
        let Poll::Ready(result) = &mut poll else {
            return poll;
        };
        // Read in place, then dropped (lowering the gauge) once the observation is recorded.
        let Some(pending) = this.state.as_ref() else {
            return poll;
        };
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let error = (status >= 500).then_some(ErrorType::Status(status));
                match pending.response_header {
                    ResponseHeader::None => {}
                    ResponseHeader::TraceResponse => insert_trace_header(
                        response.headers_mut(),
                        HeaderName::from_static("traceresponse"),
                        cx,
                    ),
                    ResponseHeader::TraceParent => insert_trace_header(
                        response.headers_mut(),
                        HeaderName::from_static("traceparent"),
                        cx,
                    ),
                }
                pending.record(cx, this.otel.as_ref(), status, error);
            }
            Err(_) => pending.record(cx, this.otel.as_ref(), 0, Some(ErrorType::Other)),
        }
        *this.state = None;
        poll
    }
}

fn insert_trace_header(headers: &mut http::HeaderMap, name: HeaderName, cx: &RequestContext) {
    let value = TraceParent::from_context(cx).encode();
    // HeaderValue::from_bytes copies into a new buffer: only when the option is on.
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&'static str]) -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    }

    #[test]
    fn equal_header_lists_are_kept_once() {
        let a = intern_header_list(names(&["x-request-id", "x-tenant"]));
        let b = intern_header_list(names(&["x-request-id", "x-tenant"]));
        let c = intern_header_list(names(&["x-tenant", "x-request-id"]));
        assert!(std::ptr::eq(a, b), "the same list is shared");
        assert!(!std::ptr::eq(a, c), "order is part of the list");
        assert_eq!(a, &names(&["x-request-id", "x-tenant"])[..]);
        assert_eq!(c, &names(&["x-tenant", "x-request-id"])[..]);
    }

    #[test]
    fn the_layer_keeps_the_configured_list() {
        let layer = ServerLayer::new().record_request_headers(names(&["x-one", "x-two"]));
        assert_eq!(
            layer.settings.request_headers,
            Some(&names(&["x-one", "x-two"])[..])
        );
        let none = ServerLayer::new().record_request_headers(Vec::new());
        assert_eq!(none.settings.request_headers, None);
    }
}
