//! Cardinality attack over real loopback HTTP: 100,000 requests with distinct random paths and
//! methods (and status codes chosen by the caller) against an axum service with observe's
//! layer. The `/metrics` series stay at or below the configured limit (plus the one overflow
//! series) and resident memory stays bounded.
//!
//! Figures are printed; run with `--nocapture` to see them.

mod http_harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use http_harness::{get as http_get, sample, serve};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use observe_core::metrics::{Metrics, MetricsConfig};

const REQUESTS: u64 = 100_000;
const LIMIT: usize = 200;
const TASKS: u64 = 16;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// xorshift64*: reproducible, dependency-free randomness for paths and methods.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn token(&mut self, len: usize) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
        (0..len)
            .map(|_| ALPHA[(self.next() % ALPHA.len() as u64) as usize] as char)
            .collect()
    }
}

fn app(metrics: &'static Metrics) -> Router {
    // The caller picks the status: one more way to ask for new label sets.
    let status = |Path(code): Path<u16>| async move {
        StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
    };
    Router::new()
        .route("/status/{code}", any(status))
        .route("/users/{id}", any(|| async { "user" }))
        .merge(observe_axum::metrics_router_for(metrics))
        .layer(observe_axum::layer().metrics(metrics))
}

fn request(rng: &mut Rng, addr: std::net::SocketAddr) -> http::Request<Full<Bytes>> {
    let method = match rng.next() % 4 {
        // Distinct extension methods: every one must land in `_OTHER`.
        0 | 1 => http::Method::from_bytes(rng.token(8).to_ascii_uppercase().as_bytes()).unwrap(),
        2 => http::Method::GET,
        _ => http::Method::POST,
    };
    let path = match rng.next() % 3 {
        0 => format!("/status/{}", 200 + rng.next() % 400),
        1 => format!("/users/{}", rng.token(12)),
        _ => format!("/{}/{}?q={}", rng.token(10), rng.token(6), rng.token(8)),
    };
    http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_and_methods_keep_series_and_memory_bounded() {
    let metrics = Metrics::new(MetricsConfig::default().with_cardinality_limit(LIMIT)).leak();
    let addr = serve(app(metrics)).await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(TASKS as usize)
        .build_http();

    let drive = |from: u64, to: u64| {
        let sent = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let client = client.clone();
                let sent = Arc::clone(&sent);
                tokio::spawn(async move {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1) ^ (from << 20));
                    let mut i = from + t;
                    while i < to {
                        let response = tokio::time::timeout(
                            Duration::from_secs(10),
                            client.request(request(&mut rng, addr)),
                        )
                        .await
                        .expect("each request answers (bounded time)")
                        .expect("request over loopback");
                        let _ = response.into_body().collect().await.unwrap();
                        sent.fetch_add(1, Ordering::Relaxed);
                        i += TASKS;
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
            sent.load(Ordering::Relaxed)
        }
    };

    // Warm-up fills the label sets (and the allocator's pools); memory is measured after.
    let warm = 5_000;
    assert_eq!(drive(0, warm).await, warm);
    let rss_before = rss_kib();
    let started = std::time::Instant::now();
    assert_eq!(drive(warm, REQUESTS).await, REQUESTS - warm);
    let took = started.elapsed();
    let rss_after = rss_kib();

    let (status, _, text) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let series = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .count();
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    let overflow = sample(
        &text,
        "http_server_request_duration_seconds_count",
        &[("otel_metric_overflow", "true")],
    )
    .unwrap_or(0.0);
    eprintln!(
        "cardinality: {REQUESTS} requests in {took:?}; series {series} (limit {LIMIT}), \
         overflowed {overflow}; /metrics {} bytes; VmRSS {rss_before} KiB -> {rss_after} KiB \
         (+{} KiB)",
        text.len(),
        rss_after.saturating_sub(rss_before)
    );
    assert!(series <= LIMIT + 1, "{series} series");
    assert!(
        overflow > 0.0,
        "the limit was reached: observations overflowed"
    );
    // Every request is still counted: nothing is lost to the guard.
    assert_eq!(total, REQUESTS as f64);
    // No raw path or extension method ever becomes a label value.
    assert!(
        !text.contains("http_route=\"/status/2"),
        "raw path as route"
    );
    for line in text.lines().filter(|l| l.contains("http_request_method=")) {
        let method = line
            .split("http_request_method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        assert!(
            [
                "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
                "_OTHER"
            ]
            .contains(&method),
            "{line}"
        );
    }
    // A generous bound: 95,000 requests may not cost more than 64 MiB of resident memory
    // (per-request state retained would show as hundreds of MiB).
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        text.len() < 1 << 20,
        "/metrics body stays small: {}",
        text.len()
    );
}
