//! OTLP log export (`OTEL_LOGS_EXPORTER=otlp`): records reach the receiver over gRPC and HTTP
//! with the request's trace context (sampled or not), failed batches are counted exactly, and
//! the log batch limits (`OTEL_BLRP_*`, `Config::log_batch`), not the span ones, apply.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use observe_core::config::{BatchConfig, Config, ExporterKind, OtlpProtocol};
use observe_core::context::RequestContext;
use observe_core::counters::LOG_RECORDS_DROPPED;
use observe_core::trace::otlp_logs;
use observe_tests::otlp::{Mode, OtlpReceiver};
use tracing_subscriber::layer::SubscriberExt;

static SERIAL: Mutex<()> = Mutex::new(());

fn config(receiver: &OtlpReceiver, protocol: OtlpProtocol) -> Config {
    let mut log_batch = BatchConfig::log_records();
    log_batch.schedule_delay = Duration::from_secs(60);
    log_batch.max_export_batch_size = 10;
    config_with(receiver, protocol, log_batch)
}

fn config_with(receiver: &OtlpReceiver, protocol: OtlpProtocol, log_batch: BatchConfig) -> Config {
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    // Span limits unlike the log ones, so a test sees which the log exporter uses.
    let mut span_batch = BatchConfig::default();
    span_batch.max_queue_size = 1000;
    span_batch.max_export_batch_size = 500;
    let mut c = Config::default()
        .service_name("trace-logs-test")
        .otlp_endpoint(endpoint)
        .otlp_protocol(protocol)
        .batch(span_batch)
        .log_batch(log_batch);
    c.logs_exporter = ExporterKind::Otlp;
    c
}

fn logs_reach_the_receiver(protocol: OtlpProtocol, transport: &str) {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let logs = otlp_logs::install(&config(&receiver, protocol))
        .unwrap()
        .expect("logs exporter configured");
    let cx = RequestContext::new_root(false);
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        cx.in_scope(|| tracing::warn!(order_id = 42, paid = true, "payment declined"));
        tracing::info!(target: "opentelemetry_sdk", "SDK diagnostics are not exported");
        tracing::info!("outside any request");
    });
    assert_eq!(logs.shutdown(Duration::from_secs(10)), 0);
    let records = receiver.logs();
    assert_eq!(records.len(), 2, "{records:#?}");
    let declined = &records[0];
    assert_eq!(declined["transport"], transport);
    assert_eq!(declined["body"], "payment declined");
    assert_eq!(declined["severity_text"], "WARN");
    assert_eq!(declined["severity_number"], 13);
    assert_eq!(declined["attributes"]["order_id"], 42);
    assert_eq!(declined["attributes"]["paid"], true);
    assert_eq!(declined["trace_id"], cx.trace_id.to_string());
    assert_eq!(declined["span_id"], cx.span_id.to_string());
    assert_eq!(declined["resource"]["service.name"], "trace-logs-test");
    assert_eq!(records[1]["body"], "outside any request");
    assert_eq!(records[1]["trace_id"], "");
}

#[test]
fn logs_reach_the_receiver_over_grpc() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    logs_reach_the_receiver(OtlpProtocol::Grpc, "grpc");
}

#[test]
fn logs_reach_the_receiver_over_http() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    logs_reach_the_receiver(OtlpProtocol::HttpProtobuf, "http");
}

#[test]
fn no_logs_exporter_unless_configured() {
    let c = Config::default().otlp_endpoint("http://127.0.0.1:4317");
    assert!(otlp_logs::install(&c).unwrap().is_none());
}

#[test]
fn refused_log_batches_are_counted_exactly() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let (dropped, refused) = refuse_all(&receiver, &config(&receiver, OtlpProtocol::Grpc), 25);
    assert_eq!(dropped, 25);
    assert_eq!(refused, 3, "batches of at most 10: 3 requests");
    assert!(receiver.logs().is_empty());
}

/// Installs log export with `config` against `receiver` refusing every export, logs `events`
/// events, shuts down (nothing left queued), and returns the records counted as dropped and
/// the export requests the receiver refused.
fn refuse_all(receiver: &OtlpReceiver, config: &Config, events: usize) -> (u64, u64) {
    let logs = otlp_logs::install(config).unwrap().unwrap();
    receiver.set_mode(Mode::Fail);
    let before = LOG_RECORDS_DROPPED.get();
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..events {
            tracing::info!(i, "refused");
        }
    });
    assert_eq!(logs.shutdown(Duration::from_secs(10)), 0);
    let refused = receiver.stats()["failed"].as_u64().expect("failed count");
    (LOG_RECORDS_DROPPED.get() - before, refused)
}

/// Polls `cond` for up to 10 s.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_log_queue_drops_per_the_log_limits_not_the_span_limits() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    // A queue of 4 in batches of 2 for logs; the spans' queue (1000) would hold everything.
    let mut log_batch = BatchConfig::log_records();
    log_batch.schedule_delay = Duration::from_secs(60);
    log_batch.max_queue_size = 4;
    log_batch.max_export_batch_size = 2;
    let logs = otlp_logs::install(&config_with(&receiver, OtlpProtocol::Grpc, log_batch))
        .unwrap()
        .unwrap();
    receiver.set_mode(Mode::Stall);
    let before = LOG_RECORDS_DROPPED.get();
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        // A full batch of 2 goes out and hangs in the stalled collector...
        tracing::info!("first");
        tracing::info!("second");
        wait_until("the stalled export", || receiver.stats()["stalled"] == 1);
        // ...so of the next 10, the queue of 4 takes 4 and 6 are dropped at once.
        for i in 0..10 {
            tracing::info!(i, "queued or dropped");
        }
    });
    assert_eq!(LOG_RECORDS_DROPPED.get() - before, 6, "queue of 4 is full");
    // Released, the stalled export is refused (its 2 records counted); the 4 queued go out.
    receiver.set_mode(Mode::Ok);
    assert_eq!(logs.shutdown(Duration::from_secs(10)), 0);
    assert_eq!(LOG_RECORDS_DROPPED.get() - before, 8);
    let records = receiver.logs();
    assert_eq!(records.len(), 4, "{records:#?}");
    assert!(records.iter().all(|r| r["body"] == "queued or dropped"));
    let attrs: Vec<_> = records
        .iter()
        .map(|r| r["attributes"]["i"].clone())
        .collect();
    assert_eq!(
        attrs,
        [0, 1, 2, 3],
        "the first four after the stall were kept"
    );
}

#[test]
fn log_export_follows_otel_blrp_from_the_environment() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    // Batches of 3 from OTEL_BLRP_MAX_EXPORT_BATCH_SIZE; OTEL_BSP_* says 500 and is ignored.
    let env = [
        ("OTEL_BLRP_SCHEDULE_DELAY", "60000"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "3"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
    ];
    let config = config_with(
        &receiver,
        OtlpProtocol::HttpProtobuf,
        BatchConfig::log_records(),
    )
    .with_env_from(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let (dropped, refused) = refuse_all(&receiver, &config, 7);
    assert_eq!(dropped, 7);
    assert_eq!(refused, 3, "batches of at most 3: 3 requests");
}
