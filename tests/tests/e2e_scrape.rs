//! Issue #8, scenario 1: a real Prometheus (exemplar storage on, the deploy kit's rules loaded)
//! scrapes the tour services in both exposition formats; what PromQL says matches the requests
//! the test sent; `promtool check metrics` is clean; every metric the operations kit reads
//! exists in the live output; every dashboard query returns data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use observe_tests::backend;
use observe_tests::prometheus::{promtool_check_metrics, Prometheus, ScrapeJob};
use observe_tests::services::{
    deploy_rules, http_request, set_durations, TextRelay, TourOptions, TourServices,
};
use serde_json::Value;

/// The semconv bucket bounds observe's duration histograms use.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The tour's services, from this crate's own `tour-service` binary (built for every test).
fn start_tour(options: TourOptions) -> TourServices {
    TourServices::start(env!("CARGO_BIN_EXE_tour-service"), options)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The upper bound of the bucket an observation of `secs` falls in.
fn bucket_upper(secs: f64) -> f64 {
    BOUNDS
        .iter()
        .copied()
        .find(|b| secs <= *b)
        .unwrap_or(f64::INFINITY)
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

/// `{label value -> value}` of a result grouped by one label.
fn by_label(result: &Value, label: &str) -> BTreeMap<String, f64> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_string(),
                value(s),
            )
        })
        .collect()
}

/// The body of `GET /metrics` with the given `Accept`.
fn scrape(addr: std::net::SocketAddr, accept: &str) -> String {
    let (status, _, body) = http_request(addr, "GET", "/metrics", &[("Accept", accept)], "")
        .unwrap_or_else(|e| panic!("scrape {addr}: {e}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// What the test sends through the gateway, by (method, route, status): request count.
struct Sent {
    counts: BTreeMap<(String, String, u16), u64>,
    max_latency: BTreeMap<String, f64>,
}

impl Sent {
    fn new() -> Self {
        Sent {
            counts: BTreeMap::new(),
            max_latency: BTreeMap::new(),
        }
    }

    fn one(&mut self, tour: &TourServices, method: &str, path: &str, route: &str, want: u16) {
        let body = match (method, want) {
            ("POST", 201) => Some(r#"{"sku":"sku-1","quantity":2}"#),
            ("POST", _) => Some(r#"{"sku":"sku-2","quantity":9}"#),
            _ => None,
        };
        let (status, text, latency) = tour.send(method, path, body);
        assert_eq!(
            status,
            want,
            "{method} {path}: {text}\nstderr:\n{}",
            tour.stderr()
        );
        *self
            .counts
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let max = self.max_latency.entry(route.to_string()).or_default();
        *max = max.max(latency.as_secs_f64());
    }

    fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// One request of every kind, so every series exists (and is scraped) before the load.
    fn warm_up(&mut self, tour: &TourServices) {
        self.one(tour, "GET", "/orders/1", "/orders/{id}", 200);
        self.one(tour, "GET", "/orders/20", "/orders/{id}", 404);
        self.one(tour, "GET", "/fail", "/fail", 500);
        self.one(tour, "GET", "/slow", "/slow", 200);
        self.one(tour, "POST", "/orders", "/orders", 201);
        self.one(tour, "POST", "/orders", "/orders", 409);
    }

    fn load(&mut self, tour: &TourServices) {
        for id in 2..=12 {
            self.one(tour, "GET", &format!("/orders/{id}"), "/orders/{id}", 200);
        }
        self.one(tour, "GET", "/orders/40", "/orders/{id}", 404);
        for _ in 0..4 {
            self.one(tour, "GET", "/fail", "/fail", 500);
        }
        for _ in 0..2 {
            self.one(tour, "GET", "/slow", "/slow", 200);
        }
        for _ in 0..2 {
            self.one(tour, "POST", "/orders", "/orders", 201);
        }
        self.one(tour, "POST", "/orders", "/orders", 409);
    }
}

/// Waits until Prometheus has scraped `total` routed requests from `job`.
fn wait_for_total(prom: &Prometheus, job: &str, total: u64) {
    let q = format!(
        r#"sum(http_server_request_duration_seconds_count{{job="{job}", http_route!=""}})"#
    );
    let r = prom.wait_for(&q, Duration::from_secs(30), |r| {
        r.as_array()
            .and_then(|a| a.first())
            .is_some_and(|s| value(s) == total as f64)
    });
    assert_eq!(
        r[0]["value"][1],
        total.to_string(),
        "{job}: {r}\ntargets: {}",
        prom.targets()
    );
}

/// Metric names the deploy kit reads from services (`observe` and `tour` in metrics-used.txt).
fn kit_metric_names() -> Vec<String> {
    let text = std::fs::read_to_string(backend::repo_root().join("deploy/metrics-used.txt"))
        .expect("deploy/metrics-used.txt");
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, source) = (parts.next()?, parts.next()?);
            matches!(source, "observe" | "tour").then(|| name.to_string())
        })
        .collect()
}

/// Every panel query of every dashboard: `(dashboard file, panel title, expr)`.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let dir = backend::repo_root().join("deploy/grafana/dashboards");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        fn walk(v: &Value, file: &str, out: &mut Vec<(String, String, String)>) {
            if let Some(panels) = v.get("panels").and_then(Value::as_array) {
                for p in panels {
                    let title = p["title"].as_str().unwrap_or("").to_string();
                    for t in p
                        .get("targets")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                            out.push((file.to_string(), title.clone(), expr.to_string()));
                        }
                    }
                    walk(p, file, out);
                }
            }
        }
        walk(&v, &name, &mut out);
    }
    out
}

/// Queries that select a failure state a healthy run must not have (a target down, an alert
/// firing) or a failure no tour service can produce (a dependency answering 5xx). They are
/// proved valid PromQL by tests/tests/deploy_kit.rs; the drill (tests/tests/drill.rs) sees
/// the alerts one fire.
fn selects_failure_state(expr: &str) -> bool {
    expr.contains("up{job=~\"$service\"} == 0")
        || expr.contains("ALERTS{alertstate=\"firing\"")
        || (expr.contains("http_client_request_duration_seconds_count")
            && expr.contains("http_response_status_code=~\"5..\""))
}

#[test]
fn prometheus_scrapes_the_tour_and_promql_matches_what_was_sent() {
    let mut tour = start_tour(TourOptions::default());
    let targets = tour.metrics_targets();
    let services: Vec<String> = targets.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        services.iter().cloned().collect::<BTreeSet<_>>(),
        ["backend", "dependency", "gateway"]
            .map(String::from)
            .into(),
        "{}",
        tour.announcement()
    );
    // One job per service scraped directly (OpenMetrics: exemplar storage makes Prometheus ask
    // for it), and one per service through a relay asking for the Prometheus text format.
    let relays: Vec<_> = targets.iter().map(|(_, a)| TextRelay::start(*a)).collect();
    let mut jobs: Vec<ScrapeJob> = targets.iter().map(|(s, a)| ScrapeJob::new(s, a)).collect();
    for ((s, _), relay) in targets.iter().zip(&relays) {
        jobs.push(ScrapeJob::new(format!("{s}-text"), relay.addr()));
    }
    // The kit's rules as shipped, except the 30-day group's 5-minute interval (it would not
    // evaluate within the test).
    let rules = deploy_rules(|t| set_durations(t, "interval", "1s"));
    let Some(prom) = Prometheus::builder().jobs(jobs).rule_files(rules).start() else {
        return;
    };

    let mut sent = Sent::new();
    sent.warm_up(&tour);
    for job in ["gateway", "gateway-text"] {
        wait_for_total(&prom, job, sent.total());
    }
    sent.load(&tour);
    let total = sent.total();

    // The live output: clean for promtool, and every metric the kit reads is there.
    let mut all_text = String::new();
    for (service, addr) in &targets {
        let text = scrape(*addr, "text/plain;version=0.0.4");
        if let Some(result) = promtool_check_metrics(text.as_bytes()) {
            result.unwrap_or_else(|e| panic!("{service}: {e}\n{text}"));
        } else {
            return;
        }
        let om = scrape(*addr, "application/openmetrics-text;version=1.0.0");
        assert!(om.trim_end().ends_with("# EOF"), "{service}: {om}");
        all_text.push_str(&text);
    }
    let exposed: BTreeSet<&str> = all_text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<_> = kit_metric_names()
        .into_iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();

    // Prometheus has scraped everything the test sent (both formats).
    for job in ["gateway", "gateway-text"] {
        wait_for_total(&prom, job, total);
    }

    // `up` is 1 for every target, and every target parsed cleanly.
    let up = prom.wait_for("up", Duration::from_secs(20), |r| {
        r.as_array().is_some_and(|a| a.len() == 6)
    });
    assert_eq!(up.as_array().unwrap().len(), 6, "{up}");
    for s in up.as_array().unwrap() {
        assert_eq!(value(s), 1.0, "{s}");
    }
    for t in prom.targets().as_array().unwrap() {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["lastError"], "", "{t}");
    }

    for job in ["gateway", "gateway-text"] {
        // Counts per route and status: exactly what was sent.
        let r = prom.query(&format!(
            r#"sum by (http_request_method, http_route, http_response_status_code) (http_server_request_duration_seconds_count{{job="{job}"}})"#
        ));
        let got: BTreeMap<(String, String, u16), u64> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let m = &s["metric"];
                (
                    (
                        m["http_request_method"].as_str().unwrap().to_string(),
                        m["http_route"].as_str().unwrap_or("").to_string(),
                        m["http_response_status_code"]
                            .as_str()
                            .unwrap()
                            .parse()
                            .unwrap(),
                    ),
                    value(s) as u64,
                )
            })
            .collect();
        assert_eq!(got, sent.counts, "{job}");

        // Request rates per route: every route that was sent to is moving.
        let rates = by_label(
            &prom.query(&format!(
                r#"sum by (http_route) (rate(http_server_request_duration_seconds_count{{job="{job}"}}[1m]))"#
            )),
            "http_route",
        );
        for route in sent.max_latency.keys() {
            assert!(
                rates.get(route).is_some_and(|r| *r > 0.0),
                "{job} {route}: {rates:?}"
            );
        }

        // Error ratio per route (5xx over all): /fail always fails, nothing else does.
        let ratios = by_label(
            &prom.query(&format!(
                r#"sum by (http_route) (http_server_request_duration_seconds_count{{job="{job}", http_response_status_code=~"5.."}}) / sum by (http_route) (http_server_request_duration_seconds_count{{job="{job}"}}) or 0 * sum by (http_route) (http_server_request_duration_seconds_count{{job="{job}"}})"#
            )),
            "http_route",
        );
        let expected: BTreeMap<String, f64> = sent
            .max_latency
            .keys()
            .map(|r| (r.clone(), if r == "/fail" { 1.0 } else { 0.0 }))
            .collect();
        assert_eq!(ratios, expected, "{job}");

        // p99 per route, within bucket resolution: never above the bucket of the slowest
        // latency the client saw (the server's is shorter), and /slow — whose dependency
        // sleeps 250 ms — in a bucket above 0.25 s.
        let p99 = by_label(
            &prom.query(&format!(
                r#"histogram_quantile(0.99, sum by (http_route, le) (http_server_request_duration_seconds_bucket{{job="{job}"}}))"#
            )),
            "http_route",
        );
        for (route, max) in &sent.max_latency {
            let q = p99[route];
            assert!(
                q <= bucket_upper(*max),
                "{job} {route}: p99 {q} > bucket of {max}"
            );
        }
        assert!(p99["/slow"] > 0.25, "{job}: {p99:?}");
    }

    // The backend and the dependency saw the calls the gateway made, per method and status.
    // (Each target is scraped on its own schedule: wait for the backend's last calls too;
    // every gateway request makes exactly one backend call.)
    let rpc = prom.wait_for(
        r#"sum by (rpc_method, rpc_response_status_code) (rpc_server_call_duration_seconds_count{job="backend"})"#,
        Duration::from_secs(30),
        |r| r.as_array().is_some_and(|a| a.iter().map(value).sum::<f64>() == total as f64),
    );
    let rpc: BTreeMap<(String, String), f64> = rpc
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                (
                    s["metric"]["rpc_method"].as_str().unwrap().to_string(),
                    s["metric"]["rpc_response_status_code"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                value(s),
            )
        })
        .collect();
    let want: BTreeMap<(String, String), f64> = [
        (("shop.Orders/GetOrder", "OK"), 15.0),
        (("shop.Orders/GetOrder", "NOT_FOUND"), 2.0),
        (("shop.Orders/GetOrder", "INTERNAL"), 5.0),
        (("shop.Orders/PlaceOrder", "OK"), 3.0),
        (("shop.Orders/PlaceOrder", "FAILED_PRECONDITION"), 2.0),
    ]
    .into_iter()
    .map(|((m, c), v)| ((m.to_string(), c.to_string()), v))
    .collect();
    assert_eq!(rpc, want);
    let placed = by_label(
        &prom.query(r#"sum by (outcome) (orders_placed_total{job="backend"})"#),
        "outcome",
    );
    assert_eq!(placed.get("success"), Some(&3.0), "{placed:?}");
    assert_eq!(placed.get("rejected"), Some(&2.0), "{placed:?}");

    // Every dashboard query returns data for some service (and route) of the tour.
    // (The recording rules first: one 30-day budget series per job, six jobs.)
    let budget = prom.wait_for(
        "job:observe_server_error_budget_remaining:ratio_30d",
        Duration::from_secs(30),
        |r| r.as_array().is_some_and(|a| a.len() == 6),
    );
    assert_eq!(budget.as_array().map(Vec::len), Some(6), "{budget}");
    let routes_of = |service: &str| -> Vec<String> {
        by_label(
            &prom.query(&format!(
                r#"count by (http_route) (http_server_request_duration_seconds_count{{job="{service}"}})"#
            )),
            "http_route",
        )
        .into_keys()
        .collect()
    };
    let mut empty = Vec::new();
    let mut checked = 0;
    for (file, title, expr) in dashboard_queries() {
        if selects_failure_state(&expr) {
            continue;
        }
        checked += 1;
        let has_data = services.iter().any(|service| {
            let routes = if expr.contains("$route") {
                routes_of(service)
            } else {
                vec![String::new()]
            };
            routes.iter().any(|route| {
                let q = expr
                    .replace("$__rate_interval", "1m")
                    .replace("${service}", service)
                    .replace("$service", service)
                    .replace("${route}", route)
                    .replace("$route", route)
                    .replace("${instance}", ".+")
                    .replace("$instance", ".+");
                prom.query(&q).as_array().is_some_and(|a| !a.is_empty())
            })
        });
        if !has_data {
            empty.push(format!("{file} / {title}: {expr}"));
        }
    }
    assert!(checked > 40, "only {checked} dashboard queries found");
    assert!(
        missing.is_empty() && empty.is_empty(),
        "metrics the deploy kit reads but no tour service exposes: {missing:?}\n\
         dashboard queries with no data:\n{}",
        empty.join("\n")
    );

    tour.stop();
}
