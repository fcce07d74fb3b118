//! JSON log formatting: one event with 5 fields inside 2 spans, written to a sink.
//! Lines/s is 1e9 / ns-per-line; allocations are per line.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use observe_benches::alloc::CountingAlloc;
use observe_benches::sink::{counting_sink, CountingSink};
use observe_benches::{bench_op, sink, Group};
use observe_core::context::{RequestContext, SpanId, TraceFlags, TraceId};
use serde_json::Map;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[inline(never)]
fn event() {
    tracing::info!(
        user_id = 42u64,
        method = "GET",
        route = "/users/{id}",
        status = 200u16,
        latency_ms = 1.25f64,
        "request finished"
    );
}

/// Benches `event()` under `dispatch`, inside an outer and an inner span.
fn bench_lines(g: &mut Group<'_>, id: &str, label: &str, order: u32, dispatch: &Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        let outer = tracing::info_span!("request", method = "GET", route = "/users/{id}");
        let _outer = outer.enter();
        let inner = tracing::info_span!("load_user", user_id = 42u64);
        let _inner = inner.enter();
        let before = sink::bytes();
        event();
        let line = sink::bytes() - before;
        assert!(line > 0, "{id} wrote nothing");
        let mut extra = Map::new();
        extra.insert("line_bytes".into(), line.into());
        bench_op(g, id, label, order, extra, 10_000, event);
    });
}

fn json_log(c: &mut Criterion) {
    assert!(
        observe_benches::alloc::is_installed(),
        "counting allocator not installed"
    );
    let mut g = Group::new(c, "json_log");
    g.inner.throughput(Throughput::Elements(1));

    let fmt_json = tracing_subscriber::fmt()
        .json()
        .with_writer(counting_sink as fn() -> CountingSink)
        .finish();
    bench_lines(
        &mut g,
        "fmt_json",
        "tracing-subscriber `fmt().json()`",
        0,
        &Dispatch::new(fmt_json),
    );

    let observe_json = Dispatch::new(
        tracing_subscriber::registry().with(
            observe_core::logs::JsonLayer::builder()
                .service_name("bench")
                .writer(counting_sink as fn() -> CountingSink)
                .build(),
        ),
    );
    bench_lines(
        &mut g,
        "observe_json",
        "observe `JsonLayer`",
        1,
        &observe_json,
    );

    // The same layer inside a request: the ids come from the request's context (unsampled, as
    // most are).
    let cx = RequestContext::new(TraceId::random(), SpanId::random(), TraceFlags::default());
    let _cx = cx.enter();
    bench_lines(
        &mut g,
        "observe_json_in_request",
        "observe `JsonLayer`, inside a request context (trace_id, span_id)",
        2,
        &observe_json,
    );

    g.finish();
}

criterion_group! {
    name = benches;
    config = observe_benches::criterion_config();
    targets = json_log
}
criterion_main!(benches);
