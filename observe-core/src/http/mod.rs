//! Framework-neutral tower layers for HTTP servers and clients (`http` 1.x types).
//!
//! - [`ServerLayer`]: for every incoming request, trace context (extracted, continued, made
//!   current for everything the handler does), RED metrics on every outcome (responses, inner
//!   errors, dropped futures), and a server span when sampled. See [`server`] for where a
//!   request is considered done.
//! - [`ClientLayer`]: for every outgoing request, `traceparent`/`tracestate`/`baggage`
//!   propagation, `http_client_request_duration_seconds`, and a client span when sampled.
//!
//! The route label comes from a [`RouteExtractor`] supplied by the framework crate
//! (`observe-axum` reads axum's `MatchedPath`); the default [`NoRoute`] gives none.
//!
//! ```
//! use observe_core::http::{ClientLayer, ServerLayer};
//! let server = ServerLayer::new();
//! let client = ClientLayer::new();
//! # let _ = (server, client);
//! ```

pub mod attributes;
mod carry;
pub mod client;
pub mod route;
pub mod server;

pub use client::{ClientLayer, ClientResponseFuture, ClientService};
pub use route::{NoRoute, RouteExtractor};
pub use server::{ResponseFuture, ResponseHeader, ServerLayer, ServerService};

use http::HeaderName;

use crate::context::RequestContext;

pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub(crate) const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// `00-{trace id}-{span id}-{flags}` on the stack.
pub(crate) fn encode_traceparent(cx: &RequestContext) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    out[3..35].copy_from_slice(&cx.trace_id.to_hex());
    out[36..52].copy_from_slice(&cx.span_id.to_hex());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let flags = cx.flags.bits();
    out[53] = HEX[(flags >> 4) as usize];
    out[54] = HEX[(flags & 0xf) as usize];
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SpanId, TraceFlags, TraceId};

    #[test]
    fn traceparent_encoding_is_w3c_version_00() {
        let cx = RequestContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::new(0x03),
        );
        assert_eq!(
            &encode_traceparent(&cx),
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        );
    }
}
