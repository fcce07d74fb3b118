//! The Python OTLP receiver (tests/python/otlp_receiver.py): start it, query what it got, make it fail.
//!
//! ```no_run
//! use observe_tests::otlp::{Mode, OtlpReceiver};
//! use std::time::Duration;
//!
//! let Some(receiver) = OtlpReceiver::start() else { return }; // backend missing: notice printed
//! println!("export to {} or {}", receiver.grpc_endpoint(), receiver.http_endpoint());
//! receiver.set_mode(Mode::Fail);
//! let spans = receiver.wait_for_spans(1, Duration::from_secs(5));
//! # let _ = spans;
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend;

/// How the receiver answers exports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Record and acknowledge.
    Ok,
    /// Refuse: gRPC `UNAVAILABLE`, HTTP 503.
    Fail,
    /// Accept the request and never answer.
    Stall,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Ok => "ok",
            Mode::Fail => "fail",
            Mode::Stall => "stall",
        }
    }
}

/// A running receiver; killed on drop.
#[derive(Debug)]
pub struct OtlpReceiver {
    child: Option<Child>,
    grpc_port: u16,
    http_port: u16,
}

const HOW_TO_GET: &str = "python3 -m venv tests/.venv && tests/.venv/bin/pip install -r \
     tests/python/requirements.txt (or set OBSERVE_TEST_PYTHON)";

impl OtlpReceiver {
    /// Starts the receiver on free loopback ports. `None` (after a loud notice; a panic under
    /// `CI=true`) when the Python environment is missing or the receiver cannot start.
    pub fn start() -> Option<Self> {
        let Some(python) = backend::python() else {
            backend::missing("Python test virtualenv (OTLP receiver)", HOW_TO_GET);
            return None;
        };
        match Self::spawn(&python, 0, 0) {
            Ok(r) => Some(r),
            Err(e) => {
                backend::missing(
                    &format!("OTLP receiver ({} failed: {e})", python.display()),
                    HOW_TO_GET,
                );
                None
            }
        }
    }

    fn spawn(python: &std::path::Path, grpc_port: u16, http_port: u16) -> Result<Self, String> {
        let script = backend::repo_root().join("tests/python/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--grpc-port", &grpc_port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("no port line within 30 s".into());
            }
        };
        let ports: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("unexpected start-up output {line:?}"));
            }
        };
        let port = |k: &str| ports[k].as_u64().and_then(|p| u16::try_from(p).ok());
        match (port("grpc_port"), port("http_port")) {
            (Some(grpc_port), Some(http_port)) => Ok(OtlpReceiver {
                child: Some(child),
                grpc_port,
                http_port,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("start-up failed: {line}"))
            }
        }
    }

    /// `http://127.0.0.1:<grpc port>`, for `OtlpProtocol::Grpc`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// `http://127.0.0.1:<http port>` (the base: `/v1/traces` is appended by the exporter).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Every span received so far, flattened (see the receiver's docstring for the fields).
    pub fn spans(&self) -> Vec<Value> {
        self.get_list("/control/spans")
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<Value> {
        self.get_list("/control/logs")
    }

    /// Request counts: `accepted`, `failed`, `stalled`, and the current `mode`.
    pub fn stats(&self) -> Value {
        self.request("GET", "/control/stats", "")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        self.request("POST", "/control/clear", "")
            .expect("receiver control API answers");
    }

    /// Waits until at least `n` spans arrived (or `timeout`); returns what arrived.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Switches how exports are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.request("POST", "/control/mode", mode.as_str())
            .expect("receiver control API answers");
    }

    /// Kills the receiver (its ports close; what it received is lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it if running and starts it again on the same ports.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let python = backend::python().ok_or("python disappeared")?;
        let mut last = String::new();
        // The old process's ports may take a moment to be released.
        for _ in 0..50 {
            match Self::spawn(&python, self.grpc_port, self.http_port) {
                Ok(r) => {
                    *self = r;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last)
    }

    fn get_list(&self, path: &str) -> Vec<Value> {
        let body = self
            .request("GET", path, "")
            .expect("receiver control API answers");
        match serde_json::from_str(&body) {
            Ok(Value::Array(v)) => v,
            other => panic!("unexpected answer from {path}: {other:?}"),
        }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200")
            .then(|| body.to_string())
            .or_else(|| panic!("{method} {path}: {head}"))
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}
