//! The operations kit in `deploy/` checked with the real tools: promtool checks and unit-tests
//! every rule, amtool checks the Alertmanager routing, every alert has its runbook, every
//! dashboard query is valid PromQL, and every metric the kit reads is listed in
//! `deploy/metrics-used.txt` with one of the agreed names (docs/DESIGN.md, "Metric names").
//!
//! YAML is read with promtool/amtool (the authorities) plus simple line scanning for the few
//! facts the tools do not check (runbook files, the metric list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use observe_tests::backend::{find_binary, missing, repo_root};
use serde_json::Value;

const HOW_TO_GET: &str = "apt-get install -y prometheus prometheus-alertmanager";

/// The metric families the kit may read: exactly the names observe and Prometheus produce.
const KNOWN_FAMILIES: &[&str] = &[
    "http_server_request_duration_seconds",
    "http_server_active_requests",
    "http_client_request_duration_seconds",
    "rpc_server_call_duration_seconds",
    "rpc_client_call_duration_seconds",
    "target_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "observe_spans_dropped_total",
    "observe_log_records_dropped_total",
    "observe_metric_overflow_total",
    "observe_export_errors_total",
    "observe_propagation_invalid_headers_total",
    "orders_placed_total",
    "up",
    "ALERTS",
];

/// Label names the kit may use (semconv names as the exporter writes them, plus Prometheus'
/// own and the ones the recording rules add).
const KNOWN_LABELS: &[&str] = &[
    "job",
    "instance",
    "le",
    "http_request_method",
    "url_scheme",
    "http_route",
    "http_response_status_code",
    "error_type",
    "server_address",
    "rpc_system_name",
    "rpc_method",
    "rpc_response_status_code",
    "service_name",
    "service_version",
    "deployment_environment_name",
    "service_instance_id",
    "otel_metric_overflow",
    "outcome",
    "protocol",
    "quantile",
    "alertname",
    "alertstate",
    "severity",
    "__name__",
];

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} files in {}", dir.display());
    files
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn rule_files() -> Vec<PathBuf> {
    files_in(&deploy().join("prometheus/rules"), "yml")
}

/// Runs a tool and returns its combined output, failing the test with that output on a
/// non-zero exit.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn promtool() -> Option<PathBuf> {
    let p = find_binary("promtool");
    if p.is_none() {
        missing("promtool", HOW_TO_GET);
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Line scanning of the rule files.

/// One rule of a rule file: `record:` or `alert:` name, its expression, labels and annotations.
#[derive(Debug, Default)]
struct Rule {
    name: String,
    alert: bool,
    expr: String,
    fields: BTreeMap<String, String>,
}

/// Reads the rules of a Prometheus rule file written in the block style this kit uses
/// (`- record:`/`- alert:` items, `expr:` inline or as a `|` block, `key: value` fields below).
fn parse_rules(text: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(name) = t
            .strip_prefix("- record: ")
            .map(|n| (n, false))
            .or_else(|| t.strip_prefix("- alert: ").map(|n| (n, true)))
        {
            rules.push(Rule {
                name: name.0.trim().to_string(),
                alert: name.1,
                ..Rule::default()
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            if e == "|" {
                let mut block = String::new();
                while let Some(next) = lines.peek() {
                    let nt = next.trim_start();
                    if !nt.is_empty() && next.len() - nt.len() <= indent {
                        break;
                    }
                    block.push_str(nt);
                    block.push('\n');
                    lines.next();
                }
                rule.expr = block;
            } else {
                rule.expr = e.to_string();
            }
        } else if let Some((k, v)) = t.split_once(": ") {
            if !k.starts_with('#') && !k.starts_with('-') {
                rule.fields
                    .insert(k.to_string(), v.trim().trim_matches('"').to_string());
            }
        }
    }
    rules
}

fn all_rules() -> Vec<Rule> {
    rule_files()
        .iter()
        .flat_map(|f| parse_rules(&read(f)))
        .collect()
}

fn alerts() -> Vec<Rule> {
    let a: Vec<Rule> = all_rules().into_iter().filter(|r| r.alert).collect();
    assert!(
        a.len() >= 10,
        "expected the kit's alerts, found {}",
        a.len()
    );
    a
}

// ---------------------------------------------------------------------------------------------
// A small PromQL scanner: metric names and label names used by an expression.

const PROMQL_KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
];

#[derive(Debug, Default)]
struct Names {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

fn scan_promql(expr: &str, names: &mut Names) {
    let b = expr.as_bytes();
    let mut i = 0;
    let mut brace = 0usize; // inside a {label matcher} list
    let mut label_list = false; // inside by (...) / on (...) / group_left (...)
    let mut expect_label_list = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'{' => {
                brace += 1;
                i += 1;
            }
            b'}' => {
                brace = brace.saturating_sub(1);
                i += 1;
            }
            b'(' => {
                label_list = expect_label_list;
                expect_label_list = false;
                i += 1;
            }
            b')' => {
                label_list = false;
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().as_bytes().first().copied();
                if brace > 0 || label_list {
                    names.labels.insert(word.to_string());
                } else if matches!(
                    word,
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    expect_label_list = true;
                } else if PROMQL_KEYWORDS.contains(&word) || next == Some(b'(') {
                    // an operator, aggregation or function
                } else {
                    names.metrics.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboards.

fn dashboards() -> Vec<(PathBuf, Value)> {
    files_in(&deploy().join("grafana/dashboards"), "json")
        .into_iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&read(&p))
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// Every PromQL expression of a dashboard (panel targets, annotation queries, and the series
/// selectors inside `label_values(...)` variable queries), with where it came from.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((format!("panel {:?}", p["title"]), e.to_string()));
            }
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push((format!("annotation {:?}", a["name"]), e.to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel.to_string())
            .unwrap_or_else(|| panic!("variable {:?}: unexpected query {q:?}", v["name"]));
        out.push((format!("variable {:?}", v["name"]), inner));
    }
    out
}

/// Grafana's variables replaced by concrete values, so the expression is plain PromQL.
fn substitute_grafana_vars(expr: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let mut out = String::new();
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
            out.push('x');
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn rule_files_pass_promtool_check_rules() {
    let Some(promtool) = promtool() else { return };
    let out = run_ok(
        Command::new(promtool)
            .arg("check")
            .arg("rules")
            .args(rule_files()),
    );
    assert_eq!(out.matches("SUCCESS").count(), rule_files().len(), "{out}");
}

#[test]
fn every_alert_is_unit_tested_firing_and_silent_by_promtool() {
    let Some(promtool) = promtool() else { return };
    let tests = files_in(&deploy().join("prometheus/tests"), "yml");
    run_ok(
        Command::new(promtool)
            .current_dir(deploy().join("prometheus/tests"))
            .arg("test")
            .arg("rules")
            .args(tests.iter().map(|p| p.file_name().unwrap())),
    );

    // What the unit tests cover, read from their `alertname:` / `exp_alerts:` pairs.
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let mut all_text = String::new();
    for f in &tests {
        let text = read(f);
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(name) = line.trim_start().strip_prefix("alertname: ") {
                let next = lines.peek().map(|l| l.trim()).unwrap_or("");
                assert!(
                    next.starts_with("exp_alerts:"),
                    "{}: after {line:?}",
                    f.display()
                );
                if next == "exp_alerts: []" {
                    silent.insert(name.trim().to_string());
                } else {
                    fires.insert(name.trim().to_string());
                }
            }
        }
        all_text.push_str(&text);
    }
    for a in alerts() {
        assert!(
            fires.contains(&a.name),
            "no unit test makes {} fire",
            a.name
        );
        assert!(
            silent.contains(&a.name),
            "no unit test keeps {} silent",
            a.name
        );
        let url = &a.fields["runbook_url"];
        assert!(
            all_text.contains(&format!("runbook_url: {url}")),
            "the unit tests never expect {}'s runbook_url {url}",
            a.name
        );
    }
}

#[test]
fn every_alert_has_severity_annotations_and_its_runbook() {
    let alerts = alerts();
    let mut bases = BTreeSet::new();
    let runbooks = deploy().join("runbooks");
    for a in &alerts {
        let sev = a.fields.get("severity").map(String::as_str);
        assert!(
            matches!(sev, Some("page" | "ticket")),
            "{}: severity {sev:?}",
            a.name
        );
        for k in ["summary", "description", "runbook_url"] {
            assert!(
                a.fields.get(k).is_some_and(|v| !v.is_empty()),
                "{}: no {k} annotation",
                a.name
            );
        }
        let url = &a.fields["runbook_url"];
        let (base, file) = url.rsplit_once('/').expect("runbook_url has a path");
        assert_eq!(
            file,
            format!("{}.md", a.name),
            "{}: runbook_url {url}",
            a.name
        );
        bases.insert(base.to_string());

        let rb = runbooks.join(file);
        assert!(rb.is_file(), "{}: no runbook {}", a.name, rb.display());
        let text = read(&rb);
        assert!(
            text.starts_with(&format!("# {}\n", a.name)),
            "{} does not name its alert",
            rb.display()
        );
        for needle in [
            "```promql",
            "/api/v1/query_exemplars",
            "trace_id",
            "jq ",
            "## Diagnose",
            "## Usual causes",
            "## Mitigate",
        ] {
            assert!(text.contains(needle), "{} lacks {needle:?}", rb.display());
        }
        let mut names = Names::default();
        for block in text.split("```promql").skip(1) {
            let block = block.split("```").next().unwrap_or("");
            scan_promql(block, &mut names);
        }
        assert!(
            !names.metrics.is_empty(),
            "{} has no PromQL with a metric",
            rb.display()
        );
    }
    assert_eq!(
        bases.len(),
        1,
        "all runbook_urls share one base URL: {bases:?}"
    );
    // ... and no runbook without an alert.
    let names: BTreeSet<String> = alerts.iter().map(|a| format!("{}.md", a.name)).collect();
    for f in files_in(&runbooks, "md") {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(names.contains(&n), "runbook {n} has no alert");
    }
}

#[test]
fn alertmanager_config_is_valid_and_routes_page_and_ticket_apart() {
    let Some(amtool) = find_binary("amtool") else {
        missing("amtool", HOW_TO_GET);
        return;
    };
    let config = deploy().join("alertmanager/alertmanager.yml");
    let out = run_ok(Command::new(&amtool).arg("check-config").arg(&config));
    assert!(out.contains("SUCCESS"), "{out}");
    let route = |receiver: &str, labels: &[String]| {
        run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--verify.receivers={receiver}"))
                .args(labels),
        )
    };
    // Every alert reaches the receiver named after its severity.
    for a in alerts() {
        let sev = &a.fields["severity"];
        route(
            sev,
            &[
                format!("alertname={}", a.name),
                format!("severity={sev}"),
                "job=shop".into(),
            ],
        );
    }
    // A wrong expectation is caught (the check above can fail).
    let wrong = Command::new(&amtool)
        .args(["config", "routes", "test"])
        .arg(format!("--config.file={}", config.display()))
        .arg("--verify.receivers=ticket")
        .arg("severity=page")
        .output()
        .expect("run amtool");
    assert!(
        !wrong.status.success(),
        "severity=page must not route to ticket"
    );
}

#[test]
fn dashboards_parse_with_datasource_variable_and_unique_panel_ids() {
    let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let mut uids = BTreeSet::new();
    let mut exemplar_heatmaps = 0;
    for (path, d) in dashboards() {
        let name = path.display();
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_string()),
            "{name}: duplicate uid"
        );
        assert!(
            d["schemaVersion"].as_u64().unwrap_or(0) >= 36,
            "{name}: schemaVersion"
        );
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let var = |n: &str| vars.iter().find(|v| v["name"] == n);
        let dsv = var("datasource").unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(dsv["type"], "datasource", "{name}");
        assert_eq!(dsv["query"], "prometheus", "{name}");
        let service = var("service").unwrap_or_else(|| panic!("{name}: no service variable"));
        assert!(
            service["query"]["query"]
                .as_str()
                .unwrap_or("")
                .contains("job)"),
            "{name}: service variable must list jobs"
        );

        // Every variable a query or link uses is defined (Grafana's own $__ ones aside).
        let defined: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        let text = d["panels"].to_string() + &d["annotations"].to_string();
        for used in text.split('$').skip(1) {
            let used = used.trim_start_matches('{');
            let var: String = used
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !var.starts_with("__") {
                assert!(
                    defined.contains(var.as_str()),
                    "{name}: ${var} is not a variable"
                );
            }
        }

        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: panel without id"));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"], ds,
                "{name}: panel {:?} datasource",
                p["title"]
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{name}: panel {:?} has no query",
                p["title"]
            );
            for t in targets {
                assert_eq!(t["datasource"], ds, "{name}: panel {:?} target", p["title"]);
            }
            if p["type"] == "heatmap" && targets.iter().all(|t| t["exemplar"] == true) {
                let links = p["fieldConfig"]["defaults"]["links"].to_string();
                assert!(
                    links.contains("trace_id"),
                    "{name}: heatmap link to the trace"
                );
                exemplar_heatmaps += 1;
            }
        }
    }
    assert_eq!(
        uids.len(),
        4,
        "four dashboards: health, service, resources, business"
    );
    assert!(
        exemplar_heatmaps >= 2,
        "HTTP and gRPC latency heatmaps with exemplars"
    );
    let provisioning =
        read(&deploy().join("grafana/provisioning/datasources/observe-prometheus.yml"));
    assert!(
        provisioning.contains("exemplarTraceIdDestinations")
            && provisioning.contains("name: trace_id")
    );
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let Some(promtool) = promtool() else { return };
    // promtool 2.42 cannot check a lone expression, so each becomes a recording rule.
    let mut file = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    let mut n = 0;
    for (path, d) in dashboards() {
        for (what, expr) in dashboard_exprs(&d) {
            let e = substitute_grafana_vars(&expr);
            assert!(
                !e.contains('$'),
                "{}: {what}: unreplaced variable",
                path.display()
            );
            n += 1;
            file.push_str(&format!(
                "      # {} {}\n      - record: dashboard_query_{n}\n        expr: {}\n",
                path.file_name().unwrap().to_string_lossy(),
                what.replace('\n', " "),
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    assert!(n > 50, "expected the dashboards' queries, found {n}");
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("dashboard-queries.yml");
    std::fs::write(&rules, &file).unwrap();
    let out = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}\n{file}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {n} rules found")));
}

#[test]
fn metrics_used_lists_exactly_the_metrics_of_dashboards_and_rules() {
    let mut listed = BTreeMap::new();
    for line in read(&deploy().join("metrics-used.txt")).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, source) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        assert!(
            matches!(source, "observe" | "tour" | "prometheus"),
            "{line:?}"
        );
        let family_ok = KNOWN_FAMILIES.iter().any(|f| {
            name == *f
                || ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| name == format!("{f}{s}"))
        });
        assert!(family_ok, "{name} is not one of the agreed metric names");
        assert!(
            listed
                .insert(name.to_string(), source.to_string())
                .is_none(),
            "{name} twice"
        );
    }

    let rules = all_rules();
    let recorded: BTreeSet<&str> = rules
        .iter()
        .filter(|r| !r.alert)
        .map(|r| r.name.as_str())
        .collect();
    let mut names = Names::default();
    for r in &rules {
        scan_promql(&r.expr, &mut names);
    }
    for (_, d) in dashboards() {
        for (_, e) in dashboard_exprs(&d) {
            scan_promql(&substitute_grafana_vars(&e), &mut names);
        }
    }
    // The scanner itself must see what is there (or this test proves nothing).
    assert!(names
        .metrics
        .contains("http_server_request_duration_seconds_bucket"));
    assert!(names.labels.contains("http_route") && names.labels.contains("le"));

    for m in &names.metrics {
        if m.contains(':') {
            assert!(
                recorded.contains(m.as_str()),
                "{m} is read but no rule records it"
            );
        } else {
            assert!(
                listed.contains_key(m),
                "{m} is used but not in deploy/metrics-used.txt"
            );
        }
    }
    for m in listed.keys() {
        assert!(
            names.metrics.contains(m),
            "{m} is listed in deploy/metrics-used.txt but unused"
        );
    }
    for l in &names.labels {
        assert!(
            KNOWN_LABELS.contains(&l.as_str()),
            "label {l} is not one of the agreed names"
        );
    }
}

#[test]
fn slo_targets_are_set_in_one_place() {
    let rules = all_rules();
    let targets: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.name.starts_with("observe:slo_"))
        .collect();
    let names: BTreeSet<&str> = targets.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "observe:slo_error_budget:ratio",
            "observe:slo_latency_budget:ratio",
            "observe:slo_latency_threshold:seconds"
        ])
    );
    assert_eq!(targets.len(), 3, "each target defined once");
    // The threshold's value and its `le` bucket must agree.
    let thr = targets
        .iter()
        .find(|r| r.name == "observe:slo_latency_threshold:seconds")
        .unwrap();
    let value = thr
        .expr
        .trim()
        .trim_start_matches("vector(")
        .trim_end_matches(')');
    let le = &thr.fields["le"];
    assert_eq!(
        value.parse::<f64>().unwrap(),
        le.parse::<f64>().unwrap(),
        "threshold vs le"
    );
    // No rule outside the targets file hard-codes a budget or a bucket.
    for f in rule_files() {
        if f.ends_with("observe-slo-targets.yml") {
            continue;
        }
        for r in parse_rules(&read(&f)) {
            assert!(
                !r.expr.contains("le=\""),
                "{}: {} hard-codes a bucket",
                f.display(),
                r.name
            );
            assert!(
                !r.expr.contains("0.001") && !r.expr.contains("0.999"),
                "{}: {} hard-codes a target",
                f.display(),
                r.name
            );
        }
    }
}

#[test]
fn promql_scanner_finds_metrics_and_labels() {
    let mut n = Names::default();
    scan_promql(
        r#"sum by (job, le) (rate(http_server_request_duration_seconds_bucket{job=~"a|b", http_route!="/x{y}"}[5m])) / on () group_left () observe:slo_error_budget:ratio > bool 14.4 * up"#,
        &mut n,
    );
    assert_eq!(
        n.metrics,
        BTreeSet::from([
            "http_server_request_duration_seconds_bucket".to_string(),
            "observe:slo_error_budget:ratio".to_string(),
            "up".to_string()
        ])
    );
    assert_eq!(
        n.labels,
        BTreeSet::from([
            "job".to_string(),
            "le".to_string(),
            "http_route".to_string()
        ])
    );
}
