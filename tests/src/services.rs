//! Starting what an end-to-end test talks to, on loopback: the tour services
//! ([`TourServices`] for `tour-service --serve`, [`TourService`] for one `--role`), the Python
//! OpenTelemetry peers ([`PeerServer`], [`peer_client`]; tests/python/peer_*.py), the deploy
//! kit's rules for [`crate::prometheus::Prometheus`] ([`deploy_rules`]), an [`Alertmanager`]
//! with a [`Webhook`] receiver, a [`TextRelay`] that scrapes in the Prometheus text format,
//! [`jq`], and a small blocking HTTP client ([`http_request`]).
//!
//! Every child process is killed when its handle drops; every wait is bounded. A missing
//! backend follows [`crate::backend::missing`]: a loud notice, or a failure under `CI=true`.
//!
//! ```no_run
//! use observe_tests::services::{TourOptions, TourServices};
//!
//! // In an integration test of this crate: the binary cargo built for it.
//! let bin = std::path::Path::new("target/debug/tour-service");
//! let tour = TourServices::start(bin, TourOptions::default()).expect("tour services start");
//! let (status, body) = observe_tests::services::http_get(tour.gateway(), "/", &[]).unwrap();
//! # let _ = (status, body);
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::backend;

/// How long a child may take to print its start-up line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process that announced itself with one JSON line on stdout; the rest of its stdout
/// (the services' JSON log lines) goes to a file, its stderr to another. Killed on drop.
#[derive(Debug)]
pub struct Announced {
    child: Option<Child>,
    announcement: Value,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Announced {
    /// Spawns `cmd` and waits (bounded) for its first stdout line, which must be a JSON object.
    pub fn spawn(cmd: Command, what: &str) -> Result<Self, String> {
        Self::spawn_until(cmd, what, None)
    }

    /// Spawns `cmd` and waits (bounded) for the first stdout line that is a JSON object with
    /// the key `key` (any first line when `None`); lines before it are kept as output.
    pub fn spawn_until(mut cmd: Command, what: &str, key: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let stdout_path = dir.path().join("stdout.log");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("{what}: spawn failed: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut out = std::fs::File::create(&stdout_path).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let key = key.map(str::to_string);
        // One thread per child: hands over the announcement line, copies every other line to
        // the file (line by line, so a reader of the file never sees half a line for long).
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut tx = Some(tx);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.is_some() {
                            let announced = match &key {
                                None => true,
                                Some(k) => serde_json::from_slice::<Value>(&buf)
                                    .is_ok_and(|v| v.get(k.as_str()).is_some()),
                            };
                            if announced {
                                let line = String::from_utf8_lossy(&buf).into_owned();
                                let _ = tx.take().map(|tx| tx.send(line));
                                continue;
                            }
                        }
                        if out.write_all(&buf).is_err() {
                            break;
                        }
                        let _ = out.flush();
                    }
                }
            }
        });
        let fail = |child: &mut Child, msg: String| {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            Err(format!("{what}: {msg}\nstderr:\n{err}"))
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => return fail(&mut child, "no start-up line within 60 s".into()),
        };
        let announcement: Value = match serde_json::from_str(line.trim()) {
            Ok(v @ Value::Object(_)) => v,
            _ => return fail(&mut child, format!("unexpected start-up line {line:?}")),
        };
        Ok(Announced {
            child: Some(child),
            announcement,
            stdout_path,
            stderr_path,
            _dir: dir,
        })
    }

    /// The JSON object the child printed first.
    pub fn announcement(&self) -> &Value {
        &self.announcement
    }

    /// Where the rest of the child's stdout goes.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// The child's stdout after the start-up line (complete lines only).
    pub fn stdout(&self) -> String {
        let mut text = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        if let Some(end) = text.rfind('\n') {
            text.truncate(end + 1);
        } else {
            text.clear();
        }
        text
    }

    /// The child's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Asks the child to stop (SIGTERM, so it can flush), waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM by pid (the child is not reaped yet, so the pid is still ours).
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // Let the copying thread drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every `"...port..."`-like integer in a JSON object, by its dotted path (`gateway.http`).
fn ports_of(v: &Value, prefix: &str, out: &mut BTreeMap<String, u16>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                ports_of(v, &path, out);
            }
        }
        Value::Number(n) => {
            if let Some(p) = n.as_u64().and_then(|p| u16::try_from(p).ok()) {
                out.insert(prefix.to_string(), p);
            }
        }
        Value::String(s) => {
            // "127.0.0.1:1234" or "http://127.0.0.1:1234"
            if let Some(p) = s
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
            {
                out.insert(prefix.to_string(), p);
            }
        }
        _ => {}
    }
}

/// Which fault the tour services inject (`tour-service --fault`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// Healthy.
    #[default]
    None,
    /// The dependency answers slowly.
    Slow,
    /// The dependency fails.
    Fail,
}

/// How to start the tour services.
#[derive(Clone, Debug, Default)]
pub struct TourOptions {
    /// The fault to inject.
    pub fault: Fault,
    /// OTLP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`), if any.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`); the SDK default when `None`.
    pub otlp_protocol: Option<String>,
    /// Extra environment (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
    pub env: Vec<(String, String)>,
}

/// A clean environment for what observe reads, so the developer's shell cannot change the
/// outcome; then what the test asks for.
fn apply_env(cmd: &mut Command, options: &TourOptions) {
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_")
            || k.starts_with("OBSERVE_")
            || k == "RUST_LOG"
            || k == "TOUR_FAULT"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "200");
    cmd.env("OTEL_BLRP_SCHEDULE_DELAY", "200");
    if let Some(e) = &options.otlp_endpoint {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e);
    }
    if let Some(p) = &options.otlp_protocol {
        cmd.env("OTEL_EXPORTER_OTLP_PROTOCOL", p);
    }
    for (k, v) in &options.env {
        cmd.env(k, v);
    }
}

fn fault_arg(fault: Fault) -> &'static str {
    match fault {
        Fault::None => "none",
        Fault::Slow => "slow",
        Fault::Fail => "fail",
    }
}

/// One tour service run alone (`tour-service --role <role> [--upstream addr]`), e.g. with a
/// Python peer as its upstream.
#[derive(Debug)]
pub struct TourService {
    process: Announced,
    port: u16,
    metrics_port: u16,
}

impl TourService {
    /// Starts `role` (`gateway`, `backend` or `dependency`) calling `upstream`, and waits for
    /// its ready line.
    pub fn start(
        bin: impl AsRef<Path>,
        role: &str,
        upstream: Option<SocketAddr>,
        options: &TourOptions,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(bin.as_ref());
        cmd.args(["--role", role]);
        if let Some(up) = upstream {
            cmd.args(["--upstream", &up.to_string()]);
        }
        if role == "backend" {
            cmd.args(["--fault", fault_arg(options.fault)]);
        }
        apply_env(&mut cmd, options);
        let process = Announced::spawn_until(
            cmd,
            &format!("tour-service --role {role}"),
            Some("tour.ready"),
        )?;
        let ready = &process.announcement()["tour.ready"];
        let port = |k: &str| {
            ready[k]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("no {k} in {ready}"))
        };
        Ok(TourService {
            port: port("port")?,
            metrics_port: port("metrics_port")?,
            process,
        })
    }

    /// Its main address (HTTP, or gRPC for the backend).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where it serves `/metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.metrics_port))
    }

    /// Its stdout so far (JSON log lines).
    pub fn logs(&self) -> String {
        self.process.stdout()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Stops it (SIGTERM, so it flushes its spans), bounded.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

/// The tour services (`tour-service --serve`): gateway (axum) -> backend (tonic) -> dependency.
#[derive(Debug)]
pub struct TourServices {
    process: Announced,
    ports: BTreeMap<String, u16>,
}

impl TourServices {
    /// Starts `tour-service --serve` from `bin` (in this crate's tests:
    /// `env!("CARGO_BIN_EXE_tour-service")`) and waits for its ports line.
    pub fn start(bin: impl AsRef<Path>, options: TourOptions) -> Result<Self, String> {
        let mut cmd = Command::new(bin.as_ref());
        cmd.args(["--serve", "--fault", fault_arg(options.fault)]);
        apply_env(&mut cmd, &options);
        let process = Announced::spawn_until(cmd, "tour-service --serve", Some("gateway"))?;
        let mut ports = BTreeMap::new();
        ports_of(process.announcement(), "", &mut ports);
        Ok(TourServices { process, ports })
    }

    /// Every port the services announced, by the announcement's key path.
    pub fn ports(&self) -> &BTreeMap<String, u16> {
        &self.ports
    }

    /// The announcement line as printed.
    pub fn announcement(&self) -> &Value {
        self.process.announcement()
    }

    fn addr_of(&self, candidates: &[&str]) -> SocketAddr {
        candidates
            .iter()
            .find_map(|k| self.ports.get(*k))
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .unwrap_or_else(|| {
                panic!(
                    "none of {candidates:?} in the tour announcement {}",
                    self.process.announcement()
                )
            })
    }

    /// The gateway's HTTP address (it also serves the gateway's `/metrics`).
    pub fn gateway(&self) -> SocketAddr {
        self.addr_of(&["gateway.port"])
    }

    /// Every `/metrics` endpoint, as `(service, address)`: one per service (`gateway`,
    /// `backend`, `dependency`), from the announcement's `<service>.metrics_port`.
    pub fn metrics_targets(&self) -> Vec<(String, SocketAddr)> {
        self.ports
            .iter()
            .filter_map(|(key, port)| {
                let (service, field) = key.split_once('.')?;
                (field == "metrics_port").then(|| {
                    (
                        service.to_string(),
                        SocketAddr::from(([127, 0, 0, 1], *port)),
                    )
                })
            })
            .collect()
    }

    /// The main address of `service` (`<service>.port`).
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.addr_of(&[&format!("{service}.port")])
    }

    /// Sends one request to the gateway: status, body and the latency the client saw.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> (u16, String, Duration) {
        let headers: &[(&str, &str)] = if json_body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        let start = std::time::Instant::now();
        let (status, _, body) = http_request(
            self.gateway(),
            method,
            path,
            headers,
            json_body.unwrap_or(""),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()));
        (status, body, start.elapsed())
    }

    /// The services' stdout so far: their JSON log lines.
    pub fn logs(&self) -> String {
        self.process.stdout()
    }

    /// The file the services' stdout is copied to (for `jq`).
    pub fn log_path(&self) -> &Path {
        self.process.stdout_path()
    }

    /// The services' stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Stops the services (SIGTERM, so they flush their spans), bounded.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

const PY_HOW_TO_GET: &str = "python3 -m venv tests/.venv && tests/.venv/bin/pip install -r \
     tests/python/requirements.txt (or set OBSERVE_TEST_PYTHON)";

/// tests/python/peer_server.py: an OpenTelemetry-instrumented Python HTTP server.
#[derive(Debug)]
pub struct PeerServer {
    process: Announced,
    addr: SocketAddr,
}

impl PeerServer {
    /// Starts it, exporting its spans to `otlp_http_endpoint` when given. `None` after the
    /// missing-backend notice when the Python environment is missing (a panic under CI).
    pub fn start(otlp_http_endpoint: Option<&str>) -> Option<Self> {
        let Some(python) = backend::python() else {
            backend::missing("Python test virtualenv (peer_server.py)", PY_HOW_TO_GET);
            return None;
        };
        let mut cmd = Command::new(python);
        cmd.arg(backend::repo_root().join("tests/python/peer_server.py"));
        if let Some(e) = otlp_http_endpoint {
            cmd.args(["--otlp-endpoint", e]);
        }
        match Announced::spawn(cmd, "peer_server.py") {
            Ok(process) => {
                let port = process.announcement()["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .expect("peer_server.py announces its port");
                Some(PeerServer {
                    process,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                })
            }
            Err(e) => {
                backend::missing(&format!("peer_server.py ({e})"), PY_HOW_TO_GET);
                None
            }
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request it answered, as it saw them (see the script's docstring).
    pub fn requests(&self) -> Vec<Value> {
        let (status, body) =
            http_get(self.addr, "/control/requests", &[]).expect("peer server answers");
        assert_eq!(status, 200, "{body}");
        match serde_json::from_str(&body) {
            Ok(Value::Array(v)) => v,
            other => panic!("unexpected /control/requests answer: {other:?}"),
        }
    }

    /// Its stderr (Python tracebacks).
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// Runs tests/python/peer_client.py once against `url` with its own `tracestate` and
/// `baggage`, exporting its span to `otlp_http_endpoint` when given; returns the JSON line it
/// printed (ids and headers it sent, status and body it got). `None` after the missing-backend
/// notice when the Python environment is missing (a panic under CI).
pub fn peer_client(
    url: &str,
    tracestate: &str,
    baggage: &str,
    otlp_http_endpoint: Option<&str>,
) -> Option<Value> {
    let Some(python) = backend::python() else {
        backend::missing("Python test virtualenv (peer_client.py)", PY_HOW_TO_GET);
        return None;
    };
    let mut cmd = Command::new(python);
    cmd.arg(backend::repo_root().join("tests/python/peer_client.py"))
        .args([
            "--url",
            url,
            "--tracestate",
            tracestate,
            "--baggage",
            baggage,
        ])
        .args(["--timeout", "10"]);
    if let Some(e) = otlp_http_endpoint {
        cmd.args(["--otlp-endpoint", e]);
    }
    let output = run_bounded(cmd, Duration::from_secs(60)).expect("peer_client.py runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    match serde_json::from_str(line) {
        Ok(v) => Some(v),
        Err(_) => panic!(
            "peer_client.py printed {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<std::process::Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    })
}

/// A blocking HTTP/1.1 GET on loopback (`Connection: close`, 10 s timeouts): status and body
/// (a chunked body is decoded). Errors are transport errors, as text.
pub fn http_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let (status, _, body) = http_request(addr, "GET", path_and_query, headers, "")?;
    Ok((status, body))
}

/// A response: status, headers (lowercased names), body.
pub type Response = (u16, Vec<(String, String)>, String);

/// A blocking HTTP/1.1 request on loopback: status, response headers (lowercased names), body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read {addr}{path_and_query}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&b[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        b = &b[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The deploy kit's rule files (`deploy/prometheus/rules/*.yml`) as `(file name, text)`, each
/// passed through `edit` (a test shortens `for:` durations and group intervals; names, labels,
/// expressions and annotations stay as shipped).
pub fn deploy_rules(edit: impl Fn(&str) -> String) -> Vec<(String, String)> {
    let dir = backend::repo_root().join("deploy/prometheus/rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/prometheus/rules exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a rule file");
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                edit(&text),
            )
        })
        .collect()
}

/// Replaces the value of every `key: <duration>` line (YAML, any indentation) with `value`.
pub fn set_durations(yaml: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key}:");
    yaml.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with(&prefix) {
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}{prefix} {value}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A real Alertmanager (`prometheus-alertmanager`) on a free loopback port, clustering off;
/// killed on drop.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts it with `config` (YAML text) and waits until ready. `None` when the binary is
    /// missing (loud notice; panic under CI).
    pub fn start(config: &str) -> Option<Self> {
        let Some(bin) = backend::find_binary("prometheus-alertmanager")
            .or_else(|| backend::find_binary("alertmanager"))
        else {
            backend::missing(
                "prometheus-alertmanager",
                "apt-get install -y prometheus-alertmanager",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let port = backend::free_port();
        let log = dir.path().join("alertmanager.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn alertmanager");
        let am = Alertmanager {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok((200, _)) = http_get(am.addr(), "/-/ready", &[]) {
                return Some(am);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("alertmanager not ready after 30 s; log:\n{}", am.log());
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The alerts it holds (`/api/v2/alerts`).
    pub fn alerts(&self) -> Value {
        let (status, body) =
            http_get(self.addr(), "/api/v2/alerts", &[]).expect("alertmanager answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on loopback: records every POST (path and JSON body), answers 200.
#[derive(Debug)]
pub struct Webhook {
    addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Webhook {
    /// Starts listening on a free port.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(hit) = read_post(stream) {
                            r.lock().unwrap_or_else(|e| e.into_inner()).push(hit);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Webhook {
            addr,
            received,
            stop,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every POST so far: `(path, JSON body)`.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn read_post(mut stream: TcpStream) -> Option<(String, Value)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
        if raw.len() > 1 << 20 {
            return None;
        }
    };
    while raw.len() < head_end + length.min(1 << 20) {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let body = serde_json::from_slice(&raw[head_end..]).unwrap_or(Value::Null);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some((path, body))
}

/// A loopback relay that fetches `target`'s `/metrics` with `Accept: text/plain` and serves
/// that body: a scrape job through it gets the Prometheus text format from the service even
/// though Prometheus 2.42 (with exemplar storage) always asks for OpenMetrics.
#[derive(Debug)]
pub struct TextRelay {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TextRelay {
    /// Starts relaying to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let reply = match http_request(
                    target,
                    "GET",
                    "/metrics",
                    &[("Accept", "text/plain;version=0.0.4")],
                    "",
                ) {
                    Ok((status, headers, body)) => {
                        let ct = headers
                            .iter()
                            .find(|(k, _)| k == "content-type")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        format!(
                            "HTTP/1.1 {status} OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    Err(e) => format!(
                        "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{e}",
                        e.len()
                    ),
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        TextRelay { addr, stop }
    }

    /// Its address (scrape `http://addr/metrics`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TextRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs `jq` (the real binary) with `args` on `input`; its stdout. `None` after the
/// missing-backend notice when jq is missing (a panic under CI).
pub fn jq(args: &[&str], input: &Path) -> Option<String> {
    let Some(bin) = backend::find_binary("jq") else {
        backend::missing("jq", "apt-get install -y jq");
        return None;
    };
    let mut cmd = Command::new(bin);
    cmd.args(args).arg(input);
    let out = run_bounded(cmd, Duration::from_secs(30)).expect("jq runs");
    assert!(
        out.status.success(),
        "jq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_found_at_any_depth() {
        let v = serde_json::json!({"gateway": {"http": 1000}, "backend_metrics": 1001,
                                   "dependency": "127.0.0.1:1002", "name": "x"});
        let mut m = BTreeMap::new();
        ports_of(&v, "", &mut m);
        assert_eq!(m.get("gateway.http"), Some(&1000));
        assert_eq!(m.get("backend_metrics"), Some(&1001));
        assert_eq!(m.get("dependency"), Some(&1002));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
