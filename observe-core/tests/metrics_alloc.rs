//! Allocation accounting for the recording path, with a counting global allocator.
//!
//! Counts are per thread (a `const` thread-local, itself allocation-free), so the test
//! harness' other threads do not disturb them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use observe_core::context::{RequestContext, SpanId, TraceId};
use observe_core::metrics::{
    ErrorType, Exemplar, GrpcCode, HttpClientLabels, HttpMethod, HttpServerLabels, Metrics,
    MetricsConfig, Route, RpcLabels, RpcMethod, Series, ServerAddress, UrlScheme,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only bookkeeping is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + layout.size() as i64));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() - layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + new_size as i64 - layout.size() as i64));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

/// What the HTTP and gRPC layers do per request: intern the matched route, raise the gauge,
/// record with labels (and an exemplar when sampled), lower the gauge.
fn one_request(m: &Metrics, route: &str, status: u16, sampled: Option<Exemplar>) {
    let server = m.http_server();
    let in_flight = server.start(HttpMethod::Get, UrlScheme::Https);
    let labels = HttpServerLabels {
        method: HttpMethod::from(&http::Method::GET),
        scheme: UrlScheme::Https,
        route: Some(Route::intern(route)),
        status,
        error: None,
    };
    server.record(labels, Duration::from_micros(1500), sampled);
    drop(in_flight);

    let client = m.http_client();
    let out = client.start(HttpMethod::Post, UrlScheme::Http);
    client.record(
        HttpClientLabels {
            method: HttpMethod::Post,
            server_address: Some(ServerAddress::intern("db.internal")),
            status,
            error: None,
        },
        Duration::from_millis(3),
        sampled,
    );
    drop(out);

    let call = m.rpc_server().start();
    m.rpc_server().record(
        RpcLabels {
            method: RpcMethod::from_path("/shop.Cart/Checkout"),
            code: GrpcCode::from_bytes(b"14"),
            error: None,
        },
        Duration::from_millis(2),
        sampled,
    );
    drop(call);
}

#[test]
fn recording_a_seen_label_set_allocates_nothing() {
    let m = Metrics::new(MetricsConfig::default());
    let sampled = Exemplar::from_context(&RequestContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        observe_core::context::TraceFlags::SAMPLED,
    ));
    assert!(sampled.is_some());
    let cancelled = HttpServerLabels {
        method: HttpMethod::Delete,
        scheme: UrlScheme::Http,
        route: None,
        status: 0,
        error: Some(ErrorType::Cancelled),
    };

    // Warm-up: first-seen label sets insert (and the route is interned once).
    let warm = allocs();
    one_request(&m, "/users/{id}", 200, None);
    one_request(&m, "/users/{id}", 500, sampled);
    m.http_server()
        .record(cancelled, Duration::from_secs(1), None);

    let before = allocs();
    assert!(
        before > warm,
        "the counting allocator sees the warm-up's inserts"
    );
    for i in 0..1000 {
        let status = if i % 2 == 0 { 200 } else { 500 };
        one_request(
            &m,
            "/users/{id}",
            status,
            if i % 3 == 0 { sampled } else { None },
        );
        m.http_server()
            .record(cancelled, Duration::from_secs(1), None);
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "allocations on the recording path after warm-up"
    );

    // And the work was really done.
    let snap = m.http_server().snapshot();
    let total: u64 = snap.iter().map(|s| s.histogram.count).sum();
    assert_eq!(total, 3 + 2000);
    assert_eq!(m.http_server().active(HttpMethod::Get, UrlScheme::Https), 0);
    assert_eq!(m.rpc_server().active(), 0);
}

#[test]
fn overflow_bounds_memory_under_100k_distinct_label_sets() {
    let limit = 100;
    let m = Metrics::new(MetricsConfig::default().with_cardinality_limit(limit));
    let server = m.http_server();
    let attempt = |i: u32| {
        // Distinct routes until the interner is full, then distinct statuses: every attempt
        // is a label set never seen before.
        let route = format!("/attack/{i}");
        server.record(
            HttpServerLabels {
                method: HttpMethod::Get,
                scheme: UrlScheme::Http,
                route: Some(Route::intern(&route)),
                status: 100 + (i % 500) as u16,
                error: None,
            },
            Duration::from_millis(1),
            None,
        );
    };
    let overflow_before = m.self_metrics().metric_overflow.get();
    // Past the interner's bound (MAX_INTERNED) and the family's.
    for i in 0..20_000 {
        attempt(i);
    }
    let live = live_bytes();
    for i in 20_000..100_000 {
        attempt(i);
    }
    let grown = live_bytes() - live;
    assert_eq!(
        grown, 0,
        "memory grew by {grown} bytes over 80,000 new label sets"
    );

    assert_eq!(server.series_count(), limit);
    assert_eq!(server.overflowed(), 100_000 - limit as u64);
    assert!(m.self_metrics().metric_overflow.get() - overflow_before >= 100_000 - limit as u64);
    assert!(Route::interned_count() <= observe_core::metrics::MAX_INTERNED);
    let snap = server.snapshot();
    assert_eq!(snap.len(), limit + 1);
    let overflow = snap.iter().find(|s| s.series == Series::Overflow).unwrap();
    assert_eq!(overflow.histogram.count, 100_000 - limit as u64);
}
