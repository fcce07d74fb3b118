//! Real Prometheus, promtool and Alertmanager started on free loopback ports for a test.
//!
//! ```no_run
//! use observe_tests::prometheus::{Prometheus, ScrapeJob};
//! let Some(prom) = Prometheus::start(&[ScrapeJob::new("app", "127.0.0.1:9464")]) else { return };
//! let up = prom.wait_for_query("up{job=\"app\"} == 1", std::time::Duration::from_secs(20));
//! assert!(up.is_some());
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend::{find_binary, free_port, missing};

const INSTALL: &str = "apt-get install -y prometheus";

/// `promtool check metrics` on a Prometheus-text body. `None` when promtool is missing (after
/// the loud notice, or a panic under CI); otherwise `Ok` or `Err(promtool's complaints)`.
pub fn promtool_check_metrics(body: &[u8]) -> Option<Result<(), String>> {
    let Some(promtool) = find_binary("promtool") else {
        missing("promtool", INSTALL);
        return None;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool exit {}: {text}", out.status))
    })
}

/// One scrape job of the generated configuration.
#[derive(Clone, Debug)]
pub struct ScrapeJob {
    /// `job` label.
    pub name: String,
    /// `host:port` of the target.
    pub target: String,
    /// Path, default `/metrics`.
    pub path: String,
}

impl ScrapeJob {
    /// A job scraping `http://target/metrics`.
    pub fn new(name: &str, target: &str) -> Self {
        ScrapeJob {
            name: name.into(),
            target: target.into(),
            path: "/metrics".into(),
        }
    }
}

/// A running Prometheus (exemplar storage on, 1 s scrape interval, data in a temp dir),
/// killed when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` and waits until it is ready. `None` when the binary is
    /// missing (loud notice; panic under CI).
    pub fn start(jobs: &[ScrapeJob]) -> Option<Prometheus> {
        let Some(bin) = find_binary("prometheus") else {
            missing("prometheus", INSTALL);
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for j in jobs {
            config.push_str(&format!(
                "  - job_name: {:?}\n    metrics_path: {:?}\n    static_configs:\n      - targets: [{:?}]\n",
                j.name, j.path, j.target
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn prometheus");
        let prom = Prometheus {
            child,
            port,
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = prom.get("/-/ready") {
                return Some(prom);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("prometheus did not become ready; log:\n{}", prom.log());
    }

    /// Prometheus' own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the Prometheus HTTP API: `(status, body)`.
    pub fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        http_get(self.port, path_and_query)
    }

    /// An instant query's `data.result` array.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let (status, body) = self
            .get(&format!("/api/v1/query?query={}", encode_query(promql)))
            .expect("query prometheus");
        assert_eq!(status, 200, "query {promql:?} failed: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON from prometheus");
        v["data"]["result"].clone()
    }

    /// Polls `promql` until it returns a non-empty result, or `None` after `timeout`.
    pub fn wait_for_query(&self, promql: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(promql);
            if r.as_array().is_some_and(|a| !a.is_empty()) {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `/api/v1/query_exemplars` over the last hour: `data` array.
    pub fn query_exemplars(&self, promql: &str) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let (status, body) = self
            .get(&format!(
                "/api/v1/query_exemplars?query={}&start={}&end={}",
                encode_query(promql),
                now - 3600,
                now + 60
            ))
            .expect("query exemplars");
        assert_eq!(status, 200, "query_exemplars {promql:?} failed: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON from prometheus");
        v["data"].clone()
    }

    /// The active targets as Prometheus reports them (`health`, `lastError`, labels...).
    pub fn targets(&self) -> serde_json::Value {
        let (_, body) = self.get("/api/v1/targets").expect("targets");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["data"]["activeTargets"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A minimal HTTP/1.0 GET on loopback (HTTP/1.0 so the body is never chunked).
pub fn http_get(port: u16, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let (status, _, body) = http_get_with(port, path_and_query, &[])?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A raw response: status, lowercase header names with their values, body bytes.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// GET with extra request headers.
pub fn http_get_with(
    port: u16,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end in response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, hdrs, body))
}
