//! A real Prometheus started on a free loopback port for a test (scrape jobs, and optionally
//! rule files and an Alertmanager: [`Prometheus::builder`]), and `promtool check metrics`.
//!
//! ```no_run
//! use observe_tests::prometheus::{Prometheus, ScrapeJob};
//! let Some(prom) = Prometheus::start(&[ScrapeJob::new("app", "127.0.0.1:9464")]) else { return };
//! let up = prom.wait_for_query("up{job=\"app\"} == 1", std::time::Duration::from_secs(20));
//! assert!(up.is_some());
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
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
    /// A job scraping `http://target/metrics` (`target` is any `host:port`, e.g. a
    /// `SocketAddr`).
    pub fn new(name: impl Into<String>, target: impl ToString) -> Self {
        ScrapeJob {
            name: name.into(),
            target: target.to_string(),
            path: "/metrics".into(),
        }
    }
}

/// How to start a [`Prometheus`]: scrape jobs, rule files, an Alertmanager and the interval.
///
/// ```no_run
/// use observe_tests::prometheus::{Prometheus, ScrapeJob};
/// let rules = observe_tests::services::deploy_rules(|text| text.to_string());
/// let Some(prom) = Prometheus::builder()
///     .job(ScrapeJob::new("app", "127.0.0.1:9464"))
///     .rule_files(rules)
///     .alertmanager("127.0.0.1:9093".parse().unwrap())
///     .start()
/// else {
///     return;
/// };
/// let _alerts = prom.alerts();
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusBuilder {
    jobs: Vec<ScrapeJob>,
    rule_files: Vec<(String, String)>,
    alertmanager: Option<SocketAddr>,
    interval: Duration,
}

impl Default for PrometheusBuilder {
    fn default() -> Self {
        PrometheusBuilder {
            jobs: Vec::new(),
            rule_files: Vec::new(),
            alertmanager: None,
            interval: Duration::from_secs(1),
        }
    }
}

impl PrometheusBuilder {
    /// Adds one scrape job.
    pub fn job(mut self, job: ScrapeJob) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds scrape jobs.
    pub fn jobs(mut self, jobs: impl IntoIterator<Item = ScrapeJob>) -> Self {
        self.jobs.extend(jobs);
        self
    }

    /// Adds rule files as `(file name, YAML text)`, written into Prometheus' directory as they
    /// are (see [`crate::services::deploy_rules`] for the deploy kit's).
    pub fn rule_files(mut self, files: impl IntoIterator<Item = (String, String)>) -> Self {
        self.rule_files.extend(files);
        self
    }

    /// Sends alerts to the Alertmanager at `addr`, resending firing ones every 2 s (a test
    /// waits for them; Prometheus' default is a minute).
    pub fn alertmanager(mut self, addr: SocketAddr) -> Self {
        self.alertmanager = Some(addr);
        self
    }

    /// Scrape interval, scrape timeout and rule evaluation interval (default 1 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The `prometheus.yml` text, with rule files referred to inside `dir`.
    fn config(&self, dir: &Path) -> String {
        let every = prom_duration(self.interval);
        let mut config = format!(
            "global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n  evaluation_interval: {every}\n"
        );
        if !self.rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for (name, _) in &self.rule_files {
                let path = dir.join(name).display().to_string();
                config.push_str(&format!("  - {path:?}\n"));
            }
        }
        if let Some(am) = self.alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{am}\"]\n"
            ));
        }
        config.push_str("scrape_configs:\n");
        for j in &self.jobs {
            config.push_str(&format!(
                "  - job_name: {:?}\n    metrics_path: {:?}\n    static_configs:\n      - targets: [{:?}]\n",
                j.name, j.path, j.target
            ));
        }
        config
    }

    /// Writes the rule files and `prometheus.yml` into `dir`: the config's path and text.
    fn write_files(&self, dir: &Path) -> (PathBuf, String) {
        for (name, text) in &self.rule_files {
            std::fs::write(dir.join(name), text).expect("write a rule file");
        }
        let config = self.config(dir);
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, &config).expect("write prometheus.yml");
        (config_path, config)
    }

    /// Starts Prometheus (exemplar storage on, data in a temp dir) and waits (bounded) until it
    /// is ready. `None` when the binary is missing (loud notice; panic under CI).
    pub fn start(self) -> Option<Prometheus> {
        let Some(bin) = find_binary("prometheus") else {
            missing("prometheus", INSTALL);
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (config_path, config) = self.write_files(dir.path());
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage");
        if self.alertmanager.is_some() {
            cmd.arg("--rules.alert.resend-delay=2s");
        }
        let child = cmd
            .stdin(Stdio::null())
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
        panic!(
            "prometheus not ready after 30 s; config:\n{config}\nlog:\n{}",
            prom.log()
        );
    }
}

/// A duration as Prometheus' configuration writes it (`1s`, `500ms`).
fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A running Prometheus on a free loopback port (exemplar storage on, data in a temp dir),
/// killed when dropped. Started by [`Prometheus::builder`], or [`Prometheus::start`] for
/// scrape jobs alone.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Prometheus {
    /// A builder: no jobs, no rules, no Alertmanager, 1 s interval.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    /// Starts Prometheus scraping `jobs` every second and waits until it is ready. `None` when
    /// the binary is missing (loud notice; panic under CI).
    pub fn start(jobs: &[ScrapeJob]) -> Option<Prometheus> {
        Prometheus::builder().jobs(jobs.iter().cloned()).start()
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Prometheus' own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the Prometheus HTTP API: `(status, body)`.
    pub fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        http_get(self.port, path_and_query)
    }

    /// The `data` of an API answer; panics unless it is a 200 with `"status": "success"`.
    fn api(&self, path_and_query: &str) -> serde_json::Value {
        let (status, body) = self.get(path_and_query).expect("prometheus answers");
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{path_and_query}: not JSON: {body}"));
        assert_eq!(status, 200, "{path_and_query}: {body}");
        assert_eq!(v["status"], "success", "{path_and_query}: {body}");
        v["data"].clone()
    }

    /// An instant query's `data.result` array (panics if the query is invalid).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        self.api(&format!("/api/v1/query?query={}", encode_query(promql)))["result"].clone()
    }

    /// Polls `promql` until `done(result)` holds; the last result either way (bounded).
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(promql);
            if done(&r) || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Polls `promql` until it returns a non-empty result, or `None` after `timeout`.
    pub fn wait_for_query(&self, promql: &str, timeout: Duration) -> Option<serde_json::Value> {
        let non_empty = |r: &serde_json::Value| r.as_array().is_some_and(|a| !a.is_empty());
        let r = self.wait_for(promql, timeout, non_empty);
        non_empty(&r).then_some(r)
    }

    /// `/api/v1/query_exemplars` over the last hour: `data` array.
    pub fn query_exemplars(&self, promql: &str) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        self.api(&format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            encode_query(promql),
            now - 3600,
            now + 60
        ))
    }

    /// The active targets as Prometheus reports them (`health`, `lastError`, labels...).
    pub fn targets(&self) -> serde_json::Value {
        self.api("/api/v1/targets")["activeTargets"].clone()
    }

    /// Alerts pending or firing, as Prometheus' rule manager sees them.
    pub fn alerts(&self) -> serde_json::Value {
        self.api("/api/v1/alerts")["alerts"].clone()
    }

    /// Loaded rule groups (with each rule's `health` and `lastError`).
    pub fn rule_groups(&self) -> serde_json::Value {
        self.api("/api/v1/rules")["groups"].clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_prometheus_units() {
        assert_eq!(prom_duration(Duration::from_secs(1)), "1s");
        assert_eq!(prom_duration(Duration::from_secs(15)), "15s");
        assert_eq!(prom_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }

    /// Every option ends up in a configuration the real `promtool check config` accepts, with
    /// the deploy kit's rule files loaded from Prometheus' directory.
    #[test]
    fn generated_config_passes_promtool() {
        let Some(promtool) = find_binary("promtool") else {
            missing("promtool", INSTALL);
            return;
        };
        let builder = Prometheus::builder()
            .job(ScrapeJob::new("gateway", "127.0.0.1:3000"))
            .jobs([ScrapeJob {
                path: "/other/metrics".into(),
                ..ScrapeJob::new("relay", "127.0.0.1:3001")
            }])
            .rule_files(crate::services::deploy_rules(str::to_string))
            .alertmanager("127.0.0.1:9093".parse().unwrap())
            .interval(Duration::from_millis(500));
        let dir = tempfile::tempdir().unwrap();
        let (path, config) = builder.write_files(dir.path());
        assert!(config.contains("scrape_interval: 500ms\n"), "{config}");
        assert!(config.contains("evaluation_interval: 500ms\n"), "{config}");
        assert!(config.contains("targets: [\"127.0.0.1:9093\"]"), "{config}");
        assert!(
            config.contains("metrics_path: \"/other/metrics\""),
            "{config}"
        );
        assert!(!builder.rule_files.is_empty());
        for (name, _) in &builder.rule_files {
            assert!(config.contains(&format!(
                "{:?}",
                dir.path().join(name).display().to_string()
            )));
        }
        let out = Command::new(promtool)
            .args(["check", "config"])
            .arg(&path)
            .output()
            .expect("run promtool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool: {text}\n{config}");
        // promtool found every rule file through the config, and checked each.
        let n = builder.rule_files.len();
        assert!(
            text.contains(&format!("SUCCESS: {n} rule files found")),
            "{text}"
        );
        for (name, _) in &builder.rule_files {
            assert!(
                text.contains(&format!("Checking {}", dir.path().join(name).display())),
                "{text}"
            );
        }
    }

    #[test]
    fn defaults_scrape_every_second_with_no_rules_or_alerting() {
        let config = Prometheus::builder()
            .job(ScrapeJob::new("app", "127.0.0.1:9464"))
            .config(Path::new("/unused"));
        assert_eq!(
            config,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: \"app\"\n    metrics_path: \"/metrics\"\n    \
             static_configs:\n      - targets: [\"127.0.0.1:9464\"]\n"
        );
    }
}
