//! A collector that is down, failing or stalled: span creation keeps working, every span not
//! delivered is counted exactly in `SPANS_DROPPED`, and shutdown keeps its deadline.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use observe_core::config::{BatchConfig, Config, OtlpProtocol};
use observe_core::counters::{EXPORT_ERRORS, SPANS_DROPPED};
use observe_core::otel::opentelemetry::trace::{Span, Tracer};
use observe_core::trace;
use observe_tests::otlp::{Mode, OtlpReceiver};

/// trace::install and the counters are process-wide: one test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn config(endpoint: String, protocol: OtlpProtocol, batch: BatchConfig) -> Config {
    Config::default()
        .service_name("trace-faults-test")
        .otlp_endpoint(endpoint)
        .otlp_protocol(protocol)
        .otlp_timeout(Duration::from_secs(2))
        .batch(batch)
}

fn batch(delay_ms: u64, queue: usize, batch: usize) -> BatchConfig {
    let mut b = BatchConfig::default();
    b.schedule_delay = Duration::from_millis(delay_ms);
    b.max_queue_size = queue;
    b.max_export_batch_size = batch;
    b
}

fn emit(n: usize, name: &str) {
    let tracer = trace::tracer().expect("tracer installed");
    for _ in 0..n {
        tracer.start(name.to_string()).end();
    }
}

fn flush(guard: &trace::TraceGuard) {
    // Flushing reports the export error of a failed batch; the count is what we check.
    let _ = guard.provider().expect("provider").force_flush();
}

fn receiver_stopped_mid_run(protocol: OtlpProtocol) {
    let Some(mut receiver) = OtlpReceiver::start() else {
        return;
    };
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    // A long schedule delay: exports happen when a batch fills or on flush, so the test
    // decides when; a small queue so that the outage also overflows it.
    let guard = trace::install(&config(endpoint, protocol, batch(60_000, 64, 16))).unwrap();
    let dropped_before = SPANS_DROPPED.get();
    let errors_before = EXPORT_ERRORS.get();

    emit(40, "before");
    flush(&guard);
    let before = receiver.wait_for_spans(40, Duration::from_secs(10)).len();
    assert_eq!(before, 40);

    receiver.stop();
    // While the collector is down, spans are still created and ended without error; the
    // batches that fill are exported, fail, and are counted; the rest overflow the queue.
    emit(300, "during");
    flush(&guard);
    assert!(
        EXPORT_ERRORS.get() > errors_before,
        "failed exports are counted"
    );

    receiver
        .restart()
        .expect("receiver restarts on the same ports");
    emit(25, "after");
    let report = guard.shutdown(Duration::from_secs(15));
    assert!(!report.timed_out, "{report:?}");
    let after = receiver.wait_for_spans(1, Duration::from_secs(5));
    let received = before + after.len();
    let finished = 40 + 300 + 25;
    assert!(after.iter().any(|s| s["name"] == "after"), "export resumes");
    assert_eq!(
        SPANS_DROPPED.get() - dropped_before,
        (finished - received) as u64,
        "every finished span is delivered or counted as dropped (received {received})"
    );
    assert_eq!(report.spans_exported, received as u64);
}

#[test]
fn grpc_receiver_stopped_mid_run_drops_are_counted_exactly() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    receiver_stopped_mid_run(OtlpProtocol::Grpc);
}

#[test]
fn http_receiver_stopped_mid_run_drops_are_counted_exactly() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    receiver_stopped_mid_run(OtlpProtocol::HttpProtobuf);
}

#[test]
fn failing_receiver_counts_every_span_of_each_failed_batch() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let guard = trace::install(&config(
        receiver.http_endpoint(),
        OtlpProtocol::HttpProtobuf,
        batch(60_000, 2048, 10),
    ))
    .unwrap();
    receiver.set_mode(Mode::Fail);
    let dropped_before = SPANS_DROPPED.get();
    let errors_before = EXPORT_ERRORS.get();
    emit(35, "refused");
    flush(&guard);
    assert_eq!(SPANS_DROPPED.get() - dropped_before, 35);
    // 35 spans in batches of at most 10: 4 export requests, each refused once (no retries).
    assert_eq!(EXPORT_ERRORS.get() - errors_before, 4);
    assert_eq!(receiver.stats()["failed"], 4);

    receiver.set_mode(Mode::Ok);
    emit(5, "accepted");
    let report = guard.shutdown(Duration::from_secs(10));
    assert_eq!(report.spans_exported, 5);
    assert_eq!(receiver.spans().len(), 5);
    assert_eq!(SPANS_DROPPED.get() - dropped_before, 35);
}

#[test]
fn shutdown_delivers_every_finished_span() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    // Nothing would be exported for a minute: only shutdown's flush can deliver them.
    let guard = trace::install(&config(
        receiver.grpc_endpoint(),
        OtlpProtocol::Grpc,
        batch(60_000, 2048, 512),
    ))
    .unwrap();
    let dropped_before = SPANS_DROPPED.get();
    emit(1500, "finished");
    let report = guard.shutdown(Duration::from_secs(20));
    assert_eq!(report.spans_exported, 1500, "{report:?}");
    assert_eq!(report.spans_dropped, 0);
    assert_eq!(receiver.spans().len(), 1500);
    assert_eq!(SPANS_DROPPED.get(), dropped_before);
}

#[test]
fn shutdown_with_a_stalled_receiver_returns_within_its_timeout() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let mut b = batch(60_000, 2048, 100);
    b.export_timeout = Duration::from_secs(60);
    // The request timeout is longer than the shutdown timeout too: only shutdown's own
    // deadline can end the wait.
    let cfg = config(receiver.grpc_endpoint(), OtlpProtocol::Grpc, b)
        .otlp_timeout(Duration::from_secs(60));
    let guard = trace::install(&cfg).unwrap();
    receiver.set_mode(Mode::Stall);
    let dropped_before = SPANS_DROPPED.get();
    let mut span = trace::tracer().unwrap().start("stalled");
    span.end();
    emit(249, "stalled");

    let started = Instant::now();
    let report = guard.shutdown(Duration::from_secs(1));
    let took = started.elapsed();
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.spans_dropped, 250);
    assert_eq!(report.spans_exported, 0);
    assert_eq!(SPANS_DROPPED.get() - dropped_before, 250);
    assert!(
        took >= Duration::from_secs(1),
        "waited for the deadline: {took:?}"
    );
    // Generous bound: the point is that it does not wait for the 60 s export timeout.
    assert!(
        took < Duration::from_secs(10),
        "returned by its deadline: {took:?}"
    );
    assert!(receiver.stats()["stalled"].as_u64().unwrap_or(0) >= 1);
    receiver.set_mode(Mode::Ok);
}
