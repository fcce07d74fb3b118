//! The tour, run for real: three service processes (`tour-service --role …`) on loopback, a
//! burst of requests, and the report read back from their logs, `/metrics` and span stores.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use observe_examples::tour::report::WaterfallSection;
use observe_examples::tour::{self, Fault, Role, TourReport};

const EXE: &str = env!("CARGO_BIN_EXE_tour-service");

fn run(fault: Fault) -> TourReport {
    // The children inherit this environment: keep a developer's collector settings out.
    for k in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
    ] {
        assert!(std::env::var_os(k).is_none(), "unset {k} to run this test");
    }
    tour::run(Path::new(EXE), fault).expect("the tour runs")
}

fn count_sent(r: &TourReport, route: &str, status: u16) -> usize {
    r.sent
        .iter()
        .filter(|s| s.route == route && s.status == status)
        .count()
}

/// Waits (bounded) until nothing accepts connections on `addr`.
fn closes(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_tour_reports_logs_red_and_one_trace_across_services() {
    let r = run(Fault::None);
    let gateway = r.service(Role::Gateway).unwrap().clone();
    let backend = r.service(Role::Backend).unwrap().clone();
    let dependency = r.service(Role::Dependency).unwrap().clone();

    // What the burst got back: the plan, answered as designed.
    assert_eq!(r.sent.len(), 100);
    assert_eq!(count_sent(&r, "/orders/{id}", 200), 57, "{:?}", r.sent);
    assert_eq!(count_sent(&r, "/orders/{id}", 404), 3);
    assert_eq!(count_sent(&r, "/orders", 201), 14);
    assert_eq!(count_sent(&r, "/orders", 409), 6);
    assert_eq!(count_sent(&r, "/slow", 200), 10);
    assert_eq!(count_sent(&r, "/fail", 500), 10);
    assert!(r
        .sent
        .iter()
        .all(|s| s.trace_id.as_ref().is_some_and(|t| t.len() == 32)));

    // RED read back from each service's /metrics matches what was sent, exactly.
    let red = |svc: &str, side: &str, op: &str| {
        r.red_of(svc, side, op)
            .unwrap_or_else(|| panic!("no RED row {svc} {side} {op}: {:#?}", r.red))
            .clone()
    };
    for (op, count, errors) in [
        ("GET /orders/{id}", 60, 0),
        ("POST /orders", 20, 0), // 409 is the client's problem, not an error
        ("GET /slow", 10, 0),
        ("GET /fail", 10, 10),
    ] {
        let row = red(&gateway.service, "server", op);
        assert_eq!((row.count, row.errors), (count, errors), "{row:?}");
        assert!(row.p50.unwrap() <= row.p99.unwrap(), "{row:?}");
    }
    // Every /slow waits for the slow stock lookup, so its median bucket is above it.
    assert!(
        red(&gateway.service, "server", "GET /slow").p50.unwrap()
            >= tour::dependency::SLOW_LOOKUP.as_secs_f64()
    );
    let get_order = red(&backend.service, "server", "shop.Orders/GetOrder");
    assert_eq!(
        (get_order.count, get_order.errors),
        (80, 10),
        "INTERNAL counts, NOT_FOUND does not"
    );
    let place = red(&backend.service, "server", "shop.Orders/PlaceOrder");
    assert_eq!((place.count, place.errors), (20, 0));
    assert_eq!(
        red(&gateway.service, "client", "shop.Orders/GetOrder").count,
        80
    );
    assert_eq!(
        red(&dependency.service, "server", "GET /stock/{sku}").count,
        67
    );
    assert_eq!(
        red(&dependency.service, "server", "POST /reserve").count,
        20
    );
    let placed: Vec<(&str, u64)> = r
        .orders_placed
        .iter()
        .map(|(o, n)| (o.as_str(), *n))
        .collect();
    assert_eq!(placed, [("success", 14), ("rejected", 6), ("error", 0)]);

    // The slowest request's trace, merged from the services' span stores.
    let slowest = r.slowest.clone().unwrap();
    let trace_id = slowest.trace_id.clone().unwrap();
    let Some(WaterfallSection::Trace(trace)) = &r.waterfall else {
        panic!("no trace: {:?}", r.waterfall)
    };
    assert_eq!(trace.trace_id, trace_id);
    let services = trace.services();
    assert!(
        services.contains(&gateway.service.as_str())
            && services.contains(&backend.service.as_str()),
        "{services:?}"
    );
    let root = trace.root().unwrap();
    assert_eq!(root.service, gateway.service);
    assert_eq!(root.name, format!("{} {}", slowest.method, slowest.route));
    assert!(trace
        .spans
        .iter()
        .any(|s| s.service == backend.service && s.parent_span_id.is_some()));
    let shares: f64 = trace.shares().iter().map(|s| s.fraction).sum();
    assert!((shares - 1.0).abs() < 1e-6, "{:?}", trace.shares());

    // Its log lines: the same trace id in both the gateway's and the backend's JSON logs.
    let roles: Vec<Role> = r.logs.iter().map(|(role, _)| *role).collect();
    assert!(
        roles.contains(&Role::Gateway) && roles.contains(&Role::Backend),
        "log lines with trace_id {trace_id}: {:?}",
        r.logs
    );
    for (_, line) in &r.logs {
        assert_eq!(line["trace_id"], trace_id.as_str());
    }

    // The printed report shows all of it.
    let text = r.render();
    let waterfall = &text[text.find("3. TRACE").unwrap()..text.find("4. WHERE").unwrap()];
    assert!(waterfall.contains(&trace_id), "{text}");
    assert!(
        waterfall.contains(&gateway.service) && waterfall.contains(&backend.service),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "{text}"
    );
    assert!(
        text.contains(&gateway.metrics_url()) && text.contains(&backend.metrics_url()),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "targets: [\"127.0.0.1:{}\"]",
            backend.metrics_port
        )),
        "{text}"
    );
    assert!(
        text.contains("orders_placed_total (backend): success=14 rejected=6 error=0"),
        "{text}"
    );

    // And the services are gone once it returns.
    for s in [&gateway, &backend, &dependency] {
        assert!(
            closes(s.addr()),
            "{} still listens on {}",
            s.service,
            s.port
        );
    }
}

#[test]
fn fault_fail_turns_every_order_lookup_into_a_500() {
    let r = run(Fault::Fail);
    assert_eq!(count_sent(&r, "/orders/{id}", 500), 60);
    let gateway = &r.service(Role::Gateway).unwrap().service;
    let row = r.red_of(gateway, "server", "GET /orders/{id}").unwrap();
    assert_eq!((row.count, row.errors), (60, 60));
    // /slow and /fail call GetOrder too: every call fails.
    assert_eq!(count_sent(&r, "/slow", 500), 10);
    let backend = &r.service(Role::Backend).unwrap().service;
    let row = r.red_of(backend, "server", "shop.Orders/GetOrder").unwrap();
    assert_eq!((row.count, row.errors), (80, 80));
    // Placing orders does not go through GetOrder: unaffected.
    assert_eq!(count_sent(&r, "/orders", 201), 14);
}

#[test]
fn fault_slow_makes_order_lookups_slow() {
    let r = run(Fault::Slow);
    assert_eq!(count_sent(&r, "/orders/{id}", 200), 57);
    let gateway = &r.service(Role::Gateway).unwrap().service;
    let row = r.red_of(gateway, "server", "GET /orders/{id}").unwrap();
    assert_eq!((row.count, row.errors), (60, 0));
    // Every lookup takes 700 ms or more: the median is past the 500 ms bucket bound (where
    // within the next bucket depends on interpolation, as with histogram_quantile).
    assert!(row.p50.unwrap() > 0.5, "{row:?}");
    assert!(r
        .sent
        .iter()
        .filter(|s| s.route == "/orders/{id}")
        .all(|s| s.latency >= tour::SLOW_FAULT_DELAY));
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_prints_ports_then_logs_and_its_services_die_with_it() {
    let mut child = Command::new(EXE)
        .arg("--serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout on a thread so every wait below is bounded.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("a ports line");
    let ports: serde_json::Value = serde_json::from_str(&first).unwrap();
    let port = |role: &str, key: &str| {
        let p = ports[role][key]
            .as_u64()
            .unwrap_or_else(|| panic!("{role}.{key} in {first}"));
        SocketAddr::from(([127, 0, 0, 1], p as u16))
    };
    let gateway = port("gateway", "port");
    assert_eq!(ports["gateway"]["service"], "tour-gateway");
    assert_eq!(
        ports["backend"]["metrics_url"],
        format!("http://{}/metrics", port("backend", "metrics_port"))
    );

    let answer = http_get(gateway, "/orders/1");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let trace_id = body["trace_id"].as_str().unwrap().to_string();
    let metrics = http_get(port("backend", "metrics_port"), "/metrics");
    assert!(
        metrics.contains("orders_placed_total{outcome=\"success\"} 0"),
        "{metrics}"
    );
    let status = http_get(port("gateway", "admin_port"), "/observe.json");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The services' JSON log lines follow on stdout; the backend's carry the request's trace.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            break false;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["trace_id"] == trace_id.as_str() && v["service.name"] == "tour-backend" {
            break true;
        }
        seen.push(line);
    };
    if !found {
        child.kill().unwrap();
        panic!("no tour-backend log line with trace_id {trace_id}; got {seen:#?}");
    }

    // Killed without a chance to clean up, the orchestrator still takes its services along:
    // each sees its stdin close and exits.
    child.kill().unwrap();
    child.wait().unwrap();
    for role in ["gateway", "backend", "dependency"] {
        assert!(
            closes(port(role, "port")),
            "{role} outlived the orchestrator"
        );
    }
}
