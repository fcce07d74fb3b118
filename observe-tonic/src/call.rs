//! One call's state, from the request to the end of the response stream.
//!
//! A [`Call`] moves from the response future into the response body; whichever holds it last
//! ends it. It ends exactly once: with the status the response carries, or — dropped before
//! that — as `CANCELLED`. Ending records the duration histogram, ends the span (sampled calls)
//! and lowers the active-calls gauge.

use observe_core::clock::Instant;
use std::borrow::Cow;
use std::fmt;

use http::uri::PathAndQuery;
use http::{Request, Response};
use observe_core::context::{RequestContext, SpanId, TraceId};
use observe_core::metrics::{
    ErrorType, Exemplar, GrpcCode, InFlight, Metrics, RpcLabels, RpcMethod,
};
use observe_core::propagation;
use observe_core::trace::{self, Sampler};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracer;
use tonic::Code;

use crate::body::{ResponseBody, DROPPED};
use crate::method::{self, InlineName};
use crate::status;
use observe_core::propagation::carried::{self as carry, Carried};

/// Which side of the call this process is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// What a layer was configured with; shared by its services (`Arc`).
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub(crate) metrics: Option<&'static Metrics>,
    pub(crate) tracer: Option<&'static SdkTracer>,
    pub(crate) sampler: Option<Sampler>,
    /// `None`: any method the server routes is labelled by name. `Some`: only these (sorted by
    /// name, for binary search); everything else is `_OTHER`.
    pub(crate) allow: Option<Vec<RpcMethod>>,
}

impl Settings {
    pub(crate) fn set_allow<I: IntoIterator<Item = &'static str>>(&mut self, methods: I) {
        let mut list: Vec<RpcMethod> = methods
            .into_iter()
            .filter_map(|m| method::parse_name(m).map(RpcMethod::intern))
            .filter(|m| *m != RpcMethod::OTHER)
            .collect();
        list.sort_unstable_by_key(|m| m.as_str());
        list.dedup();
        self.allow = Some(list);
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("custom_metrics", &self.metrics.is_some())
            .field("custom_tracer", &self.tracer.is_some())
            .field("sampler", &self.sampler)
            .field("known_methods", &self.allow)
            .finish()
    }
}

/// What is known about the call's `rpc.method` before the response says whether it was routed.
// Boxing the large variant would allocate per call, which is what it exists to avoid.
#[allow(clippy::large_enum_variant)]
enum MethodState {
    /// Decided at the start.
    Decided(RpcMethod),
    /// A well-formed name, not yet known to be routed: nothing is interned for a method the
    /// server does not have.
    Pending(InlineName),
}

/// One call in flight.
pub(crate) struct Call {
    side: Side,
    metrics: &'static Metrics,
    // Lowers the active-calls gauge when the call is dropped, after it was recorded.
    _in_flight: InFlight<'static>,
    start: Instant,
    cx: RequestContext,
    method: MethodState,
    /// Cleared when the response is the router's own `UNIMPLEMENTED` (no such method).
    routed: bool,
    /// The span (sampled calls with a tracer only), as the context that holds it.
    otel: Option<opentelemetry::Context>,
    /// The propagated headers the request arrived with (server side), carried into polls.
    carried: Carried,
    done: bool,
}

impl Call {
    /// Starts a server call: the caller's context from the metadata (or a new trace), the
    /// sampling decision, the span when sampled.
    pub(crate) fn start_server<B>(settings: &Settings, req: &Request<B>) -> Call {
        let extracted = propagation::extract(req.headers());
        let parent = extracted.traceparent;
        let sampler = settings.sampler.unwrap_or_else(trace::sampler);
        let mut cx = sampler.request_context(parent.as_ref());
        let sampled = cx.is_sampled();
        let method = resolve(settings, req.uri().path_and_query());
        let tracer = sampled
            .then(|| settings.tracer.or_else(trace::tracer))
            .flatten();
        let otel = tracer.map(|tracer| {
            let parent_cx = match parent {
                Some(p) => opentelemetry::Context::new().with_remote_span_context(
                    opentelemetry::trace::SpanContext::new(
                        p.trace_id.into(),
                        p.parent_id.into(),
                        opentelemetry::trace::TraceFlags::new(p.flags.bits()),
                        true,
                        extracted
                            .tracestate
                            .as_ref()
                            .and_then(|v| v.to_str().ok())
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_default(),
                    ),
                ),
                None => opentelemetry::Context::new(),
            };
            let span_cx = start_span(tracer, SpanKind::Server, &method, req, &parent_cx);
            adopt_span_ids(&mut cx, &span_cx);
            span_cx
        });
        let metrics = settings.metrics.unwrap_or_else(Metrics::global);
        Call {
            side: Side::Server,
            metrics,
            _in_flight: metrics.rpc_server().start(),
            start: Instant::now(),
            cx,
            method,
            routed: true,
            otel,
            carried: Carried {
                tracestate: extracted.tracestate,
                baggage: extracted.baggage,
            },
            done: false,
        }
    }

    /// Starts a client call: continues the current request's context (if any) into the call's
    /// metadata, with a client span when sampled. Without a current context the call carries
    /// no trace context and the server starts a trace, as the HTTP client layer does.
    pub(crate) fn start_client<B>(settings: &Settings, req: &mut Request<B>) -> Call {
        let method = resolve(settings, req.uri().path_and_query());
        let current = RequestContext::current();
        let mut otel = None;
        let cx = match current {
            Some(parent) => {
                let mut cx = parent;
                let tracer = parent
                    .is_sampled()
                    .then(|| settings.tracer.or_else(trace::tracer))
                    .flatten();
                if let Some(tracer) = tracer {
                    let parent_cx = parent_otel_context(&parent);
                    let span_cx = start_span(tracer, SpanKind::Client, &method, req, &parent_cx);
                    adopt_span_ids(&mut cx, &span_cx);
                    otel = Some(span_cx);
                }
                carry::with_current(|carried| {
                    propagation::inject(
                        &cx,
                        carried.tracestate.as_ref(),
                        carried.baggage.as_ref(),
                        req.headers_mut(),
                    )
                });
                cx
            }
            // Not propagated; used only for the (absent) exemplar.
            None => RequestContext::new(TraceId::INVALID, SpanId::INVALID, Default::default()),
        };
        let metrics = settings.metrics.unwrap_or_else(Metrics::global);
        Call {
            side: Side::Client,
            metrics,
            _in_flight: metrics.rpc_client().start(),
            start: Instant::now(),
            cx,
            method,
            routed: true,
            otel,
            carried: Carried::default(),
            done: false,
        }
    }

    /// The context the call runs in (server) or propagated (client).
    pub(crate) fn cx(&self) -> RequestContext {
        self.cx
    }

    /// The received `tracestate`/`baggage` slot, swapped into the thread-local around polls.
    pub(crate) fn carried(&self) -> &Carried {
        &self.carried
    }

    /// Attaches the call's OpenTelemetry context for the duration of a poll (sampled server
    /// calls), so users' `tracing` spans become children of the call's span.
    pub(crate) fn attach_otel(&self) -> Option<opentelemetry::ContextGuard> {
        match self.side {
            Side::Server => self.otel.clone().map(opentelemetry::Context::attach),
            Side::Client => None,
        }
    }

    /// The code for an error that carries no `tonic::Status`.
    pub(crate) fn error_fallback(&self) -> Code {
        match self.side {
            Side::Server => Code::Unknown,
            Side::Client => Code::Unavailable,
        }
    }

    /// Records that the response is the router's `UNIMPLEMENTED`: no such service or method.
    pub(crate) fn mark_unrouted(&mut self) {
        self.routed = false;
    }

    /// Ends the call with `code`.
    pub(crate) fn finish(mut self, code: Code) {
        self.end(code, false);
    }

    fn end(&mut self, code: Code, dropped: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed();
        let method = self.final_method();
        let grpc = GrpcCode::from_i32(code as i32);
        let error = dropped.then_some(ErrorType::Cancelled);
        let exemplar = self.cx.is_sampled().then_some(Exemplar {
            trace_id: self.cx.trace_id,
            span_id: self.cx.span_id,
        });
        let labels = RpcLabels {
            method,
            code: grpc,
            error,
        };
        match self.side {
            Side::Server => self.metrics.rpc_server().record(labels, elapsed, exemplar),
            Side::Client => self.metrics.rpc_client().record(labels, elapsed, exemplar),
        }
        if let Some(otel) = self.otel.take() {
            let span = otel.span();
            if method == RpcMethod::OTHER {
                span.update_name("grpc");
                if let MethodState::Pending(name) = &self.method {
                    span.set_attribute(KeyValue::new(
                        "rpc.method_original",
                        name.as_str().to_owned(),
                    ));
                }
            }
            span.set_attribute(KeyValue::new("rpc.method", method.as_str()));
            span.set_attribute(KeyValue::new("rpc.response.status_code", grpc.as_str()));
            let failed = match self.side {
                Side::Server => status::is_server_error(code),
                Side::Client => status::is_client_error(code),
            };
            if failed {
                span.set_attribute(KeyValue::new("error.type", grpc.as_str()));
                span.set_status(Status::error(grpc.as_str()));
            }
            span.end();
        }
    }

    /// The `rpc_method` label, decided now that the response said whether it was routed.
    fn final_method(&self) -> RpcMethod {
        match &self.method {
            MethodState::Decided(m) => *m,
            MethodState::Pending(name) if self.routed => RpcMethod::intern(name.as_str()),
            MethodState::Pending(_) => RpcMethod::OTHER,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(DROPPED, true);
    }
}

/// The method label as far as it can be decided before the response.
fn resolve(settings: &Settings, path: Option<&PathAndQuery>) -> MethodState {
    let Some(name) = path.and_then(|p| method::parse(p.path())) else {
        return MethodState::Decided(RpcMethod::OTHER);
    };
    match &settings.allow {
        Some(list) => MethodState::Decided(
            list.binary_search_by(|m| m.as_str().cmp(name))
                .map_or(RpcMethod::OTHER, |i| list[i]),
        ),
        None => InlineName::new(name)
            .map_or(MethodState::Decided(RpcMethod::OTHER), MethodState::Pending),
    }
}

/// Starts a span named for the method (`pkg.Service/Method`) with the attributes known now.
fn start_span<B>(
    tracer: &SdkTracer,
    kind: SpanKind,
    method: &MethodState,
    req: &Request<B>,
    parent_cx: &opentelemetry::Context,
) -> opentelemetry::Context {
    let name: Cow<'static, str> = match method {
        MethodState::Decided(m) if *m == RpcMethod::OTHER => "grpc".into(),
        MethodState::Decided(m) => m.as_str().into(),
        MethodState::Pending(name) => name.as_str().to_owned().into(),
    };
    let mut attributes = vec![KeyValue::new("rpc.system.name", "grpc")];
    if kind == SpanKind::Client {
        if let Some(host) = req.uri().host() {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = req.uri().port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent_cx);
    parent_cx.with_span(span)
}

/// The SDK chose the span's id (and a new root's trace id): make the ids in logs and outgoing
/// metadata the exported span's own.
fn adopt_span_ids(cx: &mut RequestContext, span_cx: &opentelemetry::Context) {
    let sc = span_cx.span().span_context().clone();
    if sc.is_valid() {
        *cx = RequestContext::new(
            sc.trace_id().into(),
            sc.span_id().into(),
            cx.flags.with_sampled(sc.is_sampled()),
        );
    }
}

/// The parent of a client span: the attached OpenTelemetry context (the server span, or a
/// user's span) when it belongs to this trace, otherwise the request context's ids.
fn parent_otel_context(cx: &RequestContext) -> opentelemetry::Context {
    let current = opentelemetry::Context::current();
    if current.span().span_context().trace_id() == cx.trace_id.into() {
        return current;
    }
    opentelemetry::Context::new().with_remote_span_context(opentelemetry::trace::SpanContext::new(
        cx.trace_id.into(),
        cx.span_id.into(),
        opentelemetry::trace::TraceFlags::new(cx.flags.bits()),
        false,
        Default::default(),
    ))
}

/// Turns the inner service's response into the layer's: a trailers-only response (status in
/// the headers) ends the call now; otherwise the call rides in the body to its trailers.
pub(crate) fn respond<B>(
    call: Option<Call>,
    response: Response<B>,
    cx: Option<RequestContext>,
) -> Response<ResponseBody<B>> {
    let (parts, body) = response.into_parts();
    let call = call.and_then(|mut call| match status::from_headers(&parts.headers) {
        Some(code) => {
            // tonic's router and generated servers answer an unknown service or method with
            // a bare UNIMPLEMENTED (no message); a handler's own `Status` carries one.
            if code == Code::Unimplemented && !parts.headers.contains_key(GRPC_MESSAGE) {
                call.mark_unrouted();
            }
            call.finish(code);
            None
        }
        None => Some(call),
    });
    let http_status = parts.status;
    Response::from_parts(parts, ResponseBody::new(body, call, cx, http_status))
}

const GRPC_MESSAGE: &str = "grpc-message";
