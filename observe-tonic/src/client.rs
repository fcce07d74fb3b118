//! The tower layer for tonic clients (channels).

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
use opentelemetry_sdk::trace::SdkTracer;

use crate::call::{Call, Settings};
use crate::status;
use crate::BoxError;

/// Observes every call made through a tonic channel: the current [`RequestContext`] (the
/// request being handled, if any) continues into the call's `traceparent` metadata, a client
/// span is recorded for sampled calls, and one `rpc_client_call_duration_seconds` observation
/// is made when the call ends (at the trailers, at the headers of a trailers-only response, on
/// a transport error, or `CANCELLED` when the caller drops the call first).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051")
///     .connect()
///     .await?;
/// let channel = tower::ServiceBuilder::new()
///     .layer(observe_tonic::client_layer())
///     .service(channel);
/// // Hand `channel` to a generated client: `GreeterClient::new(channel)`.
/// # let _ = channel;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    settings: Arc<Settings>,
}

impl ClientLayer {
    /// A layer with defaults: metrics on [`Metrics::global`](observe_core::metrics::Metrics::global),
    /// every method the server answers is labelled by name.
    pub fn new() -> Self {
        ClientLayer::default()
    }

    /// Labels only these methods (`pkg.Service/Method`) by name; every other call is `_OTHER`.
    ///
    /// ```
    /// let layer = observe_tonic::ClientLayer::new()
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
    /// let layer = observe_tonic::ClientLayer::new().metrics(metrics);
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
    /// let layer = observe_tonic::ClientLayer::new().tracer(tracer);
    /// # let _ = layer;
    /// ```
    pub fn tracer(mut self, tracer: &'static SdkTracer) -> Self {
        Arc::make_mut(&mut self.settings).tracer = Some(tracer);
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        // At service construction, so that no request pays for calibrating the clock.
        observe_core::clock::calibrate();
        ClientService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The service [`ClientLayer`] wraps around a tonic channel.
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientService<S>
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let call = Call::start_client(&self.settings, &mut req);
        let cx = call.cx();
        ResponseFuture {
            inner: self.inner.call(req),
            call: Some(call),
            cx,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ClientService`]: hands the call on to the [`ResponseBody`] (or
    /// ends it, for a trailers-only response or a transport error).
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
        let result = std::task::ready!(this.inner.poll(task));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => Ok(crate::call::respond(call, response, None)),
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
