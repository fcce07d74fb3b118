//! OTLP log export (`OTEL_LOGS_EXPORTER=otlp`): records reach the receiver over gRPC and HTTP
//! with the request's trace context (sampled or not), and failed batches are counted exactly.

use std::sync::Mutex;
use std::time::Duration;

use observe_core::config::{BatchConfig, Config, ExporterKind, OtlpProtocol};
use observe_core::context::RequestContext;
use observe_core::counters::LOG_RECORDS_DROPPED;
use observe_core::trace::otlp_logs;
use observe_tests::otlp::{Mode, OtlpReceiver};
use tracing_subscriber::layer::SubscriberExt;

static SERIAL: Mutex<()> = Mutex::new(());

fn config(receiver: &OtlpReceiver, protocol: OtlpProtocol) -> Config {
    let mut batch = BatchConfig::default();
    batch.schedule_delay = Duration::from_secs(60);
    batch.max_export_batch_size = 10;
    let endpoint = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => receiver.http_endpoint(),
    };
    let mut c = Config::default()
        .service_name("trace-logs-test")
        .otlp_endpoint(endpoint)
        .otlp_protocol(protocol)
        .batch(batch);
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
    let logs = otlp_logs::install(&config(&receiver, OtlpProtocol::Grpc))
        .unwrap()
        .unwrap();
    receiver.set_mode(Mode::Fail);
    let before = LOG_RECORDS_DROPPED.get();
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..25 {
            tracing::info!(i, "refused");
        }
    });
    assert_eq!(logs.shutdown(Duration::from_secs(10)), 0);
    assert_eq!(LOG_RECORDS_DROPPED.get() - before, 25);
    assert_eq!(
        receiver.stats()["failed"],
        3,
        "batches of at most 10: 3 requests"
    );
    assert!(receiver.logs().is_empty());
}
