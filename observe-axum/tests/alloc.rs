//! Allocation count of the request path, exact: observe's layer on an axum `Router` must
//! allocate per unsampled request exactly what a do-nothing layer does (axum's own floor for
//! `Router::layer`: it re-boxes the route's service, future and body).
//!
//! Its own test binary with a counting global allocator; one `#[test]` so nothing else runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use observe_core::metrics::Metrics;
use observe_core::trace::Sampler;
use tower::ServiceExt;

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A layer that does nothing: the reference for what `Router::layer` itself costs.
#[derive(Clone)]
struct PassThrough;
impl<S> tower::Layer<S> for PassThrough {
    type Service = S;
    fn layer(&self, inner: S) -> S {
        inner
    }
}

fn routes() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/health", get(|| async { "ok" }))
}

/// What `axum::serve` runs: `into_make_service` applies the state once, turning every handler
/// into a ready `Route` (without it axum would rebuild the layered handler per request).
fn served(router: Router) -> Router {
    router.with_state(())
}

/// Drives one request to completion (the handlers are ready at once) without a runtime.
fn run(router: &Router, request: http::Request<Body>) -> http::StatusCode {
    let fut = router.clone().oneshot(request);
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(response) => response.unwrap().status(),
        Poll::Pending => panic!("handler should complete immediately"),
    }
}

/// Allocations per request over `n` requests, after warm-up.
fn allocations_per_request(router: &Router, n: u64) -> f64 {
    // Half continue an unsampled caller's trace, half start a new (unsampled) root.
    let make = |i: u64| {
        let mut request = http::Request::get(if i.is_multiple_of(2) {
            "/users/42"
        } else {
            "/health"
        });
        if i % 4 < 2 {
            request = request.header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            );
        }
        request.body(Body::empty()).unwrap()
    };
    for i in 0..100 {
        assert_eq!(run(router, make(i)), http::StatusCode::OK);
    }
    let requests: Vec<_> = (0..n).map(make).collect();
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for request in requests {
        run(router, request);
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) as f64 / n as f64
}

#[test]
fn observe_layer_allocates_nothing_beyond_axums_layer_floor_when_unsampled() {
    let metrics = Metrics::new(Default::default()).leak();
    let bare = served(routes());
    let reference = served(routes().layer(PassThrough));
    let observed = served(
        routes().layer(
            observe_axum::layer()
                .metrics(metrics)
                .sampler(Sampler::ParentBasedAlwaysOff),
        ),
    );

    let n = 1000;
    let bare_allocs = allocations_per_request(&bare, n);
    let reference_allocs = allocations_per_request(&reference, n);
    let observed_allocs = allocations_per_request(&observed, n);
    eprintln!(
        "allocations per request: bare router {bare_allocs}, do-nothing layer {reference_allocs}, observe layer {observed_allocs}"
    );
    assert_eq!(
        observed_allocs, reference_allocs,
        "observe's layer must add no allocation of its own on unsampled requests"
    );
    // Guard against a vacuous comparison: the observe layer really did record the requests.
    let mut text = Vec::new();
    metrics
        .encode(observe_core::metrics::Format::PrometheusText, &mut text)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("http_route=\"/users/{id}\""), "{text}");
}
