//! The response body wrapper shared by the server and client layers: it runs every poll inside
//! the call's [`RequestContext`] and ends the call when the body ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use observe_core::context::RequestContext;
use tonic::Code;

use crate::call::Call;
use crate::status;
use crate::BoxError;
use observe_core::propagation::carried;

pin_project_lite::pin_project! {
    /// A gRPC response body that ends its call when the stream ends.
    ///
    /// The status is read from the trailers frame (or, without one, derived as gRPC says);
    /// a body dropped before its end records the call as `CANCELLED`. Every poll runs with the
    /// call's [`RequestContext`] installed, so logs emitted while a streaming handler produces
    /// messages carry the call's trace id.
    ///
    /// Produced by the server and client layers; users only name it in type signatures.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // `Some` until the call ended (at the trailers, or already at the response headers).
        call: Option<Call>,
        cx: Option<RequestContext>,
        http_status: http::StatusCode,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(
        inner: B,
        call: Option<Call>,
        cx: Option<RequestContext>,
        http_status: http::StatusCode,
    ) -> Self {
        ResponseBody {
            inner,
            call,
            cx,
            http_status,
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("ended", &self.call.is_none())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let _entered = this.cx.map(RequestContext::enter);
        let _otel = this.call.as_ref().and_then(Call::attach_otel);
        let polled = match this.call.as_ref() {
            Some(call) => carried::scope(call.carried(), || this.inner.poll_frame(task)),
            None => this.inner.poll_frame(task),
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(call) = this.call.take() {
                        let code = status::from_headers(trailers)
                            .unwrap_or_else(|| status::from_http_status(*this.http_status));
                        call.finish(code);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                if let Some(call) = this.call.take() {
                    let code = status::from_error(&*e, call.error_fallback());
                    call.finish(code);
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                // The stream ended without trailers: no grpc-status anywhere.
                if let Some(call) = this.call.take() {
                    call.finish(status::from_http_status(*this.http_status));
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // While the call is open, claim more is coming: hyper stops polling a body that says
        // it has ended, and the final poll is where a body without trailers ends its call.
        self.call.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The code a call ends with when its response or body is dropped before the end.
pub(crate) const DROPPED: Code = Code::Cancelled;
