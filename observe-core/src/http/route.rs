//! Where the `http.route` label comes from.
//!
//! Routing is a framework's business, so the server layer asks a [`RouteExtractor`] for the
//! matched route template of each request. The core default, [`NoRoute`], gives none: a request
//! without a route is recorded with no `http_route` label, never with its raw path, so a flood
//! of distinct URLs (scanners, 404s) cannot create new series.

use http::Request;

use crate::metrics::Route;

/// Tells the server layer which route template a request matched.
///
/// Called once per request, before the inner service runs; it must not allocate on the hot
/// path (an interned [`Route`] is `Copy`). Framework crates implement it: `observe-axum` reads
/// axum's `MatchedPath` from the request's extensions.
///
/// ```
/// use observe_core::http::RouteExtractor;
/// use observe_core::metrics::Route;
///
/// /// Every request is the same route (a single-endpoint service).
/// #[derive(Clone)]
/// struct Fixed(Route);
///
/// impl RouteExtractor for Fixed {
///     fn route<B>(&self, _request: &http::Request<B>) -> Option<Route> {
///         Some(self.0)
///     }
/// }
/// let extractor = Fixed(Route::intern("/ingest"));
/// let request = http::Request::new(());
/// assert_eq!(extractor.route(&request).map(|r| r.as_str()), Some("/ingest"));
/// ```
pub trait RouteExtractor: Clone + Send + Sync + 'static {
    /// The matched route template of `request`, or `None` when it matched no route.
    fn route<B>(&self, request: &Request<B>) -> Option<Route>;

    /// `true` for requests the layer passes through untouched: no metrics, no context, no
    /// span (a metrics endpoint, say, whose scrapes would otherwise measure themselves).
    /// Default: none.
    #[inline]
    fn skip<B>(&self, request: &Request<B>) -> bool {
        let _ = request;
        false
    }

    /// [`skip`](Self::skip) and [`route`](Self::route) in one call: what the layer actually
    /// asks, once per request. The default calls both; implement it when they read the same
    /// data (axum's `MatchedPath`), to read it once.
    ///
    /// ```
    /// use observe_core::http::{NoRoute, RouteExtractor, Routed};
    /// assert_eq!(NoRoute.routed(&http::Request::new(())), Routed::Measure(None));
    /// ```
    #[inline]
    fn routed<B>(&self, request: &Request<B>) -> Routed {
        if self.skip(request) {
            Routed::Skip
        } else {
            Routed::Measure(self.route(request))
        }
    }
}

/// What the server layer does with a request, from [`RouteExtractor::routed`].
///
/// ```
/// use observe_core::http::Routed;
/// use observe_core::metrics::Route;
/// let routed = Routed::Measure(Some(Route::intern("/users/{id}")));
/// assert_ne!(routed, Routed::Skip);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    /// Pass it through untouched: no metrics, no context, no span.
    Skip,
    /// Measure it, under this route template (`None`: it matched no route).
    Measure(Option<Route>),
}

/// The default [`RouteExtractor`]: no request has a route.
///
/// ```
/// use observe_core::http::{NoRoute, RouteExtractor};
/// assert!(NoRoute.route(&http::Request::new(())).is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoute;

impl RouteExtractor for NoRoute {
    #[inline]
    fn route<B>(&self, _request: &Request<B>) -> Option<Route> {
        None
    }
}
