//! Issue #8, scenario 2: from a metric to its trace to its logs. An exemplar trace id read
//! from Prometheus (`/api/v1/query_exemplars`, as the runbooks do it) is a trace the OTLP
//! receiver holds, and the services' JSON log lines selected by that id with the real `jq`
//! are exactly that request's lines, from both services it went through.

use std::collections::BTreeSet;
use std::time::Duration;

use observe_tests::otlp::OtlpReceiver;
use observe_tests::prometheus::{Prometheus, ScrapeJob};
use observe_tests::services::{jq, TourOptions, TourServices};
use serde_json::Value;

/// The tour's services, from this crate's own `tour-service` binary (built for every test).
fn start_tour(options: TourOptions) -> TourServices {
    TourServices::start(env!("CARGO_BIN_EXE_tour-service"), options)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_exemplar_leads_to_its_trace_and_to_exactly_its_log_lines() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let mut tour = start_tour(TourOptions {
        otlp_endpoint: Some(receiver.grpc_endpoint()),
        otlp_protocol: Some("grpc".into()),
        ..Default::default()
    });
    let jobs = tour
        .metrics_targets()
        .into_iter()
        .map(|(s, a)| ScrapeJob::new(s, a));
    let Some(prom) = Prometheus::builder().jobs(jobs).start() else {
        return;
    };

    // Failing requests among good ones; each answer names its trace id.
    let mut failed_traces = BTreeSet::new();
    for round in 0..3 {
        for id in 1..=3 {
            let (status, body, _) = tour.send("GET", &format!("/orders/{}", round * 3 + id), None);
            assert_eq!(status, 200, "{body}");
        }
        let (status, body, _) = tour.send("GET", "/fail", None);
        assert_eq!(status, 500, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        failed_traces.insert(v["trace_id"].as_str().unwrap().to_string());
    }

    // The runbook's exemplar query: a trace id on the 5xx buckets of the gateway.
    let query = r#"http_server_request_duration_seconds_bucket{job="gateway", http_response_status_code=~"5.."}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exemplars = loop {
        let data = prom.query_exemplars(query);
        let found: Vec<(Value, Value)> = data
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| {
                let labels = series["seriesLabels"].clone();
                series["exemplars"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| (labels.clone(), e))
            })
            .collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        !exemplars.is_empty(),
        "no exemplar on {query} after 30 s; targets: {}",
        prom.targets()
    );
    let (series, exemplar) = &exemplars[0];
    assert_eq!(series["http_route"], "/fail", "{series}");
    assert_eq!(series["http_response_status_code"], "500", "{series}");
    let trace_id = exemplar["labels"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id on {exemplar}"))
        .to_string();
    let span_id = exemplar["labels"]["span_id"].as_str().map(str::to_string);
    assert!(
        failed_traces.contains(&trace_id),
        "the exemplar {trace_id} is one of the failed requests {failed_traces:?}"
    );

    // The receiver holds that trace: the gateway's server span (the exemplar's span) that
    // answered 500, and the backend's span that failed.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let trace: Vec<Value> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .collect();
        let services: BTreeSet<&str> = trace
            .iter()
            .filter_map(|s| s["resource"]["service.name"].as_str())
            .collect();
        if services.contains("tour-gateway") && services.contains("tour-backend")
            || std::time::Instant::now() > deadline
        {
            break trace;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let gateway_server = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "tour-gateway" && s["kind"] == "server")
        .unwrap_or_else(|| panic!("no gateway server span for {trace_id}: {trace:#?}"));
    assert_eq!(
        gateway_server["attributes"]["http.response.status_code"],
        500
    );
    if let Some(span_id) = &span_id {
        assert_eq!(
            gateway_server["span_id"],
            span_id.as_str(),
            "the exemplar's span"
        );
    }
    let backend_server = trace
        .iter()
        .find(|s| s["resource"]["service.name"] == "tour-backend" && s["kind"] == "server")
        .unwrap_or_else(|| panic!("no backend server span for {trace_id}: {trace:#?}"));
    assert_eq!(
        backend_server["status"]["code"], "error",
        "{backend_server}"
    );

    // The logs of that request, as the runbook finds them: jq on the services' stdout.
    // One snapshot of the log, so jq and the plain-text count below read the same lines.
    std::thread::sleep(Duration::from_millis(500)); // let the last lines reach the file
    let all = tour.logs();
    let snapshot = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(snapshot.path(), &all).unwrap();
    let Some(selected) = jq(
        &[
            "-c",
            "-R",
            &format!(r#"fromjson? | select(.trace_id=="{trace_id}")"#),
        ],
        snapshot.path(),
    ) else {
        return;
    };
    let lines: Vec<Value> = selected
        .lines()
        .map(|l| serde_json::from_str(l).expect("jq prints JSON"))
        .collect();
    // Every line that mentions the id is selected (no line missed for not parsing), and
    // every selected line is that request's.
    let mentioning = all.lines().filter(|l| l.contains(&trace_id)).count();
    assert_eq!(lines.len(), mentioning, "selected:\n{selected}");
    let services: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l["service.name"].as_str())
        .collect();
    assert_eq!(
        services,
        ["tour-backend", "tour-gateway"].into(),
        "lines from both services it went through:\n{selected}"
    );
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str().or(l["message"].as_str()))
        .collect();
    for m in [
        "fetching an order that fails",
        "order store unavailable",
        "backend call failed",
    ] {
        assert_eq!(
            messages.iter().filter(|x| **x == m).count(),
            1,
            "exactly one {m:?} line (this request's, not the other failures'):\n{selected}"
        );
    }
    for l in &lines {
        assert_eq!(l["trace_id"], trace_id.as_str());
    }
    // The other failed requests' lines carry their own ids, never this one.
    for other in failed_traces.iter().filter(|t| **t != trace_id) {
        let n = jq(
            &[
                "-c",
                "-R",
                &format!(r#"fromjson? | select(.trace_id=="{other}")"#),
            ],
            tour.log_path(),
        )
        .unwrap_or_default();
        assert!(!n.is_empty(), "the other failure {other} has its own lines");
        assert!(!n.contains(&format!("\"{trace_id}\"")));
    }

    tour.stop();
}
