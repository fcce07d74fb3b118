//! Issue #9, the diagnosis drill: break the tour on purpose and follow the operations kit from
//! the alert to the cause, with the real tools.
//!
//! The tour runs with `--fault fail` (the backend's `GetOrder` answers `INTERNAL`, so the
//! gateway's `GET /orders/{id}` answers 500). A real Prometheus scrapes it and evaluates the
//! deploy kit's rules — a test copy where only the `for:` durations and group intervals are
//! shortened to seconds; alert names, labels, expressions and annotations are as shipped — and
//! sends alerts to a real Alertmanager configured from `deploy/alertmanager/alertmanager.yml`
//! with its receivers pointed at a webhook on loopback. The test then:
//!
//! 1. asserts `ObserveErrorBudgetFastBurn` fires for the faulty services and reaches
//!    Alertmanager and the `page` webhook with its runbook link, which names a runbook file;
//! 2. runs that runbook's PromQL queries, in order, extracted from its markdown, and asserts
//!    they name the faulty route (`/orders/{id}`) and gRPC method (`shop.Orders/GetOrder`);
//! 3. follows the runbook's exemplar query to a trace id, finds that trace at the OTLP
//!    receiver, and the failing request's log lines with the runbook's `jq` filter.
//!
//! And the control: the same stack without the fault fires no alert at all.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use observe_tests::backend;
use observe_tests::otlp::OtlpReceiver;
use observe_tests::prometheus::{Prometheus, ScrapeJob};
use observe_tests::services::{
    deploy_rules, http_request, jq, set_durations, Alertmanager, Fault, TourOptions, TourServices,
    Webhook,
};
use serde_json::Value;

/// Both drills start a whole stack; one at a time keeps them inside two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// The alert the `fail` fault must fire.
const ALERT: &str = "ObserveErrorBudgetFastBurn";

/// The placeholder URLs in deploy/alertmanager/alertmanager.yml.
const PAGE_URL: &str = "https://example.invalid/observe/alerts/page";
const TICKET_URL: &str = "https://example.invalid/observe/alerts/ticket";

struct Stack {
    receiver: OtlpReceiver,
    tour: TourServices,
    webhook: Webhook,
    alertmanager: Alertmanager,
    prom: Prometheus,
}

fn start_stack(fault: Fault) -> Option<Stack> {
    // This crate's own binary, built for every test.
    let bin = env!("CARGO_BIN_EXE_tour-service");
    let receiver = OtlpReceiver::start()?;
    let tour = TourServices::start(
        bin,
        TourOptions {
            fault,
            otlp_endpoint: Some(receiver.grpc_endpoint()),
            otlp_protocol: Some("grpc".into()),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let webhook = Webhook::start();
    let shipped =
        std::fs::read_to_string(backend::repo_root().join("deploy/alertmanager/alertmanager.yml"))
            .expect("deploy/alertmanager/alertmanager.yml");
    assert!(shipped.contains(PAGE_URL) && shipped.contains(TICKET_URL));
    let config = shipped
        .replace(PAGE_URL, &webhook.url("/page"))
        .replace(TICKET_URL, &webhook.url("/ticket"));
    let alertmanager = Alertmanager::start(&config)?;

    // The kit's rules with minutes and hours of `for:` made seconds, so the drill fits in a
    // test; the expressions' windows need no change (they average what history there is).
    let rules =
        deploy_rules(|text| set_durations(&set_durations(text, "for", "3s"), "interval", "1s"));
    let prom = Prometheus::builder()
        .jobs(
            tour.metrics_targets()
                .into_iter()
                .map(|(s, a)| ScrapeJob::new(s, a)),
        )
        .rule_files(rules)
        .alertmanager(alertmanager.addr())
        .interval(Duration::from_secs(1))
        .start()?;
    Some(Stack {
        receiver,
        tour,
        webhook,
        alertmanager,
        prom,
    })
}

/// Background traffic on the gateway (order lookups and placed orders, ~20/s) until dropped;
/// bounded to two minutes whatever happens.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(gateway: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                i += 1;
                let _ = http_request(gateway, "GET", &format!("/orders/{}", i % 19 + 1), &[], "");
                if i.is_multiple_of(4) {
                    let _ = http_request(
                        gateway,
                        "POST",
                        "/orders",
                        &[("Content-Type", "application/json")],
                        r#"{"sku":"sku-1","quantity":1}"#,
                    );
                }
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Traffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn firing(prom: &Prometheus) -> Vec<Value> {
    prom.alerts()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect()
}

fn runbook_path(alert: &str) -> PathBuf {
    backend::repo_root().join(format!("deploy/runbooks/{alert}.md"))
}

/// The text between `## <title>` and the next `## ` heading.
fn section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let start = markdown
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("no section {title:?}"));
    let rest = &markdown[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The fenced code blocks of one language in `text`, in order.
fn code_blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        match &mut current {
            None if t == format!("```{lang}") => current = Some(String::new()),
            Some(block) if t == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The queries of a ```promql block: a line starting a query, indented lines continuing it.
fn queries(block: &str) -> Vec<String> {
    let indent = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let own = line.len() - line.trim_start().len();
        match out.last_mut() {
            Some(q) if own > indent => {
                q.push(' ');
                q.push_str(line.trim());
            }
            _ => out.push(line.trim().to_string()),
        }
    }
    out
}

/// `(job, protocol)` of every firing `alert`.
fn firing_jobs(alerts: &[Value], alert: &str) -> BTreeSet<(String, String)> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == alert)
        .map(|a| {
            (
                a["labels"]["job"].as_str().unwrap_or("").to_string(),
                a["labels"]["protocol"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Step 1 of a drill: `alert` fires for the gateway (HTTP) and the backend (gRPC) and nothing
/// but it and its slow-burn `sibling` fires; it reaches Alertmanager routed to `page` (the
/// sibling inhibited) and the page webhook, with a runbook link naming a runbook file.
/// Returns that runbook's markdown.
fn alert_reaches_the_pager(stack: &Stack, alert: &str, sibling: &str) -> String {
    let want: BTreeSet<(String, String)> = [("backend", "grpc"), ("gateway", "http")]
        .map(|(j, p)| (j.to_string(), p.to_string()))
        .into();
    let deadline = Instant::now() + Duration::from_secs(90);
    let alerts = loop {
        let f = firing(&stack.prom);
        if firing_jobs(&f, alert) == want || Instant::now() > deadline {
            break f;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        firing_jobs(&alerts, alert),
        want,
        "{alert} fires for the gateway and the backend; firing: {alerts:#?}"
    );
    for a in &alerts {
        let name = a["labels"]["alertname"].as_str().unwrap();
        assert!(
            name == alert || name == sibling,
            "only {alert} (and {sibling}) fire under this fault, not {name}: {a}"
        );
        assert!(
            a["labels"]["job"] == "gateway" || a["labels"]["job"] == "backend",
            "the dependency is healthy: {a}"
        );
    }
    let firing_alert = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == alert && a["labels"]["job"] == "gateway")
        .unwrap();
    assert_eq!(firing_alert["labels"]["severity"], "page");
    let runbook_url = firing_alert["annotations"]["runbook_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        runbook_url.ends_with(&format!("/{alert}.md")),
        "{runbook_url}"
    );
    let runbook = std::fs::read_to_string(runbook_path(alert)).expect("the runbook exists");
    assert!(runbook.starts_with(&format!("# {alert}\n")));

    // ... reaches Alertmanager, routed to `page` ...
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_am = loop {
        let am = stack.alertmanager.alerts();
        let found = am
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == alert && a["labels"]["job"] == "gateway");
        if let Some(a) = found {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{alert} not in Alertmanager: {am}\nprometheus log:\n{}",
            stack.prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(in_am["annotations"]["runbook_url"], runbook_url.as_str());
    let receivers: Vec<&str> = in_am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(receivers, ["page"], "{in_am}");
    // (A slow burn for the same job and protocol is inhibited by the page.)
    for a in stack.alertmanager.alerts().as_array().unwrap() {
        if a["labels"]["alertname"] == sibling {
            assert_eq!(a["status"]["state"], "suppressed", "{a}");
        }
    }

    // ... and the page webhook, with the runbook link (group_wait of the page route: 10 s).
    let deadline = Instant::now() + Duration::from_secs(45);
    let (path, notification) = loop {
        let got = stack.webhook.received();
        let hit = got.into_iter().find(|(_, body)| {
            body["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["labels"]["alertname"] == alert)
        });
        if let Some(hit) = hit {
            break hit;
        }
        assert!(
            Instant::now() < deadline,
            "no notification at the webhook; alertmanager log:\n{}",
            stack.alertmanager.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(path, "/page", "{notification}");
    assert_eq!(notification["receiver"], "page");
    assert_eq!(notification["status"], "firing");
    for a in notification["alerts"].as_array().unwrap() {
        assert_eq!(a["labels"]["alertname"], alert, "{a}");
        assert_eq!(a["annotations"]["runbook_url"], runbook_url.as_str(), "{a}");
    }
    runbook
}

/// Step 2: the runbook's "Diagnose, in order" queries, in order, for `job` (the runbooks
/// write `job="shop"`): per step, every query with its result. Every query must be valid.
fn run_runbook_queries(stack: &Stack, runbook: &str, job: &str) -> Vec<Vec<(String, Value)>> {
    let steps: Vec<Vec<String>> = code_blocks(section(runbook, "Diagnose, in order"), "promql")
        .iter()
        .map(|b| queries(b))
        .collect();
    assert!(steps.len() >= 4, "{steps:#?}");
    steps
        .iter()
        .map(|step| {
            step.iter()
                .map(|q| {
                    assert!(q.contains(r#"job="shop""#), "{q}");
                    let q = q.replace(r#"job="shop""#, &format!(r#"job="{job}""#));
                    let result = stack.prom.query(&q);
                    (q, result)
                })
                .collect()
        })
        .collect()
}

fn num(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `{label value: value}` of one query's result.
fn by(result: &Value, label: &str) -> std::collections::BTreeMap<String, f64> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_string(),
                num(s),
            )
        })
        .collect()
}

/// Step 3: the runbook's exemplar query for `job` gives a trace id; the receiver holds that
/// trace with the backend's server span in it (returned with the trace id).
fn exemplar_to_trace(stack: &Stack, runbook: &str, job: &str) -> (String, Value) {
    let trace_section = section(runbook, "Find one trace, then its logs");
    let sh = code_blocks(trace_section, "sh").join("\n");
    let exemplar_query = sh
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("--data-urlencode 'query=")
                .and_then(|q| q.strip_suffix("' \\"))
        })
        .expect("the runbook's exemplar query")
        .replace(r#"job="shop""#, &format!(r#"job="{job}""#));
    let deadline = Instant::now() + Duration::from_secs(20);
    let exemplar = loop {
        let data = stack.prom.query_exemplars(&exemplar_query);
        let last = data
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
            .last();
        if let Some(e) = last {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplar for {exemplar_query}: {data}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let trace_id = exemplar["labels"]["trace_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace: Vec<Value> = stack
            .receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .collect();
        // Each service exports on its own batch schedule: wait for both server spans, not
        // only the first to arrive.
        let has = |service: &str| {
            trace
                .iter()
                .any(|s| s["resource"]["service.name"] == service && s["kind"] == "server")
        };
        if (has("tour-backend") && has("tour-gateway")) || Instant::now() > deadline {
            break trace;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let backend_span = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "tour-backend" && s["kind"] == "server")
        .unwrap_or_else(|| panic!("no backend span in trace {trace_id}: {trace:#?}"))
        .clone();
    assert!(
        trace
            .iter()
            .any(|s| s["resource"]["service.name"] == "tour-gateway" && s["kind"] == "server"),
        "the gateway's span is in the trace too: {trace:#?}"
    );
    (trace_id, backend_span)
}

/// Step 4: the runbook's `jq` filter with the trace id, on the services' stdout: the lines
/// (`None` when jq is missing, after the notice).
fn runbook_logs(stack: &Stack, runbook: &str, trace_id: &str) -> Option<(String, Vec<Value>)> {
    let filter = runbook
        .lines()
        .find_map(|l| {
            let start = l.find("jq -R '")? + "jq -R '".len();
            let end = l[start..].find('\'')? + start;
            Some(l[start..end].to_string())
        })
        .expect("the runbook's jq filter");
    let example_id = filter
        .split("trace_id==\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an example trace id in the filter")
        .to_string();
    let filter = filter.replace(&example_id, trace_id);
    std::thread::sleep(Duration::from_millis(300));
    let out = jq(&["-c", "-R", &filter], stack.tour.log_path())?;
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Some((out, lines))
}

fn services_of(lines: &[Value]) -> BTreeSet<&str> {
    lines
        .iter()
        .filter_map(|l| l["service.name"].as_str())
        .collect()
}

#[test]
fn drill_fail_fault_alert_to_runbook_to_trace_to_logs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stack) = start_stack(Fault::Fail) else {
        return;
    };
    let traffic = Traffic::start(stack.tour.gateway());

    // 1. The page, with its runbook.
    let runbook = alert_reaches_the_pager(&stack, ALERT, "ObserveErrorBudgetSlowBurn");

    // 2. The runbook's queries, in order, for each job the alert names.
    let mut named_routes = BTreeSet::new();
    let mut named_methods = BTreeSet::new();
    for (job, protocol) in [("gateway", "http"), ("backend", "grpc")] {
        let steps = run_runbook_queries(&stack, &runbook, job);
        // Step 1, how bad: the error ratio is far above the budget.
        for (q, result) in &steps[0] {
            let ratio = result
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["metric"]["protocol"] == protocol)
                .unwrap_or_else(|| panic!("{q}: {result}"));
            assert!(num(ratio) > 14.4 * 0.001, "{q}: {result}");
        }
        for (_, result) in steps.iter().flatten() {
            for s in result.as_array().unwrap() {
                let m = &s["metric"];
                if let Some(route) = m["http_route"].as_str() {
                    named_routes.insert((job.to_string(), route.to_string()));
                }
                if let Some(method) = m["rpc_method"].as_str() {
                    named_methods.insert((
                        job.to_string(),
                        method.to_string(),
                        m["rpc_response_status_code"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ));
                }
            }
        }
    }
    assert_eq!(
        named_routes,
        [("gateway".to_string(), "/orders/{id}".to_string())].into(),
        "the runbook's queries name the failing route, and only it"
    );
    let get_order = |job: &str| {
        (
            job.to_string(),
            "shop.Orders/GetOrder".to_string(),
            "INTERNAL".to_string(),
        )
    };
    assert!(
        named_methods.contains(&get_order("backend")),
        "the runbook's queries name the failing method: {named_methods:?}"
    );
    assert!(
        named_methods.contains(&get_order("gateway")),
        "the gateway's dependency step points at the backend's method: {named_methods:?}"
    );
    assert!(
        named_methods
            .iter()
            .all(|(_, m, code)| m == "shop.Orders/GetOrder" || code == "OK"),
        "nothing else is named failing: {named_methods:?}"
    );
    drop(traffic);

    // 3. One failing request, end to end: exemplar -> trace (the backend's span failed) ...
    let (trace_id, failed) = exemplar_to_trace(&stack, &runbook, "gateway");
    assert_eq!(failed["status"]["code"], "error", "{failed}");
    assert!(
        failed["name"].as_str().unwrap().contains("GetOrder"),
        "{failed}"
    );

    // ... -> its log lines, from both services, saying why.
    let Some((out, lines)) = runbook_logs(&stack, &runbook, &trace_id) else {
        return;
    };
    assert_eq!(
        services_of(&lines),
        ["tour-backend", "tour-gateway"].into(),
        "the failing request's lines from both services ({trace_id}):\n{out}"
    );
    assert!(
        out.contains("order store unavailable"),
        "the backend says why:\n{out}"
    );
}

#[test]
fn drill_slow_fault_latency_alert_to_runbook_to_trace_to_logs() {
    const LATENCY: &str = "ObserveLatencyBudgetFastBurn";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stack) = start_stack(Fault::Slow) else {
        return;
    };
    let traffic = Traffic::start(stack.tour.gateway());

    // 1. The page, with its runbook.
    let runbook = alert_reaches_the_pager(&stack, LATENCY, "ObserveLatencyBudgetSlowBurn");

    // 2. The runbook's queries, in order.
    let gateway = run_runbook_queries(&stack, &runbook, "gateway");
    // Step 1, how bad: most requests are slow, and p99 is above the 0.5 s threshold.
    let (q, slow_ratio) = &gateway[0][0];
    let slow_ratio = by(slow_ratio, "protocol")["http"];
    assert!(slow_ratio > 14.4 * 0.01, "{q}: {slow_ratio}");
    let (q, p99) = &gateway[0][1];
    assert!(by(p99, "protocol")["http"] > 0.5, "{q}: {p99}");
    // Step 2, which routes: exactly the order lookup is slow, by p99 and by slow share.
    let over = |result: &Value, label: &str, limit: f64| -> BTreeSet<String> {
        by(result, label)
            .into_iter()
            .filter(|(_, v)| *v > limit)
            .map(|(k, _)| k)
            .collect()
    };
    let only_lookup: BTreeSet<String> = ["/orders/{id}".to_string()].into();
    assert_eq!(
        over(&gateway[1][0].1, "http_route", 0.5),
        only_lookup,
        "{:?}",
        gateway[1][0]
    );
    assert_eq!(
        over(&gateway[1][1].1, "http_route", 0.5),
        only_lookup,
        "{:?}",
        gateway[1][1]
    );
    // ... and behind it, the backend's method (gRPC p99 per method, and the gateway's client
    // calls in the dependency step).
    let backend = run_runbook_queries(&stack, &runbook, "backend");
    let only_get_order: BTreeSet<String> = ["shop.Orders/GetOrder".to_string()].into();
    assert_eq!(
        over(&backend[2][0].1, "rpc_method", 0.5),
        only_get_order,
        "{:?}",
        backend[2][0]
    );
    let (q, client_p99) = gateway
        .iter()
        .flatten()
        .find(|(q, _)| q.contains("rpc_client_call_duration_seconds_bucket"))
        .expect("a gRPC client latency query");
    assert_eq!(over(client_p99, "rpc_method", 0.5), only_get_order, "{q}");
    drop(traffic);

    // 3. One slow request, end to end: exemplar from the top buckets -> its trace, where the
    // backend's span took the injected 700 ms ...
    let (trace_id, slow) = exemplar_to_trace(&stack, &runbook, "gateway");
    let took = slow["end_unix_nano"].as_u64().unwrap() - slow["start_unix_nano"].as_u64().unwrap();
    assert!(took >= 700_000_000, "backend span took {took} ns: {slow}");

    // ... -> its log lines, from both services, saying why.
    let Some((out, lines)) = runbook_logs(&stack, &runbook, &trace_id) else {
        return;
    };
    assert!(
        services_of(&lines).is_superset(&["tour-backend", "tour-gateway"].into()),
        "the slow request's lines from the services it crossed ({trace_id}):\n{out}"
    );
    assert!(
        out.contains("injected fault: slow order lookup"),
        "the backend says why:\n{out}"
    );
}

#[test]
fn drill_without_fault_fires_no_alert() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stack) = start_stack(Fault::None) else {
        return;
    };
    let traffic = Traffic::start(stack.tour.gateway());
    // Long enough for every SLO series to be recorded and every shortened `for:` to pass
    // several times over.
    let budget = stack.prom.wait_for(
        "job:observe_server_errors:ratio_rate5m",
        Duration::from_secs(30),
        |r| r.as_array().is_some_and(|a| a.len() >= 3),
    );
    assert_eq!(budget.as_array().map(Vec::len), Some(3), "{budget}");
    std::thread::sleep(Duration::from_secs(10));
    assert!(traffic.sent.load(Ordering::Relaxed) > 50);

    // The recorded error ratios really are zero: the control is healthy, not unmeasured.
    let ratios = stack.prom.query("job:observe_server_errors:ratio_rate5m");
    assert_eq!(ratios.as_array().map(Vec::len), Some(3), "{ratios}");
    for s in ratios.as_array().unwrap() {
        assert_eq!(s["value"][1], "0", "{s}");
    }
    let alerts = stack.prom.alerts();
    assert_eq!(alerts, serde_json::json!([]), "no alert pending or firing");
    assert_eq!(stack.prom.query("ALERTS"), serde_json::json!([]));
    drop(traffic);
    assert_eq!(stack.alertmanager.alerts(), serde_json::json!([]));
    assert!(stack.webhook.received().is_empty());
}

/// The drill reads the runbook the way an operator does: the promql blocks of "Diagnose, in
/// order" in order, a query continued on indented lines kept whole.
#[test]
fn runbook_queries_are_extracted_in_order() {
    let runbook = std::fs::read_to_string(runbook_path(ALERT)).unwrap();
    let steps: Vec<Vec<String>> = code_blocks(section(&runbook, "Diagnose, in order"), "promql")
        .iter()
        .map(|b| queries(b))
        .collect();
    let counts: Vec<usize> = steps.iter().map(Vec::len).collect();
    assert_eq!(counts, [2, 1, 1, 1, 2], "{steps:#?}");
    assert!(steps[0][0].starts_with("job:observe_server_errors:ratio_rate5m{"));
    assert!(
        steps[3][0].contains(") / sum by (instance)"),
        "the continued line joins its query: {}",
        steps[3][0]
    );
    let all: Vec<&String> = steps.iter().flatten().collect();
    assert!(all.iter().all(|q| q.contains(r#"job="shop""#)), "{all:#?}");
    assert!(
        code_blocks("```promql\nup\n```\n```sh\nls\n```", "promql") == ["up\n"],
        "only the asked language"
    );
}
