//! A stdout nobody reads (a full pipe), with a real service in a child process
//! (tests/src/bin/reliability-stdout-child.rs).
//!
//! - The default writer (`init`: the bounded non-blocking stdout queue) keeps serving requests
//!   promptly while the pipe is full; every line is either written whole or counted in
//!   `observe_log_records_dropped_total` — lines read + lines dropped = lines logged, exactly.
//! - The blocking writer (`LogWriter::Stdout`) applies back-pressure instead: once the pipe is
//!   full, the thread that logs waits in `write(2)`, so a request that logs does not complete
//!   until someone reads stdout. Nothing is dropped, but a stuck log consumer stalls the service.
//!   That is why `init` uses the non-blocking writer and `Stdout` is for tools and tests.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

const LINES_PER_REQUEST: u64 = 20;

struct ChildService {
    child: Child,
    stdout: Option<ChildStdout>,
    addr: SocketAddr,
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> ChildService {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reliability-stdout-child"))
        .args(args)
        .env_clear()
        .env("OBSERVE_LOG", "reliability_stdout_child=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("child prints its address");
    let addr = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    let stdout = child.stdout.take();
    ChildService {
        child,
        stdout,
        addr,
    }
}

/// Reads `stdout` to its end on a thread; returns (lines, JSON-invalid lines) counters.
fn drain(stdout: ChildStdout) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let lines = Arc::new(AtomicU64::new(0));
    let torn = Arc::new(AtomicU64::new(0));
    let (l, t) = (Arc::clone(&lines), Arc::clone(&torn));
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.by_ref().read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if serde_json::from_slice::<serde_json::Value>(&line)
                        .ok()
                        .is_some_and(|v| v["message"] == "working")
                    {
                        l.fetch_add(1, Ordering::Relaxed);
                    } else {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    (lines, torn)
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(client: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, path: &str) -> String {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(req).await.expect("request over loopback");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

async fn dropped(client: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr) -> u64 {
    let text = get(client, addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("observe_log_records_dropped_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no observe_log_records_dropped_total in\n{text}")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stdout_pipe_with_the_default_writer_drops_and_counts_but_keeps_serving() {
    let mut service = start(&[]);
    let addr = service.addr;
    let client = client();
    let requests = 1_000u64;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, next) = (client.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let started = Instant::now();
                let body =
                    tokio::time::timeout(Duration::from_secs(2), get(&client, addr, "/work"))
                        .await
                        .expect("a request completes within 2 s while stdout is full");
                assert_eq!(body, "done");
                slowest = slowest.max(started.elapsed());
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    let dropped_while_full = dropped(&client, addr).await;
    assert!(
        dropped_while_full > 0,
        "a 64 KiB pipe cannot hold {} lines",
        requests * LINES_PER_REQUEST
    );

    // Now read the pipe: the queue drains, and the counts must add up.
    let (lines, torn) = drain(service.stdout.take().unwrap());
    let mut last = (u64::MAX, u64::MAX);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (lines.load(Ordering::Relaxed), dropped(&client, addr).await);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let (read, dropped_total) = last;
    eprintln!(
        "full pipe: {requests} requests, slowest {slowest:?}; {} lines logged, {read} written, \
         {dropped_total} dropped ({dropped_while_full} counted while the pipe was full)",
        requests * LINES_PER_REQUEST
    );
    assert_eq!(
        torn.load(Ordering::Relaxed),
        0,
        "every line written is whole JSON"
    );
    assert_eq!(read + dropped_total, requests * LINES_PER_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stdout_pipe_with_the_blocking_writer_applies_back_pressure() {
    let mut service = start(&["--blocking"]);
    let addr = service.addr;
    let client = client();
    // Fill the pipe: requests complete until it is full, then one waits on write(2).
    let mut pending = None;
    for i in 0..200 {
        let c = client.clone();
        let mut task = tokio::spawn(async move { get(&c, addr, "/work").await });
        match tokio::time::timeout(Duration::from_secs(1), &mut task).await {
            Ok(done) => assert_eq!(done.unwrap(), "done"),
            Err(_) => {
                pending = Some((i, task));
                break;
            }
        }
    }
    let (completed, task) = pending.expect("a request blocks once the pipe is full");
    eprintln!("blocking writer: {completed} requests completed before one blocked on stdout");
    assert!(completed > 0, "the pipe holds some lines first");
    // Reading stdout releases it: the blocked request completes.
    let _ = drain(service.stdout.take().unwrap());
    let body = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the blocked request completes once stdout is read")
        .unwrap();
    assert_eq!(body, "done");
}
