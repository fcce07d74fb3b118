//! # observe-axum
//!
//! observe for axum services: one `init`, one layer, and logs, metrics and traces line up.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! # async fn user() -> &'static str { "" }
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _telemetry = observe_axum::init!()?;
//!     let app = Router::new()
//!         .route("/users/{id}", get(user))
//!         .merge(observe_axum::metrics_router())  // GET /metrics (never measured itself)
//!         .layer(observe_axum::layer());          // RED metrics + trace context + request span
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! The route label is axum's [`MatchedPath`] — the template
//! (`/users/{id}`), including routes of nested routers. Requests that match no route
//! (fallbacks, 404s) carry no route label at all, never their raw path, so URL floods cannot
//! create series.
//!
//! **Apply the layer last.** `Router::layer` wraps the routes *and the fallback* present at
//! that point; a router merged afterwards brings its own default fallback, which replaces the
//! layered one — 404s would then go unmeasured. `/metrics` from [`metrics_router`] is skipped
//! by the layer wherever it is merged.
#![warn(missing_docs)]

use axum::extract::{FromRequestParts, MatchedPath, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use observe_core::context::RequestContext;
use observe_core::http::{RouteExtractor, Routed, ServerLayer};
use observe_core::metrics::{Metrics, Route};
use std::cell::{Cell, RefCell};

pub use observe_core;
pub use observe_core::init;

/// The [`RouteExtractor`] for axum: the request's [`MatchedPath`], interned.
///
/// Used by [`layer()`]; with `Router::layer` axum has already routed the request when the
/// layer sees it, so the matched template is in the request's extensions.
///
/// ```
/// use observe_axum::MatchedPathRoute;
/// use observe_core::http::RouteExtractor;
/// // No MatchedPath (axum did not match a route): no route value.
/// assert!(MatchedPathRoute.route(&http::Request::new(())).is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchedPathRoute;

impl RouteExtractor for MatchedPathRoute {
    #[inline]
    fn route<B>(&self, request: &http::Request<B>) -> Option<Route> {
        request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| Route::intern(path.as_str()))
    }

    /// Scrapes of [`METRICS_PATH`] and views of the status page are not measured.
    #[inline]
    fn skip<B>(&self, request: &http::Request<B>) -> bool {
        request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| is_observe_path(path.as_str()))
    }

    /// One extension lookup for both questions.
    #[inline]
    fn routed<B>(&self, request: &http::Request<B>) -> Routed {
        match request.extensions().get::<MatchedPath>() {
            Some(path) => routed_cached(path),
            None => Routed::Measure(None),
        }
    }
}

/// Slots of the per-thread cache of routing decisions.
const ROUTED_SLOTS: usize = 16;

/// A cached decision: the address and length of the template it was made for, and whether
/// the status page was installed then (the only input that can change later, and only once).
#[derive(Clone, Copy)]
struct Decision {
    addr: usize,
    len: usize,
    routed: Routed,
    status_page_known: bool,
}

/// The templates whose addresses [`DECISIONS`] holds, kept alive so that their allocations
/// cannot be freed and reused: while a clone is held here, a `MatchedPath` at that address
/// is that template.
struct Held([Option<MatchedPath>; ROUTED_SLOTS]);

impl Drop for Held {
    fn drop(&mut self) {
        // The templates are released: no decision may outlive them.
        let _ = DECISIONS.try_with(|slots| slots.iter().for_each(|slot| slot.set(None)));
    }
}

thread_local! {
    // Plain `Copy` cells with no destructor: reading them is a load, with no lazy
    // registration to check. Only a miss touches `HELD`.
    static DECISIONS: [Cell<Option<Decision>>; ROUTED_SLOTS] =
        const { [const { Cell::new(None) }; ROUTED_SLOTS] };
    static HELD: RefCell<Held> = const { RefCell::new(Held([const { None }; ROUTED_SLOTS])) };
}

/// The decision for `path`, from a per-thread cache keyed by the template's address.
///
/// axum hands every request of a route of the router the layer wraps a clone of one
/// `Arc<str>` template, so a hit costs an address comparison: no byte comparison, no interner
/// lookup, no check of the observe paths. (A router mounted with `nest_service` or
/// `fallback_service` builds its requests' template afresh each time: those miss, and are
/// interned by content as before.)
#[inline]
fn routed_cached(path: &MatchedPath) -> Routed {
    let s = path.as_str();
    let addr = s.as_ptr() as usize;
    let slot = ((addr >> 4) ^ (addr >> 12)) % ROUTED_SLOTS;
    if let Some(hit) = DECISIONS.with(|slots| slots[slot].get()) {
        if hit.addr == addr
            && hit.len == s.len()
            && (hit.status_page_known || observe_core::status::global().is_none())
        {
            return hit.routed;
        }
    }
    routed_miss(path, slot)
}

#[cold]
fn routed_miss(path: &MatchedPath, slot: usize) -> Routed {
    let s = path.as_str();
    let status_page_known = observe_core::status::global().is_some();
    let routed = if is_observe_path(s) {
        Routed::Skip
    } else {
        Routed::Measure(Some(Route::intern(s)))
    };
    // Best effort: on a thread being torn down, or re-entered, nothing is cached.
    let _ = HELD.try_with(|held| {
        let Ok(mut held) = held.try_borrow_mut() else {
            return;
        };
        // Forget the old decision before its template may be freed.
        DECISIONS.with(|slots| slots[slot].set(None));
        held.0[slot] = Some(path.clone());
        DECISIONS.with(|slots| {
            slots[slot].set(Some(Decision {
                addr: s.as_ptr() as usize,
                len: s.len(),
                routed,
                status_page_known,
            }))
        });
    });
    routed
}

fn is_observe_path(path: &str) -> bool {
    path == METRICS_PATH
        || observe_core::status::global()
            .is_some_and(|page| path == page.path() || path == page.json_path())
}

/// The path [`metrics_router`] serves, which [`layer()`] never measures.
pub const METRICS_PATH: &str = "/metrics";

/// The observe layer for an axum `Router`: RED metrics, trace context and request spans.
///
/// Apply it with `Router::layer` (so it sees `MatchedPath`) as the last step, after every
/// route, nested and merged router: it measures the routes and the fallback present then.
/// Requests to [`METRICS_PATH`] pass through unmeasured. Configure it further with the
/// [`ServerLayer`] builder methods.
///
/// ```
/// use axum::{routing::get, Router};
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(observe_axum::layer());
/// # let _ = app;
/// ```
pub fn layer() -> ServerLayer<MatchedPathRoute> {
    ServerLayer::new().route_extractor(MatchedPathRoute)
}

/// A router serving `GET /metrics` from the global registry (Prometheus text, or OpenMetrics
/// with exemplars when the scraper asks for it; gzip when accepted).
///
/// Scrapes are never measured by [`layer()`]: merge it before applying the layer.
///
/// ```
/// use axum::Router;
/// let app: Router = Router::new()
///     .merge(observe_axum::metrics_router())
///     .layer(observe_axum::layer());
/// # let _ = app;
/// ```
pub fn metrics_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    metrics_router_for(Metrics::global())
}

/// Like [`metrics_router`], serving `metrics` instead of the global registry.
///
/// When `init` enabled the status page (`Config::status_page(true)` or
/// `OBSERVE_STATUS_PAGE=true`), the router also serves it at `/observe` (HTML) and
/// `/observe.json`, to loopback peers only unless configured otherwise.
///
/// ```
/// use axum::Router;
/// let app: Router = Router::new()
///     .merge(observe_axum::metrics_router_for(observe_core::metrics::Metrics::global()));
/// # let _ = app;
/// ```
pub fn metrics_router_for<S: Clone + Send + Sync + 'static>(
    metrics: &'static Metrics,
) -> Router<S> {
    let router = Router::new().route(
        METRICS_PATH,
        get(move |headers: HeaderMap| async move { metrics.http_response(&headers) }),
    );
    match observe_core::status::global() {
        Some(page) => router
            .route(page.path(), get(status_page))
            .route(page.json_path(), get(status_page)),
        None => router,
    }
}

/// Serves the status page `init` installed. The peer address comes from axum's `ConnectInfo`
/// (serve with `into_make_service_with_connect_info::<SocketAddr>()`); without it the page
/// cannot tell a loopback peer and answers 403 unless remote access was allowed.
async fn status_page(request: axum::extract::Request) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    match observe_core::status::global().and_then(|page| page.handle(&request, peer)) {
        Some(response) => response.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The current request's trace id, for error pages and support tickets.
///
/// Extracts the id the observe layer chose for this request (the caller's trace id when a
/// `traceparent` came in), sampled or not. `Option<TraceId>` never fails; `TraceId` fails with
/// [`MissingTraceContext`] (500) when the observe layer is not installed on this route.
///
/// ```
/// use axum::{routing::get, Router};
/// use observe_axum::TraceId;
///
/// async fn failing(trace: TraceId) -> (http::StatusCode, String) {
///     (http::StatusCode::INTERNAL_SERVER_ERROR, format!("something broke; quote {trace}"))
/// }
/// let app: Router = Router::new().route("/fail", get(failing)).layer(observe_axum::layer());
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub observe_core::context::TraceId);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// The rejection of [`TraceId`] when no request context is installed (the observe layer is
/// not on this route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingTraceContext;

impl std::fmt::Display for MissingTraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no trace context: observe_axum::layer() is not installed on this route")
    }
}

impl std::error::Error for MissingTraceContext {}

impl IntoResponse for MissingTraceContext {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TraceId {
    type Rejection = MissingTraceContext;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        RequestContext::current()
            .map(|cx| TraceId(cx.trace_id))
            .ok_or(MissingTraceContext)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for TraceId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(RequestContext::current().map(|cx| TraceId(cx.trace_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A real `MatchedPath` for `template`, as axum hands it to requests of that route.
    async fn matched_path(template: &str) -> MatchedPath {
        let (tx, rx) = std::sync::mpsc::channel();
        let router: Router = Router::new().route(
            template,
            get(move |path: MatchedPath| async move {
                tx.send(path).unwrap();
            }),
        );
        let uri = template.replace("{id}", "1");
        let request = http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        router.oneshot(request).await.unwrap();
        rx.recv().unwrap()
    }

    fn slot_of(path: &MatchedPath) -> usize {
        let addr = path.as_str().as_ptr() as usize;
        ((addr >> 4) ^ (addr >> 12)) % ROUTED_SLOTS
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_cache_holds_the_template_whose_address_it_keeps() {
        let path = matched_path("/held/{id}").await;
        let slot = slot_of(&path);
        let routed = routed_cached(&path);
        assert_eq!(routed, Routed::Measure(Some(Route::intern("/held/{id}"))));
        // Its allocation is kept alive by the cache, so no other template can take its
        // address while the decision is cached.
        let held = HELD.with(|held| held.borrow().0[slot].as_ref().map(|p| p.as_str().as_ptr()));
        assert_eq!(held, Some(path.as_str().as_ptr()));
        let decision = DECISIONS.with(|slots| slots[slot].get()).expect("cached");
        assert_eq!(decision.addr, path.as_str().as_ptr() as usize);
        assert_eq!(decision.routed, routed);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn releasing_the_templates_forgets_the_decisions() {
        let path = matched_path("/released/{id}").await;
        let slot = slot_of(&path);
        let _ = routed_cached(&path);
        assert!(DECISIONS.with(|slots| slots[slot].get()).is_some());
        // What the thread's teardown does with the held templates.
        let held = HELD.with(|held| {
            std::mem::replace(
                &mut *held.borrow_mut(),
                Held([const { None }; ROUTED_SLOTS]),
            )
        });
        // Replacing did not run the old value's destructor yet: it runs here.
        drop(held);
        assert!(DECISIONS.with(|slots| slots.iter().all(|slot| slot.get().is_none())));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn observe_paths_are_skipped() {
        let path = matched_path(METRICS_PATH).await;
        assert_eq!(routed_cached(&path), Routed::Skip);
        assert_eq!(routed_cached(&path), Routed::Skip, "from the cache");
    }
}
