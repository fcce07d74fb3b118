//! The orchestrator: starts the three services as child processes, drives them, and reads back
//! what they recorded (logs from their stdout, RED from their `/metrics`, spans from their
//! in-process collectors).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::child::READY_KEY;
use super::cli::{Fault, Role};
use super::prom::{self, Red, Sample};
use super::report::{RedRow, Sent, TourReport, WaterfallSection};
use super::spans::{SpanRecord, Trace};
use super::TourError;

/// How long a service may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a service may take to flush and exit once asked to.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines kept from all services together; older lines are dropped past this.
pub const MAX_LOG_LINES: usize = 50_000;
/// Requests in flight at once during the burst.
pub const CONCURRENCY: usize = 8;
/// Per-request timeout during the burst.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where one running service listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Its role.
    pub role: Role,
    /// Its `service.name`.
    pub service: String,
    /// Main port: HTTP (gateway, dependency) or gRPC (backend).
    pub port: u16,
    /// Port serving `/metrics` (the main port except for the backend).
    pub metrics_port: u16,
    /// Port serving `/tour/spans`.
    pub admin_port: u16,
}

impl ServiceInfo {
    /// `http://127.0.0.1:{metrics_port}/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// `http://127.0.0.1:{admin_port}/observe`: observe's status page (`.json` for JSON).
    pub fn status_url(&self) -> String {
        format!("http://127.0.0.1:{}/observe", self.admin_port)
    }

    /// `http://127.0.0.1:{admin_port}/tour/spans`.
    pub fn spans_url(&self) -> String {
        format!("http://127.0.0.1:{}/tour/spans", self.admin_port)
    }

    /// The main address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn json(&self) -> Value {
        json!({
            "service": self.service, "port": self.port, "metrics_port": self.metrics_port,
            "admin_port": self.admin_port, "metrics_url": self.metrics_url(),
            "spans_url": self.spans_url(), "status_url": self.status_url(),
        })
    }
}

/// A log line a service wrote on its stdout.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Who wrote it.
    pub role: Role,
    /// The line, as written.
    pub line: String,
}

#[derive(Default)]
struct LogBuffer {
    lines: std::collections::VecDeque<LogLine>,
    dropped: u64,
    /// Copy each new line to this process's stdout (`--serve`).
    echo: bool,
}

struct Running {
    role: Role,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The three services, running. Dropping this stops them (gracefully, then by force): no
/// child outlives the orchestrator, on any exit path. Should the orchestrator itself be
/// killed, each child sees its stdin close and exits on its own.
pub struct Services {
    running: Vec<Running>,
    infos: Vec<ServiceInfo>,
    logs: Arc<Mutex<LogBuffer>>,
}

impl Services {
    /// Starts dependency, backend (with `fault`) and gateway from `exe` (a binary whose `main`
    /// is [`crate::tour::main`]).
    pub fn start(exe: &Path, fault: Fault) -> Result<Services, TourError> {
        let mut services = Services {
            running: Vec::new(),
            infos: Vec::new(),
            logs: Arc::default(),
        };
        for role in Role::ALL {
            let upstream = match role {
                Role::Dependency => None,
                Role::Backend => Some(services.info(Role::Dependency).addr()),
                Role::Gateway => Some(services.info(Role::Backend).addr()),
            };
            let info = services.spawn(exe, role, upstream, fault)?;
            services.infos.push(info);
        }
        Ok(services)
    }

    fn spawn(
        &mut self,
        exe: &Path,
        role: Role,
        upstream: Option<SocketAddr>,
        fault: Fault,
    ) -> Result<ServiceInfo, TourError> {
        let mut cmd = Command::new(exe);
        cmd.args(["--role", role.as_str(), "--exit-on-stdin-eof"]);
        if let Some(up) = upstream {
            cmd.arg("--upstream").arg(up.to_string());
        }
        if role == Role::Backend {
            cmd.args(["--fault", fault.as_str()]);
        }
        // Every OTEL_* variable reaches the services (inherited), except the service name:
        // each service names itself, and one shared name would merge them everywhere.
        cmd.env_remove("OTEL_SERVICE_NAME")
            .env_remove("TOUR_FAULT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| {
            TourError::Io(format!("cannot start {} ({}): {e}", role, exe.display()))
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.running.push(Running {
            role,
            child,
            stdin,
            reader: None,
        });
        let stdout = stdout.ok_or(TourError::Setup("child stdout not captured"))?;

        let (ready_tx, ready_rx) = mpsc::channel::<ServiceInfo>();
        let logs = Arc::clone(&self.logs);
        let reader = std::thread::Builder::new()
            .name(format!("tour-{role}-stdout"))
            .spawn(move || read_stdout(role, stdout, ready_tx, logs))?;
        if let Some(r) = self.running.last_mut() {
            r.reader = Some(reader);
        }
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(info) => Ok(info),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self
                    .running
                    .last_mut()
                    .and_then(|r| r.child.wait().ok())
                    .map_or_else(|| "unknown status".into(), |s| s.to_string());
                Err(TourError::Child {
                    role,
                    message: format!("exited before listening ({status}); see its stderr above"),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TourError::Child {
                role,
                message: format!("not listening after {START_TIMEOUT:?}"),
            }),
        }
    }

    /// Where `role` listens.
    pub fn info(&self, role: Role) -> &ServiceInfo {
        self.infos
            .iter()
            .find(|i| i.role == role)
            .expect("every role is started before it is looked up")
    }

    /// Every service, in start order.
    pub fn infos(&self) -> &[ServiceInfo] {
        &self.infos
    }

    /// The ports of every service as one JSON object keyed by role (what `--serve` prints).
    pub fn ports_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for i in &self.infos {
            m.insert(i.role.as_str().to_string(), i.json());
        }
        Value::Object(m)
    }

    /// The log lines received so far, oldest first, and how many were dropped for space.
    pub fn logs(&self) -> (Vec<LogLine>, u64) {
        let b = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        (b.lines.iter().cloned().collect(), b.dropped)
    }

    /// Writes `first` and every log line received so far to stdout, then copies each new line
    /// as it arrives — with no line lost or repeated in between.
    pub fn echo_logs_after(&self, first: &str) -> std::io::Result<()> {
        let mut b = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        writeln!(out, "{first}")?;
        for l in &b.lines {
            writeln!(out, "{}", l.line)?;
        }
        out.flush()?;
        b.echo = true;
        Ok(())
    }

    /// The first service that has exited on its own, if any.
    pub fn exited(&mut self) -> Option<(Role, String)> {
        self.running
            .iter_mut()
            .find_map(|r| match r.child.try_wait() {
                Ok(Some(status)) => Some((r.role, status.to_string())),
                _ => None,
            })
    }

    /// Stops every service: closes its stdin (it flushes and exits), then kills what is still
    /// running after [`STOP_TIMEOUT`]. Returns once every line they wrote has been read.
    pub fn stop(&mut self) {
        for r in &mut self.running {
            r.stdin.take();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for r in &mut self.running {
            loop {
                match r.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            // The child is gone, so its stdout reaches end of file: the reader finishes.
            if let Some(reader) = r.reader.take() {
                let _ = reader.join();
            }
        }
        self.running.clear();
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_stdout(
    role: Role,
    stdout: std::process::ChildStdout,
    ready: mpsc::Sender<ServiceInfo>,
    logs: Arc<Mutex<LogBuffer>>,
) {
    let mut ready = Some(ready);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if ready.is_some() {
            if let Some(info) = parse_ready(role, &line) {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(info);
                }
                continue;
            }
        }
        let mut b = logs.lock().unwrap_or_else(|e| e.into_inner());
        if b.echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
        if b.lines.len() >= MAX_LOG_LINES {
            b.lines.pop_front();
            b.dropped += 1;
        }
        b.lines.push_back(LogLine { role, line });
    }
}

fn parse_ready(role: Role, line: &str) -> Option<ServiceInfo> {
    let v: Value = serde_json::from_str(line).ok()?;
    let r = v.get(READY_KEY)?;
    let port = |k: &str| {
        r.get(k)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
    };
    Some(ServiceInfo {
        role,
        service: r.get("service")?.as_str()?.to_string(),
        port: port("port")?,
        metrics_port: port("metrics_port")?,
        admin_port: port("admin_port")?,
    })
}

/// One request of the burst.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path sent.
    pub path: String,
    /// The route template the gateway reports it under.
    pub route: &'static str,
    /// JSON body for `POST`.
    pub body: Option<String>,
}

/// The burst: 100 requests, the same every run. Per ten: six `GET /orders/{id}` (ids that are
/// multiples of 20 do not exist: 404, which is not an error), two `POST /orders` (quantities
/// cycling 1..=8; more than 5 is out of stock: 409, counted as `rejected`), one `GET /slow`
/// (a slow dependency call) and one `GET /fail` (`INTERNAL` from the backend: 500).
///
/// ```
/// let plan = observe_examples::tour::orchestrate::plan();
/// assert_eq!(plan.len(), 100);
/// assert_eq!(plan.iter().filter(|p| p.route == "/fail").count(), 10);
/// ```
pub fn plan() -> Vec<Planned> {
    let (mut order, mut post) = (0u64, 0u32);
    (0..100)
        .map(|i| match i % 10 {
            0..=5 => {
                order += 1;
                Planned {
                    method: "GET",
                    path: format!("/orders/{order}"),
                    route: "/orders/{id}",
                    body: None,
                }
            }
            6 | 7 => {
                let quantity = post % 8 + 1;
                post += 1;
                Planned {
                    method: "POST",
                    path: "/orders".into(),
                    route: "/orders",
                    body: Some(
                        json!({ "sku": format!("sku-{}", post % 7), "quantity": quantity })
                            .to_string(),
                    ),
                }
            }
            8 => Planned {
                method: "GET",
                path: "/slow".into(),
                route: "/slow",
                body: None,
            },
            _ => Planned {
                method: "GET",
                path: "/fail".into(),
                route: "/fail",
                body: None,
            },
        })
        .collect()
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One HTTP request; returns the status and body. Bounded by [`REQUEST_TIMEOUT`].
async fn request(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, Bytes), TourError> {
    let mut req = http::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
        .map_err(|e| TourError::Http(format!("{method} {url}: {e}")))?;
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| TourError::Http(format!("{method} {url}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| TourError::Http(format!("{method} {url}: reading the body: {e}")))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(TourError::Http(format!(
                "{method} {url}: no answer in {REQUEST_TIMEOUT:?}"
            )))
        })
}

/// Sends `plan` to the gateway, [`CONCURRENCY`] at a time; results in plan order.
pub async fn burst(gateway: SocketAddr, plan: &[Planned]) -> Vec<Sent> {
    let client = http_client();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in plan.iter().cloned().enumerate() {
        let client = client.clone();
        let semaphore = Arc::clone(&semaphore);
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let url = format!("http://{gateway}{}", p.path);
            let started = Instant::now();
            let result = request(&client, p.method, &url, p.body.as_deref()).await;
            let latency = started.elapsed();
            let (status, trace_id) = match result {
                Ok((status, body)) => (
                    status,
                    serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v.get("trace_id")?.as_str().map(str::to_string)),
                ),
                Err(_) => (0, None),
            };
            (
                i,
                Sent {
                    method: p.method,
                    route: p.route,
                    status,
                    latency,
                    trace_id,
                },
            )
        });
    }
    let mut out: Vec<Option<Sent>> = vec![None; plan.len()];
    while let Some(Ok((i, sent))) = tasks.join_next().await {
        out[i] = Some(sent);
    }
    out.into_iter().flatten().collect()
}

async fn scrape(client: &HttpClient, info: &ServiceInfo) -> Result<Vec<Sample>, TourError> {
    let (status, body) = request(client, "GET", &info.metrics_url(), None).await?;
    if status != 200 {
        return Err(TourError::Http(format!(
            "{}: status {status}",
            info.metrics_url()
        )));
    }
    Ok(prom::parse(&String::from_utf8_lossy(&body)))
}

fn http_op(s: &Sample) -> Option<String> {
    Some(format!(
        "{} {}",
        s.label("http_request_method")?,
        s.label("http_route")?
    ))
}

fn rpc_op(s: &Sample) -> Option<String> {
    s.label("rpc_method").map(str::to_string)
}

fn client_http_op(s: &Sample) -> Option<String> {
    let method = s.label("http_request_method")?;
    Some(match s.label("server_address") {
        Some(a) => format!("{method} {a}"),
        None => format!("{method} (any host)"),
    })
}

/// RED rows for one service's page: its server family, then what it called.
fn red_rows(info: &ServiceInfo, samples: &[Sample]) -> Vec<RedRow> {
    let row = |side: &'static str, r: Red| RedRow {
        service: info.service.clone(),
        side,
        red: r,
    };
    let mut rows = Vec::new();
    match info.role {
        Role::Gateway | Role::Dependency => {
            rows.extend(
                prom::red(samples, "http_server_request_duration_seconds", http_op)
                    .into_iter()
                    .map(|r| row("server", r)),
            );
        }
        Role::Backend => {
            rows.extend(
                prom::red(samples, "rpc_server_call_duration_seconds", rpc_op)
                    .into_iter()
                    .map(|r| row("server", r)),
            );
        }
    }
    rows.extend(
        prom::red(samples, "rpc_client_call_duration_seconds", rpc_op)
            .into_iter()
            .map(|r| row("client", r)),
    );
    rows.extend(
        prom::red(
            samples,
            "http_client_request_duration_seconds",
            client_http_op,
        )
        .into_iter()
        .map(|r| row("client", r)),
    );
    rows
}

fn server_total(info: &ServiceInfo, samples: &[Sample]) -> f64 {
    match info.role {
        Role::Backend => prom::sum(samples, "rpc_server_call_duration_seconds_count", &[]),
        _ => prom::sum(samples, "http_server_request_duration_seconds_count", &[]),
    }
}

/// Fetches `/tour/spans?trace_id=…` from every service; `None` when no service keeps spans.
async fn fetch_trace(client: &HttpClient, infos: &[ServiceInfo], trace_id: &str) -> Option<Trace> {
    let mut spans: Vec<SpanRecord> = Vec::new();
    let mut any_collector = false;
    for info in infos {
        let url = format!("{}?trace_id={trace_id}", info.spans_url());
        let Ok((200, body)) = request(client, "GET", &url, None).await else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        any_collector |= v.get("collector").and_then(Value::as_bool).unwrap_or(false);
        let service = v
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or(&info.service)
            .to_string();
        if let Some(arr) = v.get("spans").and_then(Value::as_array) {
            spans.extend(
                arr.iter()
                    .filter_map(|s| SpanRecord::from_json(&service, s)),
            );
        }
    }
    any_collector.then(|| Trace::new(trace_id, spans))
}

/// The OTLP traces endpoint the services export to, when the environment configures one.
pub fn export_endpoint() -> Option<String> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// Runs the whole tour against services started from `exe` and returns what it found. The
/// services are stopped before this returns, whatever happens.
pub fn run(exe: &Path, fault: Fault) -> Result<TourReport, TourError> {
    let mut services = Services::start(exe, fault)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(drive(&services));
    services.stop();
    let (logs, dropped) = services.logs();
    let mut report = result?;
    report.attach_logs(&logs, dropped);
    Ok(report)
}

async fn drive(services: &Services) -> Result<TourReport, TourError> {
    let plan = plan();
    let started = Instant::now();
    let sent = burst(services.info(Role::Gateway).addr(), &plan).await;
    let burst_time = started.elapsed();

    // A server records a request when its response body ends, which may be a moment after the
    // client has read it: scrape until every request is counted (bounded).
    let client = http_client();
    let infos = services.infos().to_vec();
    let mut pages: Vec<Vec<Sample>> = Vec::new();
    let mut previous_dependency = -1.0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        pages.clear();
        for info in &infos {
            pages.push(scrape(&client, info).await?);
        }
        let total = |role| {
            infos
                .iter()
                .position(|i| i.role == role)
                .map_or(0.0, |i| server_total(&infos[i], &pages[i]))
        };
        let settled = total(Role::Gateway) as usize >= sent.len()
            && total(Role::Backend) as usize >= sent.len()
            && total(Role::Dependency) == previous_dependency;
        if settled || Instant::now() >= deadline {
            break;
        }
        previous_dependency = total(Role::Dependency);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let red: Vec<RedRow> = infos
        .iter()
        .zip(&pages)
        .flat_map(|(i, p)| red_rows(i, p))
        .collect();
    let backend_page = infos
        .iter()
        .position(|i| i.role == Role::Backend)
        .map(|i| &pages[i]);
    let orders_placed: Vec<(String, u64)> = ["success", "rejected", "error"]
        .iter()
        .map(|o| {
            let n = backend_page.map_or(0.0, |p| {
                prom::sum(p, "orders_placed_total", &[("outcome", o)])
            });
            (o.to_string(), n as u64)
        })
        .collect();

    // The slowest request, and its trace across the three services.
    let slowest = sent
        .iter()
        .filter(|s| s.trace_id.is_some())
        .max_by_key(|s| s.latency)
        .cloned();
    let mut waterfall = None;
    if let Some(trace_id) = slowest.as_ref().and_then(|s| s.trace_id.clone()) {
        // Spans end (and reach the store) as their responses finish: wait for all three
        // services' spans, briefly.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let trace = fetch_trace(&client, &infos, &trace_id).await;
            let complete = trace
                .as_ref()
                .is_none_or(|t| t.services().len() >= infos.len());
            if complete || Instant::now() >= deadline {
                waterfall = Some(match trace {
                    Some(t) => WaterfallSection::Trace(t),
                    None => WaterfallSection::NoCollector,
                });
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(TourReport {
        services: infos,
        sent,
        burst_time,
        red,
        orders_placed,
        slowest,
        waterfall,
        export_endpoint: export_endpoint(),
        logs: Vec::new(),
        logs_dropped: 0,
    })
}

/// `--serve`: start the services, print their ports as one JSON line on stdout, then copy
/// their log lines to stdout until SIGINT/SIGTERM (or until a service dies: an error).
pub fn serve(exe: &Path, fault: Fault) -> Result<(), TourError> {
    let mut services = Services::start(exe, fault)?;
    services.echo_logs_after(&services.ports_json().to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tick.tick() => {
                    if let Some((role, status)) = services.exited() {
                        return Err(TourError::Child { role, message: format!("exited ({status})") });
                    }
                }
            }
        }
    });
    services.stop();
    result
}
