//! One call's state, from the request to the end of the response stream.
//!
//! A [`Call`] moves from the response future into the response body; whichever holds it last
//! ends it. It ends exactly once: with the status the response carries, or — dropped before
//! that — as `CANCELLED`.

use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{Request, Response};
use observe_core::context::RequestContext;
use tonic::Code;

use crate::body::{ResponseBody, DROPPED};
use crate::{method, status};

/// Which side of the call this process is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Which methods are labelled by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Methods {
    /// `None`: any method the server routes. `Some`: only these (sorted, for binary search).
    allow: Option<Arc<[&'static str]>>,
}

impl Methods {
    pub(crate) fn allow<I: IntoIterator<Item = &'static str>>(methods: I) -> Self {
        let mut list: Vec<&'static str> = methods
            .into_iter()
            .map(|m| m.strip_prefix('/').unwrap_or(m))
            .collect();
        list.sort_unstable();
        list.dedup();
        Methods {
            allow: Some(list.into()),
        }
    }
}

/// What is known about the call's `rpc.method` before the response says whether it was routed.
enum MethodState {
    /// Decided at the start: `None` is `_OTHER`.
    Decided(Option<&'static str>),
    /// A well-formed path not yet known to be routed; kept as the request's refcounted bytes.
    Pending(PathAndQuery),
}

/// One call in flight.
pub(crate) struct Call {
    side: Side,
    start: Instant,
    cx: RequestContext,
    method: MethodState,
    /// Cleared when the response is the router's own `UNIMPLEMENTED` (no such method).
    routed: bool,
    done: bool,
}

impl Call {
    pub(crate) fn start_server<B>(methods: &Methods, req: &Request<B>) -> Call {
        let cx = RequestContext::new_root(false); // INTEGRATE: extract + sampler
        Call::new(Side::Server, methods, req.uri().path_and_query(), cx)
    }

    pub(crate) fn start_client<B>(methods: &Methods, req: &mut Request<B>) -> Call {
        let cx = match RequestContext::current() {
            Some(parent) => parent.new_child(parent.is_sampled()),
            None => RequestContext::new_root(false),
        };
        // INTEGRATE: inject
        Call::new(Side::Client, methods, req.uri().path_and_query(), cx)
    }

    fn new(side: Side, methods: &Methods, path: Option<&PathAndQuery>, cx: RequestContext) -> Call {
        let parsed = path.and_then(|p| method::parse(p.path()));
        let method = match (&methods.allow, parsed) {
            (_, None) => MethodState::Decided(None),
            (Some(list), Some(m)) => {
                MethodState::Decided(list.binary_search(&m).ok().map(|i| list[i]))
            }
            (None, Some(_)) => match path {
                Some(p) => MethodState::Pending(p.clone()),
                None => MethodState::Decided(None),
            },
        };
        Call {
            side,
            start: Instant::now(),
            cx,
            method,
            routed: true,
            done: false,
        }
    }

    /// The context the call runs in (server) or propagates (client).
    pub(crate) fn cx(&self) -> RequestContext {
        self.cx
    }

    /// Attaches the call's OpenTelemetry context for the duration of a poll (sampled calls).
    pub(crate) fn attach_otel(&self) -> Option<opentelemetry::ContextGuard> {
        None // INTEGRATE
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
        self.end(code);
    }

    fn end(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.start.elapsed();
        let method = self.method_name();
        let _ = (elapsed, method, status::name(code)); // INTEGRATE: record, span end
    }

    /// The `rpc.method` label: `None` is `_OTHER`.
    fn method_name(&self) -> Option<&str> {
        match &self.method {
            MethodState::Decided(m) => *m,
            MethodState::Pending(p) if self.routed => method::parse(p.path()),
            MethodState::Pending(_) => None,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(DROPPED);
    }
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
            if code == Code::Unimplemented && !parts.headers.contains_key("grpc-message") {
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
