//! Starting the services an end-to-end test talks to, on loopback: the tour services
//! (`tour-service --serve`), the Python OpenTelemetry peers (tests/python/peer_*.py), and a
//! small blocking HTTP client to drive them.
//!
//! Every child process is killed when its handle drops; every wait is bounded.
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
    pub fn spawn(mut cmd: Command, what: &str) -> Result<Self, String> {
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
        // One thread per child: hands over the first line, then copies the rest to the file
        // (line by line, so a reader of the file never sees half a line for long).
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
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
            if let Some(p) = s.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()) {
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
        cmd.arg("--serve");
        match options.fault {
            Fault::None => {}
            Fault::Slow => {
                cmd.args(["--fault", "slow"]);
            }
            Fault::Fail => {
                cmd.args(["--fault", "fail"]);
            }
        }
        // A clean environment for what observe reads, so the developer's shell cannot change
        // the outcome; then what the test asks for.
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") || k.starts_with("OBSERVE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("OTEL_BSP_SCHEDULE_DELAY", "200");
        if let Some(e) = &options.otlp_endpoint {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e);
        }
        if let Some(p) = &options.otlp_protocol {
            cmd.env("OTEL_EXPORTER_OTLP_PROTOCOL", p);
        }
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let process = Announced::spawn(cmd, "tour-service --serve")?;
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
        self.addr_of(&["gateway", "gateway.http", "gateway.port", "gateway_port", "gateway_http"])
    }

    /// Every `/metrics` endpoint, as `(job, address)`: one per service.
    pub fn metrics_targets(&self) -> Vec<(String, SocketAddr)> {
        let mut out = Vec::new();
        for (key, port) in &self.ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            let service = key.split(['.', '_']).next().unwrap_or(key).to_string();
            if key.contains("metrics") {
                out.retain(|(s, _): &(String, SocketAddr)| s != &service);
                out.push((service, addr));
            } else if key.starts_with("gateway") && !out.iter().any(|(s, _)| s == "gateway") {
                out.push(("gateway".into(), addr));
            }
        }
        out
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
        .args(["--url", url, "--tracestate", tracestate, "--baggage", baggage])
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

/// A blocking HTTP/1.1 request on loopback: status, response headers (lowercased names), body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Vec<(String, String)>, String), String> {
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
    s.read_to_end(&mut raw).map_err(|e| format!("read {addr}{path_and_query}: {e}"))?;
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
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
