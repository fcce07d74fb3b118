//! The tower layer for tonic servers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use observe_core::context::RequestContext;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use std::sync::Arc;

use observe_core::metrics::Metrics;
use observe_core::trace::Sampler;
use opentelemetry_sdk::trace::SdkTracer;

use crate::call::{Call, Settings};
use crate::status;
use crate::BoxError;
use observe_core::propagation::carried;

/// Observes every call a tonic server handles: trace context from the request metadata, a
/// server span for sampled calls, the call's [`RequestContext`] on every poll of the handler
/// and of the response stream, and one `rpc_server_call_duration_seconds` observation when the
/// call ends (at the trailers, or at the headers of a trailers-only response; `CANCELLED` when
/// the client goes away first).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// # let routes = tonic::service::Routes::default();
/// tonic::transport::Server::builder()
///     .layer(observe_tonic::server_layer())
///     .add_routes(routes)
///     .serve("127.0.0.1:50051".parse()?)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerLayer {
    settings: Arc<Settings>,
}

impl ServerLayer {
    /// A layer with defaults: metrics on [`Metrics::global`](observe_core::metrics::Metrics::global),
    /// every method the server routes is labelled by name, anything else is `_OTHER`.
    pub fn new() -> Self {
        ServerLayer::default()
    }

    /// Labels only these methods (`pkg.Service/Method`) by name; every other call is `_OTHER`.
    ///
    /// Without this, a method is labelled by name once the server has routed it (answered with
    /// anything but the router's own `UNIMPLEMENTED`), within the metrics' cardinality limit.
    ///
    /// ```
    /// let layer = observe_tonic::ServerLayer::new()
    ///     .known_methods(["helloworld.Greeter/SayHello"]);
    /// # let _ = layer;
    /// ```
    pub fn known_methods<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = &'static str>,
    {
        Arc::make_mut(&mut self.settings).set_allow(methods);
        self
    }

    /// Records into `metrics` instead of [`Metrics::global`] (tests, several registries).
    ///
    /// ```
    /// use observe_core::metrics::{Metrics, MetricsConfig};
    /// let metrics = Metrics::leak(Metrics::new(MetricsConfig::default()));
    /// let layer = observe_tonic::ServerLayer::new().metrics(metrics);
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: &'static Metrics) -> Self {
        Arc::make_mut(&mut self.settings).metrics = Some(metrics);
        self
    }

    /// Creates spans on `tracer` instead of the global one installed by `init`.
    ///
    /// ```no_run
    /// use observe_core::otel::opentelemetry::trace::TracerProvider as _;
    /// use observe_core::otel::opentelemetry_sdk::trace::SdkTracerProvider;
    /// let provider = SdkTracerProvider::builder().build();
    /// let tracer: &'static _ = Box::leak(Box::new(provider.tracer("test")));
    /// let layer = observe_tonic::ServerLayer::new().tracer(tracer);
    /// # let _ = layer;
    /// ```
    pub fn tracer(mut self, tracer: &'static SdkTracer) -> Self {
        Arc::make_mut(&mut self.settings).tracer = Some(tracer);
        self
    }

    /// Decides sampling with `sampler` instead of the global one (server side: client calls
    /// follow the sampling decision of the request they are made from).
    ///
    /// ```
    /// use observe_core::trace::Sampler;
    /// let layer = observe_tonic::ServerLayer::new().sampler(Sampler::AlwaysOff);
    /// # let _ = layer;
    /// ```
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        Arc::make_mut(&mut self.settings).sampler = Some(sampler);
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        // At service construction, so that no request pays for calibrating the clock.
        observe_core::clock::calibrate();
        ServerService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The service [`ServerLayer`] wraps around a tonic server's routes.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let call = Call::start_server(&self.settings, &req);
        let cx = call.cx();
        let inner = {
            // The inner service's `call` may already do work (and log): give it the context.
            let _entered = cx.enter();
            let _otel = call.attach_otel();
            carried::scope(call.carried(), || self.inner.call(req))
        };
        ResponseFuture {
            inner,
            call: Some(call),
            cx,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerService`]: runs the handler inside the call's context and
    /// hands the call on to the [`ResponseBody`] (or ends it, for a trailers-only response).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
        cx: RequestContext,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("cx", &self.cx)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.cx.enter();
        let _otel = this.call.as_ref().and_then(Call::attach_otel);
        let polled = match this.call.as_ref() {
            Some(call) => carried::scope(call.carried(), || this.inner.poll(task)),
            None => this.inner.poll(task),
        };
        let result = std::task::ready!(polled);
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => Ok(crate::call::respond(call, response, Some(*this.cx))),
            Err(e) => {
                let e: BoxError = e.into();
                if let Some(call) = call {
                    let code = status::from_error(&*e, call.error_fallback());
                    call.finish(code);
                }
                Err(e)
            }
        })
    }
}
