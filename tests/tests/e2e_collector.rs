//! Issue #8, scenario 4: the collector goes down during load and comes back. The services keep
//! answering, the spans they cannot deliver are counted on `/metrics`
//! (`observe_spans_dropped_total`), and export resumes by itself once the collector is back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use observe_tests::otlp::OtlpReceiver;
use observe_tests::services::{http_request, TourOptions, TourServices};
use serde_json::Value;

/// The tour's services, from this crate's own `tour-service` binary (built for every test).
fn start_tour(options: TourOptions) -> TourServices {
    TourServices::start(env!("CARGO_BIN_EXE_tour-service"), options)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `observe_spans_dropped_total` summed over every service's `/metrics`.
fn spans_dropped(tour: &TourServices) -> f64 {
    tour.metrics_targets()
        .iter()
        .map(|(service, addr)| {
            let (status, _, body) = http_request(*addr, "GET", "/metrics", &[], "")
                .unwrap_or_else(|e| panic!("{service} /metrics: {e}"));
            assert_eq!(status, 200);
            body.lines()
                .find(|l| l.starts_with("observe_spans_dropped_total"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{service}: no observe_spans_dropped_total in\n{body}"))
        })
        .sum()
}

/// Sends `n` order lookups; every one must be answered with 200. Returns their trace ids.
fn orders(tour: &TourServices, n: u64) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let (status, body, _) = tour.send("GET", &format!("/orders/{}", i % 19 + 1), None);
            assert_eq!(status, 200, "request {i}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            v["trace_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Waits until the receiver holds gateway and backend spans of every trace in `ids`.
fn wait_for_traces(receiver: &OtlpReceiver, ids: &[String], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let spans = receiver.spans();
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| {
                ["tour-gateway", "tour-backend"].iter().any(|svc| {
                    !spans.iter().any(|s| {
                        s["trace_id"] == id.as_str() && s["resource"]["service.name"] == *svc
                    })
                })
            })
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Order lookups from a thread, one every 50 ms, until finished (bounded to a minute): when
/// each was sent, its status and trace id.
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, u16, String)>>,
}

impl Load {
    fn start(gateway: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let end = Instant::now() + Duration::from_secs(60);
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                i += 1;
                let at = Instant::now();
                let path = format!("/orders/{}", i % 19 + 1);
                let (status, id) = match http_request(gateway, "GET", &path, &[], "") {
                    Ok((status, _, body)) => {
                        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        (status, v["trace_id"].as_str().unwrap_or("").to_string())
                    }
                    Err(e) => (0, e),
                };
                sent.push((at, status, id));
                std::thread::sleep(Duration::from_millis(50));
            }
            sent
        });
        Load { stop, thread }
    }

    fn finish(self) -> Vec<(Instant, u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread does not panic")
    }
}

#[test]
fn collector_down_and_back_drops_are_counted_and_export_resumes() {
    let Some(mut receiver) = OtlpReceiver::start() else {
        return;
    };
    let mut tour = start_tour(TourOptions {
        otlp_endpoint: Some(receiver.grpc_endpoint()),
        otlp_protocol: Some("grpc".into()),
        env: vec![
            // A small queue so the outage overflows it quickly, and short export attempts.
            ("OTEL_BSP_MAX_QUEUE_SIZE".into(), "64".into()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE".into(), "32".into()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT".into(), "1000".into()),
        ],
        ..Default::default()
    });

    // Healthy: spans arrive, nothing dropped.
    let before = orders(&tour, 5);
    let missing = wait_for_traces(&receiver, &before, Duration::from_secs(15));
    assert!(
        missing.is_empty(),
        "not exported while healthy: {missing:?}"
    );
    assert_eq!(spans_dropped(&tour), 0.0);

    // Load throughout (about 20 requests a second: well within what a healthy exporter
    // ships), while the collector goes down and comes back.
    let load = Load::start(tour.gateway());
    std::thread::sleep(Duration::from_millis(500));
    receiver.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dropped = spans_dropped(&tour);
    while dropped == 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        dropped = spans_dropped(&tour);
    }
    assert!(
        dropped > 0.0,
        "spans that could not be delivered are counted\nstderr:\n{}",
        tour.stderr()
    );

    // Back on the same ports: spans of requests sent from then on arrive, without any
    // restart of the services.
    receiver
        .restart()
        .unwrap_or_else(|e| panic!("restart receiver: {e}"));
    let back = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let sent = load.finish();
    let answered = sent.iter().filter(|(_, status, _)| *status == 200).count();
    assert_eq!(
        answered,
        sent.len(),
        "every request is answered while the collector is down: {:?}",
        sent.iter()
            .filter(|(_, s, _)| *s != 200)
            .collect::<Vec<_>>()
    );
    assert!(sent.len() > 20, "the load ran: {} requests", sent.len());
    // (The first second after the restart is the exporter's to reconnect in.)
    let after: Vec<String> = sent
        .iter()
        .filter(|(at, _, _)| *at > back + Duration::from_secs(1))
        .map(|(_, _, id)| id.clone())
        .collect();
    assert!(!after.is_empty());
    let missing = wait_for_traces(&receiver, &after, Duration::from_secs(30));
    assert!(
        missing.is_empty(),
        "export did not resume for {} of {} traces; received {} spans; stderr:\n{}",
        missing.len(),
        after.len(),
        receiver.spans().len(),
        tour.stderr()
    );
    // Whatever arrived belongs to requests that were really sent.
    let ids: std::collections::BTreeSet<&String> = before
        .iter()
        .chain(sent.iter().map(|(_, _, id)| id))
        .collect();
    for s in receiver.spans() {
        if s["resource"]["service.name"] == "tour-gateway" {
            assert!(
                ids.contains(&s["trace_id"].as_str().unwrap().to_string()),
                "{s}"
            );
        }
    }
    tour.stop();
}
