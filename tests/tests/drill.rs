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
use observe_tests::services::{
    deploy_rules, http_request, jq, set_durations, Alertmanager, Fault, PromJob, PromOptions,
    PrometheusStack, TourOptions, TourServices, Webhook,
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
    prom: PrometheusStack,
}

fn start_stack(fault: Fault) -> Option<Stack> {
    let Some(bin) = option_env!("CARGO_BIN_EXE_tour-service") else {
        backend::missing(
            "the tour-service binary (tests/src/bin/tour-service.rs)",
            "build it with the tour example (branch tour)",
        );
        return None;
    };
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
    let prom = PrometheusStack::start(&PromOptions {
        jobs: tour
            .metrics_targets()
            .into_iter()
            .map(|(s, a)| PromJob::new(s, a))
            .collect(),
        rule_files: rules,
        alertmanager: Some(alertmanager.addr()),
        interval: Duration::from_secs(1),
    })?;
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

fn firing(prom: &PrometheusStack) -> Vec<Value> {
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

#[test]
fn drill_fail_fault_alert_to_runbook_to_trace_to_logs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(stack) = start_stack(Fault::Fail) else {
        return;
    };
    let traffic = Traffic::start(stack.tour.gateway());

    // 1. The alert fires, for the services that fail users, and only burn alerts fire.
    let deadline = Instant::now() + Duration::from_secs(90);
    let fired = loop {
        let f = firing(&stack.prom);
        let jobs: BTreeSet<(String, String)> = f
            .iter()
            .filter(|a| a["labels"]["alertname"] == ALERT)
            .map(|a| {
                (
                    a["labels"]["job"].as_str().unwrap_or("").to_string(),
                    a["labels"]["protocol"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if jobs.len() >= 2 || Instant::now() > deadline {
            break (f, jobs);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (alerts, jobs) = fired;
    assert_eq!(
        jobs,
        [
            ("backend".to_string(), "grpc".to_string()),
            ("gateway".to_string(), "http".to_string())
        ]
        .into(),
        "{ALERT} fires for the gateway (HTTP 500s) and the backend (INTERNAL); firing: {alerts:#?}"
    );
    for a in &alerts {
        let name = a["labels"]["alertname"].as_str().unwrap();
        assert!(
            name == ALERT || name == "ObserveErrorBudgetSlowBurn",
            "only error-budget alerts fire under this fault, not {name}: {a}"
        );
        assert!(
            a["labels"]["job"] == "gateway" || a["labels"]["job"] == "backend",
            "the dependency is healthy: {a}"
        );
    }
    let alert = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == ALERT && a["labels"]["job"] == "gateway")
        .unwrap();
    assert_eq!(alert["labels"]["severity"], "page");
    let runbook_url = alert["annotations"]["runbook_url"].as_str().unwrap();
    assert!(
        runbook_url.ends_with(&format!("/{ALERT}.md")),
        "{runbook_url}"
    );
    let runbook = std::fs::read_to_string(runbook_path(ALERT)).expect("the runbook exists");
    assert!(runbook.starts_with(&format!("# {ALERT}\n")));

    // ... reaches Alertmanager, routed to `page` ...
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_am = loop {
        let am = stack.alertmanager.alerts();
        let found = am
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == ALERT && a["labels"]["job"] == "gateway");
        if let Some(a) = found {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{ALERT} not in Alertmanager: {am}\nprometheus log:\n{}",
            stack.prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(in_am["annotations"]["runbook_url"], runbook_url);
    let receivers: Vec<&str> = in_am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(receivers, ["page"], "{in_am}");
    // (A slow burn for the same job and protocol is inhibited by the page.)
    for a in stack.alertmanager.alerts().as_array().unwrap() {
        if a["labels"]["alertname"] == "ObserveErrorBudgetSlowBurn" {
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
                .any(|a| a["labels"]["alertname"] == ALERT)
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
        assert_eq!(a["labels"]["alertname"], ALERT, "{a}");
        assert_eq!(a["annotations"]["runbook_url"], runbook_url, "{a}");
    }

    // 2. The runbook's queries, in order, for each job the alert names.
    let diagnose = section(&runbook, "Diagnose, in order");
    let steps: Vec<Vec<String>> = code_blocks(diagnose, "promql")
        .iter()
        .map(|b| queries(b))
        .collect();
    assert!(steps.len() >= 4, "{steps:#?}");
    let mut named_routes = BTreeSet::new();
    let mut named_methods = BTreeSet::new();
    for (job, protocol) in &jobs {
        for (n, step) in steps.iter().enumerate() {
            for q in step {
                assert!(q.contains(r#"job="shop""#), "{q}");
                let q = q.replace(r#"job="shop""#, &format!(r#"job="{job}""#));
                let result = stack.prom.query(&q);
                for s in result.as_array().unwrap() {
                    let m = &s["metric"];
                    if let Some(route) = m["http_route"].as_str() {
                        named_routes.insert((job.clone(), route.to_string()));
                    }
                    if let Some(method) = m["rpc_method"].as_str() {
                        named_methods.insert((
                            job.clone(),
                            method.to_string(),
                            m["rpc_response_status_code"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                        ));
                    }
                }
                if n == 0 {
                    // Step 1: how bad — the error ratio is far above the budget.
                    let ratio = result
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|s| s["metric"]["protocol"] == protocol.as_str())
                        .unwrap_or_else(|| panic!("{q}: {result}"));
                    let v: f64 = ratio["value"][1].as_str().unwrap().parse().unwrap();
                    assert!(v > 14.4 * 0.001, "{q}: {v}");
                }
            }
        }
    }
    assert_eq!(
        named_routes,
        [("gateway".to_string(), "/orders/{id}".to_string())].into(),
        "the runbook's queries name the failing route, and only it"
    );
    assert!(
        named_methods.contains(&(
            "backend".to_string(),
            "shop.Orders/GetOrder".to_string(),
            "INTERNAL".to_string()
        )),
        "the runbook's queries name the failing method: {named_methods:?}"
    );
    assert!(
        named_methods.contains(&(
            "gateway".to_string(),
            "shop.Orders/GetOrder".to_string(),
            "INTERNAL".to_string()
        )),
        "the gateway's dependency step points at the backend's method: {named_methods:?}"
    );
    assert!(
        named_methods
            .iter()
            .all(|(_, m, code)| m == "shop.Orders/GetOrder" || code == "OK"),
        "nothing else is named failing: {named_methods:?}"
    );
    drop(traffic);

    // 3. One failing request, end to end, the runbook's way: its exemplar query ...
    let trace_section = section(&runbook, "Find one trace, then its logs");
    let sh = code_blocks(trace_section, "sh").join("\n");
    let exemplar_query = sh
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("--data-urlencode 'query=")
                .and_then(|q| q.strip_suffix("' \\"))
        })
        .expect("the runbook's exemplar query")
        .replace(r#"job="shop""#, r#"job="gateway""#);
    let data = stack.prom.query_exemplars(&exemplar_query);
    let exemplar = data
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .last()
        .unwrap_or_else(|| panic!("no exemplar for {exemplar_query}: {data}"));
    let trace_id = exemplar["labels"]["trace_id"].as_str().unwrap().to_string();

    // ... the trace at the receiver: the backend's span failed ...
    let deadline = Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace: Vec<Value> = stack
            .receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .collect();
        let has_backend = trace
            .iter()
            .any(|s| s["resource"]["service.name"] == "tour-backend");
        if has_backend || Instant::now() > deadline {
            break trace;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let failed = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "tour-backend" && s["kind"] == "server")
        .unwrap_or_else(|| panic!("no backend span in trace {trace_id}: {trace:#?}"));
    assert_eq!(failed["status"]["code"], "error", "{failed}");
    assert!(
        failed["name"].as_str().unwrap().contains("GetOrder"),
        "{failed}"
    );

    // ... and its log lines, with the runbook's jq filter.
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
    let filter = filter.replace(&example_id, &trace_id);
    std::thread::sleep(Duration::from_millis(300));
    let Some(out) = jq(&["-c", "-R", &filter], stack.tour.log_path()) else {
        return;
    };
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let services: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l["service.name"].as_str())
        .collect();
    assert_eq!(
        services,
        ["tour-backend", "tour-gateway"].into(),
        "the failing request's lines from both services ({trace_id}):\n{out}"
    );
    assert!(
        out.contains("order store unavailable"),
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
    for s in budget.as_array().unwrap() {
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
