//! The in-process span store, and the no-endpoint configuration that installs nothing.

use std::sync::Mutex;
use std::time::Duration;

use observe_core::config::Config;
use observe_core::otel::opentelemetry::trace::{Status, TraceContextExt, Tracer};
use observe_core::trace::{self, collector};

static SERIAL: Mutex<()> = Mutex::new(());

fn export_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "observe-span-expo")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn no_endpoint_installs_no_tracer_and_no_thread() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = trace::install(&Config::default()).unwrap();
    assert!(trace::tracer().is_none());
    assert!(trace::otel_layer::<tracing_subscriber::Registry>().is_none());
    assert!(collector::global().is_none());
    assert_eq!(export_threads(), 0);
    let report = guard.shutdown(Duration::from_secs(1));
    assert_eq!((report.spans_exported, report.spans_dropped), (0, 0));
}

#[test]
fn a_second_install_is_refused_while_the_first_is_alive() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let first = trace::install(&Config::default()).unwrap();
    assert!(matches!(
        trace::install(&Config::default()),
        Err(observe_core::init::InitError::AlreadyInitialized)
    ));
    drop(first);
    let again = trace::install(&Config::default()).expect("allowed after the guard is gone");
    drop(again);
}

#[test]
fn span_store_is_bounded_and_queryable_by_trace() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = trace::install(&Config::default().span_collector(4)).unwrap();
    assert_eq!(export_threads(), 0, "a store alone needs no export thread");
    let tracer = trace::tracer().expect("a store alone still gives a tracer");
    let store = collector::global().expect("store installed");

    let slow_trace = tracer.in_span("GET /slow", |cx| {
        tracer.in_span("db.query", |_| {
            std::thread::sleep(Duration::from_millis(20))
        });
        cx.span().span_context().trace_id()
    });
    let failed_trace = tracer.in_span("POST /fail", |cx| {
        cx.span().set_status(Status::error("boom"));
        cx.span().span_context().trace_id()
    });
    assert_eq!(store.len(), 3);

    let slow = store.trace(slow_trace.into());
    let names: Vec<&str> = slow.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["GET /slow", "db.query"]);
    let recent = store.recent_traces(10);
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].trace_id, failed_trace.into());
    assert!(recent[0].error);
    assert_eq!(recent[1].root_name, "GET /slow");
    assert_eq!(recent[1].span_count, 2);
    assert!(recent[1].duration >= Duration::from_millis(20));
    let waterfall = store.waterfall(slow_trace.into());
    let lines: Vec<&str> = waterfall.lines().collect();
    assert!(lines[0].starts_with("GET /slow +0.0ms"), "{waterfall}");
    assert!(lines[1].starts_with("  db.query +"), "{waterfall}");

    // Bounded: three more spans evict the two oldest (the slow trace's child ended first,
    // then its root).
    tracer.in_span("a", |_| {});
    tracer.in_span("b", |_| {});
    assert_eq!(store.trace(slow_trace.into()).len(), 1);
    tracer.in_span("c", |_| {});
    assert_eq!(store.len(), 4);
    assert_eq!(store.trace(slow_trace.into()).len(), 0);
    assert_eq!(store.trace(failed_trace.into()).len(), 1);

    // Unsampled spans are not stored.
    drop(guard);
    assert!(trace::tracer().is_none());
    assert!(collector::global().is_none());
    let guard = trace::install(
        &Config::default()
            .span_collector(4)
            .sampler(trace::Sampler::AlwaysOff),
    )
    .unwrap();
    trace::tracer().unwrap().in_span("dropped", |_| {});
    assert!(collector::global().unwrap().is_empty());
    drop(guard);
}
