//! `OTEL_TRACES_EXPORTER=console` end to end: `init` in a child process (this test binary run
//! again, so the real stdout is what is checked) writes each finished sampled span as one
//! JSON line beside the JSON log lines, with the ids the log lines carry; unsampled spans
//! print nothing; `OTEL_LOGS_EXPORTER=console` keeps logs on stdout and off OTLP.

use std::process::Command;

use serde_json::Value;

/// Set in the child's environment: run the instrumented "service" instead of a check.
const CHILD: &str = "OBSERVE_TRACE_CONSOLE_CHILD";

/// The child's work: `init` from the environment, one user span with a child span, a log line
/// in each, then a clean shutdown. Does nothing when run as an ordinary test.
#[test]
fn console_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let guard = observe_core::init::init(
        observe_core::config::Config::default().service_name("console \"svc\""),
    )
    .expect("init");
    {
        let checkout =
            tracing::info_span!("checkout", order_id = 42_i64, password = "hunter2").entered();
        tracing::info!("checking out");
        {
            let _charge = tracing::info_span!("charge\n\"card\"").entered();
            tracing::info!("charging");
        }
        drop(checkout);
    }
    let report = guard
        .shutdown(std::time::Duration::from_secs(10))
        .expect("clean shutdown");
    // What the parent checks besides the lines: every span written, no export errors (no
    // OTLP log exporter was built for the dead endpoint).
    println!(
        "{{\"child_report\":true,\"spans_exported\":{},\"export_errors\":{}}}",
        report.spans_exported,
        observe_core::counters::EXPORT_ERRORS.get()
    );
}

/// Runs [`console_child`] in a fresh process with only `env` set; returns its JSON lines.
fn run_child(env: &[(&str, &str)]) -> Vec<Value> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "console_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest's own output is not JSON, and its "test console_child ... " has no newline, so
    // the child's first line follows it; from the first `{` on, every line must be JSON.
    stdout
        .lines()
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stdout}")))
        .collect()
}

fn find<'a>(lines: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| pred(l)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} in {lines:#?}");
    found[0]
}

#[test]
fn sampled_spans_are_json_lines_on_stdout_with_the_ids_of_the_logs() {
    let lines = run_child(&[
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_LOGS_EXPORTER", "console"),
        // Neither signal may try this (dead) endpoint: console needs none.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
    ]);
    let spans: Vec<&Value> = lines.iter().filter(|l| l["signal"] == "span").collect();
    assert_eq!(spans.len(), 2, "{lines:#?}");
    let checkout = find(&lines, "checkout span", |l| l["name"] == "checkout");
    let charge = find(&lines, "charge span", |l| l["name"] == "charge\n\"card\"");
    let log_checkout = find(&lines, "log line", |l| l["message"] == "checking out");
    let log_charge = find(&lines, "log line", |l| l["message"] == "charging");

    // The ids: the span's own, its parent, and the ones its log lines carry.
    let hex = |v: &Value, n: usize| {
        let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
        assert!(
            s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()),
            "{s}"
        );
        s.to_owned()
    };
    let trace_id = hex(&checkout["trace_id"], 32);
    assert_ne!(trace_id, "0".repeat(32));
    assert_eq!(checkout["parent_span_id"], Value::Null, "a root");
    assert_eq!(hex(&charge["trace_id"], 32), trace_id);
    assert_eq!(
        hex(&charge["parent_span_id"], 16),
        hex(&checkout["span_id"], 16)
    );
    assert_ne!(charge["span_id"], checkout["span_id"]);
    assert_eq!(log_checkout["trace_id"], checkout["trace_id"]);
    assert_eq!(log_checkout["span_id"], checkout["span_id"]);
    assert_eq!(log_charge["span_id"], charge["span_id"]);

    // The rest of the line.
    for span in [checkout, charge] {
        assert_eq!(span["kind"], "internal");
        assert_eq!(span["service.name"], "console \"svc\"");
        assert_eq!(span["status"]["code"], "unset");
        let (start, end) = (
            span["start_time"].as_str().unwrap(),
            span["end_time"].as_str().unwrap(),
        );
        assert!(
            start.ends_with('Z') && start.len() == 27 && start <= end,
            "{span}"
        );
        assert!(span["duration_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(checkout["attributes"]["order_id"], 42);
    assert_eq!(
        checkout["attributes"]["password"], "[REDACTED]",
        "redaction applies to console spans as to exported ones"
    );
    assert!(!lines.iter().any(|l| l.to_string().contains("hunter2")));

    let report = find(&lines, "child report", |l| l["child_report"] == true);
    assert_eq!(report["spans_exported"], 2);
    assert_eq!(
        report["export_errors"], 0,
        "nothing tried the OTLP endpoint"
    );
}

#[test]
fn unsampled_spans_print_nothing() {
    let lines = run_child(&[
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
    ]);
    assert!(lines.iter().all(|l| l["signal"] != "span"), "{lines:#?}");
    // The logs are there, so the child did run.
    find(&lines, "log line", |l| l["message"] == "charging");
    let report = find(&lines, "child report", |l| l["child_report"] == true);
    assert_eq!(report["spans_exported"], 0);
}

#[test]
fn without_console_no_span_lines() {
    // The default exporter is OTLP, and with no endpoint nothing is exported: stdout has the
    // logs only. (The control for the two tests above.)
    let lines = run_child(&[]);
    assert!(lines.iter().all(|l| l["signal"] != "span"), "{lines:#?}");
    find(&lines, "log line", |l| l["message"] == "checking out");
}
