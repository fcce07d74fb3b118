//! Collector faults while an axum service with observe's layer serves sampled requests over
//! real loopback HTTP (trace_faults.rs covers the same faults without a server): requests stay
//! prompt, drops are counted exactly on `/metrics`, export resumes, and shutdown under load
//! delivers every finished span or keeps its deadline.

mod http_harness;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use http_harness::{get as http_get, sample, serve};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use observe_core::config::{BatchConfig, Config, OtlpProtocol};
use observe_core::metrics::Metrics;
use observe_core::trace::{self, Sampler};
use observe_tests::otlp::{Mode, OtlpReceiver};

/// trace::install and the drop counter are process-wide: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Correctness bound, not a benchmark: a request must never wait for the collector.
const PROMPT: Duration = Duration::from_secs(2);

fn install(
    receiver: &OtlpReceiver,
    delay_ms: u64,
    queue: usize,
    batch: usize,
) -> trace::TraceGuard {
    let mut b = BatchConfig::default();
    b.schedule_delay = Duration::from_millis(delay_ms);
    b.max_queue_size = queue;
    b.max_export_batch_size = batch;
    b.export_timeout = Duration::from_secs(1);
    let config = Config::default()
        .service_name("reliability-faults")
        .otlp_endpoint(receiver.grpc_endpoint())
        .otlp_protocol(OtlpProtocol::Grpc)
        .otlp_timeout(Duration::from_secs(1))
        .sampler(Sampler::AlwaysOn)
        .batch(b);
    trace::install(&config).expect("trace installs")
}

fn app(metrics: &'static Metrics) -> Router {
    Router::new()
        .route("/during", get(|| async { "during" }))
        .route("/after", get(|| async { "after" }))
        .route("/wave1", get(|| async { "wave1" }))
        .route("/wave2", get(|| async { "wave2" }))
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(observe_axum::layer().metrics(metrics))
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `n` GET requests to `path` from 8 concurrent keep-alive tasks; each must answer 200
/// within [`PROMPT`]. Returns the slowest.
async fn load(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
    n: u64,
) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, next, path) = (client.clone(), Arc::clone(&next), path.to_string());
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    slowest = slowest.max(one(&client, addr, &path).await);
                }
                slowest
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    slowest
}

async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Duration {
    let started = Instant::now();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(PROMPT, async {
        let r = client.request(req).await.expect("request over loopback");
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
    })
    .await;
    let took = started.elapsed();
    assert!(response.is_ok(), "{path} took longer than {PROMPT:?}");
    took
}

async fn dropped_on_metrics(addr: SocketAddr) -> f64 {
    let (_, _, text) = http_get(addr, "/metrics", &[]).await;
    sample(&text, "observe_spans_dropped_total", &[]).expect("observe_spans_dropped_total exposed")
}

fn named(spans: &[serde_json::Value], route: &str) -> usize {
    spans
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.ends_with(route)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_collector_never_slows_requests_and_every_drop_is_on_metrics() {
    let _s = SERIAL.lock().await;
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let guard = install(&receiver, 100, 128, 32);
    let metrics = Metrics::new(Default::default()).leak();
    let addr = serve(app(metrics)).await;
    let client = client();
    let dropped_before = dropped_on_metrics(addr).await;

    receiver.set_mode(Mode::Stall);
    let during = 1_500;
    let slowest_during = load(&client, addr, "/during", during).await;
    // Let the stalled exports run into their timeout while the queue stays full.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = receiver.stats()["stalled"].as_u64().unwrap_or(0);
    assert!(stalled >= 1, "the collector was reached and stalled");
    let dropped_during = dropped_on_metrics(addr).await - dropped_before;
    assert!(
        dropped_during > 0.0,
        "a bounded queue (128) cannot hold {during} spans: drops are counted"
    );

    receiver.set_mode(Mode::Ok);
    let after = 200;
    let slowest_after = load(&client, addr, "/after", after).await;
    let report = tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(!report.timed_out, "{report:?}");

    let spans = receiver.spans();
    let finished = during + after;
    let dropped = dropped_on_metrics(addr).await - dropped_before;
    eprintln!(
        "stall: slowest request {slowest_during:?} during the stall, {slowest_after:?} after; \
         finished {finished}, received {}, dropped on /metrics {dropped} ({} stalled exports); \
         {report:?}",
        spans.len(),
        stalled
    );
    assert!(
        named(&spans, "/after") > 0,
        "export resumes when the collector returns"
    );
    assert_eq!(
        dropped,
        (finished as usize - spans.len()) as f64,
        "observe_spans_dropped_total = finished - received"
    );
    assert_eq!(report.spans_exported, spans.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_delivers_every_span_finished_before_it() {
    let _s = SERIAL.lock().await;
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    // Nothing is exported on schedule: only shutdown's flush delivers the first wave.
    let guard = install(&receiver, 60_000, 4096, 512);
    let metrics = Metrics::new(Default::default()).leak();
    let addr = serve(app(metrics)).await;
    let client = client();
    let dropped_before = dropped_on_metrics(addr).await;

    let wave1 = 2_000;
    load(&client, addr, "/wave1", wave1).await;
    // A second wave keeps the service busy while the guard shuts down; those requests
    // must keep succeeding promptly, whether or not their spans still get exported.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (client, stop) = (client.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut served = 0u64;
            while !stop.load(Ordering::Relaxed) {
                one(&client, addr, "/wave2").await;
                served += 1;
            }
            served
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(20)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let served_wave2 = background.await.unwrap();

    let spans = receiver.spans();
    eprintln!(
        "shutdown under load: wave1 {wave1} received {}, wave2 served {served_wave2} received {}; {report:?}",
        named(&spans, "/wave1"),
        named(&spans, "/wave2")
    );
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(named(&spans, "/wave1"), wave1 as usize);
    assert_eq!(report.spans_dropped, 0, "{report:?}");
    // A wave-2 span that ends after the processor shut down is counted as dropped; none is
    // counted that was not finished.
    let dropped = dropped_on_metrics(addr).await - dropped_before;
    assert!(
        dropped as usize <= served_wave2 as usize - named(&spans, "/wave2"),
        "dropped {dropped}"
    );
    assert!(served_wave2 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_its_deadline_when_the_collector_hangs_under_load() {
    let _s = SERIAL.lock().await;
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let guard = install(&receiver, 60_000, 4096, 256);
    let metrics = Metrics::new(Default::default()).leak();
    let addr = serve(app(metrics)).await;
    let client = client();
    let dropped_before = dropped_on_metrics(addr).await;
    receiver.set_mode(Mode::Stall);

    let queued = 1_000;
    load(&client, addr, "/wave1", queued).await;
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (client, stop) = (client.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut slowest, mut served) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                slowest = slowest.max(one(&client, addr, "/wave2").await);
                served += 1;
            }
            (slowest, served)
        })
    };
    let started = Instant::now();
    let report = tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(1)))
        .await
        .unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (slowest, served) = background.await.unwrap();
    let dropped = dropped_on_metrics(addr).await - dropped_before;
    eprintln!(
        "hung collector: shutdown took {took:?}; {served} requests served meanwhile, slowest \
         {slowest:?}; dropped on /metrics {dropped}; {report:?}"
    );
    assert!(report.timed_out, "{report:?}");
    assert!(
        took < Duration::from_secs(10),
        "returned by its deadline: {took:?}"
    );
    assert_eq!(report.spans_exported, 0);
    assert!(receiver.spans().is_empty());
    // Nothing was delivered: every span of the first wave is counted (the batch that stalled
    // before shutdown, and what was still queued at its deadline), and no more spans than
    // were finished in all.
    assert!(dropped >= queued as f64, "dropped {dropped}");
    assert!(dropped <= (queued + served) as f64, "dropped {dropped}");
    assert!(report.spans_dropped as f64 <= dropped);
    receiver.set_mode(Mode::Ok);
}
