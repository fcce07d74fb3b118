//! The status page in a real browser: headless Chromium loads `/observe` from a running
//! service after real traffic through observe's layers, and the test asserts on the DOM
//! Chromium built (route rows, a trace id the OTLP receiver also got, the service that took
//! the time, an XSS attempt rendered as text) and saves a screenshot under
//! `target/test-artifacts/`.
//!
//! Two services run in this process on loopback: `shop` (the one with the page) and
//! `pricing`, called by `shop` through observe's client layer. `init!` installs the global
//! tracer with OTLP export to the Python receiver and the in-process span store. One test:
//! `init!` is process-wide.

mod http_harness;

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use http_harness::{eventually, get as http_get, serve};
use observe_axum::TraceId;
use observe_core::config::{BatchConfig, Config};
use observe_core::http::ClientLayer;
use observe_core::status::StatusPage;
use observe_tests::backend;
use observe_tests::otlp::OtlpReceiver;
use tower::ServiceExt as _;
use tracing::Instrument as _;

/// The handler's log line carries the raw route parameter; the page must show it as text.
const XSS_PATH: &str = "/users/%3Cimg%20id%3Dxss%20src%3Dx%20onerror%3Dalert(1)%3E";

async fn price(Path(sku): Path<String>) -> String {
    async {
        tracing::info!("pricing {sku}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    .instrument(tracing::info_span!(
        "price.lookup",
        service.name = "pricing"
    ))
    .await;
    "12.50".to_owned()
}

async fn user(Path(id): Path<String>, trace: TraceId) -> (StatusCode, String) {
    async {
        tracing::error!("no user {id}");
    }
    .instrument(tracing::info_span!("user.lookup"))
    .await;
    (StatusCode::INTERNAL_SERVER_ERROR, trace.to_string())
}

fn pricing_app() -> Router {
    Router::new()
        .route("/price/{sku}", get(price))
        .layer(observe_axum::layer())
}

fn shop_app(page: StatusPage, pricing: SocketAddr) -> Router {
    let client = tower::ServiceBuilder::new()
        .layer(ClientLayer::new())
        .service(http_harness::client());
    let checkout = move |trace: TraceId| {
        let client = client.clone();
        async move {
            let req = http::Request::get(format!("http://{pricing}/price/sku-1"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = client.oneshot(req).await.expect("call pricing");
            assert_eq!(res.status(), StatusCode::OK);
            trace.to_string()
        }
    };
    // The page is answered beside the app, outside the observe layer (not itself measured).
    let status = move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
        let page = page.clone();
        async move {
            match page.handle(&req, Some(peer)) {
                Some(r) => r.into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    };
    Router::new()
        .route("/checkout", get(checkout))
        .route("/users/{id}", get(user))
        .route("/fast", get(|| async { "ok" }))
        .layer(observe_axum::layer())
        .route("/observe", get(status.clone()))
        .route("/observe.json", get(status))
}

/// Runs Chromium headless with `args` and the URL; its stdout, or a panic after 90 s.
fn chromium(bin: &FsPath, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s: {args:?} {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn artifacts_dir() -> PathBuf {
    let dir = backend::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_status_page_after_real_traffic() {
    let Some(browser) = backend::find_binary("chromium") else {
        backend::missing("chromium", "apt-get install chromium");
        return;
    };
    let Some(receiver) = OtlpReceiver::start() else {
        return; // the receiver reported what is missing (a failure under CI=true)
    };
    let mut batch = BatchConfig::default();
    batch.schedule_delay = Duration::from_millis(100);
    let config = Config::default()
        .service_name("shop")
        .otlp_endpoint(receiver.grpc_endpoint())
        .batch(batch)
        .span_collector(2000)
        .status_page(true);
    let page = StatusPage::from_config(&config).expect("enabled in the config");
    let _guard = observe_core::init!(config).expect("init");

    let pricing = serve(pricing_app()).await;
    let shop = serve(shop_app(page, pricing)).await;

    // Real traffic: fast requests, slow checkouts (the time is spent in pricing), and failed
    // lookups whose log line carries an XSS attempt from the route parameter.
    for _ in 0..20 {
        assert_eq!(http_get(shop, "/fast", &[]).await.0, StatusCode::OK);
    }
    let mut slow_traces = Vec::new();
    for _ in 0..2 {
        let (status, _, body) = http_get(shop, "/checkout", &[]).await;
        assert_eq!(status, StatusCode::OK);
        slow_traces.push(body);
    }
    let mut failed_traces = Vec::new();
    for _ in 0..2 {
        let (status, _, body) = http_get(shop, XSS_PATH, &[]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        failed_traces.push(body);
    }

    // The OTLP export saw those traces too.
    let exported: Vec<String> = eventually("the OTLP receiver to get both traces", || {
        let ids: Vec<String> = receiver
            .spans()
            .iter()
            .filter_map(|s| s["trace_id"].as_str().map(str::to_owned))
            .collect();
        (ids.contains(&slow_traces[1]) && ids.contains(&failed_traces[1])).then_some(ids)
    })
    .await;

    // The JSON form answers over loopback.
    let (status, _, json) = http_get(shop, "/observe.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(json["routes"].as_array().unwrap().len() >= 4);

    // Chromium builds the DOM from the page as served.
    let url = format!("http://{shop}/observe");
    let dom = {
        let (b, u) = (browser.clone(), url.clone());
        tokio::task::spawn_blocking(move || chromium(&b, &["--dump-dom".to_owned()], &u))
            .await
            .unwrap()
    };
    std::fs::write(artifacts_dir().join("status_page.html"), &dom).unwrap();

    // RED rows for every route that saw traffic, in both services.
    for (method, route) in [
        ("GET", "/fast"),
        ("GET", "/checkout"),
        ("GET", "/users/{id}"),
        ("GET", "/price/{sku}"),
    ] {
        assert!(
            dom.contains(&format!(
                "data-kind=\"http_server\" data-method=\"{method}\" data-route=\"{route}\""
            )),
            "no row for {method} {route}"
        );
    }
    assert!(
        dom.contains("data-kind=\"http_client\""),
        "the outgoing call to pricing"
    );
    assert!(
        dom.contains("<td class=\"num count\">20</td>"),
        "20 fast requests"
    );
    // Recent failed and slow requests, with trace ids the OTLP export saw.
    for id in failed_traces.iter().chain(&slow_traces) {
        assert!(exported.contains(id));
        assert!(
            dom.contains(&format!("data-trace-id=\"{id}\"")),
            "trace {id} is not on the page"
        );
    }
    assert!(dom.contains("<details class=\"request failed\""));
    assert!(dom.contains("most time in <b class=\"top-service\">pricing</b>"));
    assert!(dom.contains("<details class=\"request slow\""));
    // The slow checkout's waterfall names pricing as the service that took the time.
    let pricing_share = dom
        .split("data-service=\"pricing\">pricing: <b>")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|n| n.parse::<u32>().ok())
        .expect("a latency share for pricing");
    assert!(
        pricing_share >= 80,
        "pricing took {pricing_share}% of the checkout"
    );
    // The XSS attempt is text, not markup: Chromium would serialise an injected element as
    // `<img id="xss" ...>`.
    assert!(!dom.contains("id=\"xss\""), "an element was injected");
    assert!(
        dom.contains("no user &lt;img id=xss src=x onerror=alert(1)&gt;"),
        "the log line is shown as text"
    );

    // The screenshot, as a test artifact.
    let shot = artifacts_dir().join("status_page.png");
    let _ = std::fs::remove_file(&shot);
    let args = vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,1600".to_owned(),
    ];
    tokio::task::spawn_blocking(move || chromium(&browser, &args, &url))
        .await
        .unwrap();
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "a real page, not a blank image: {} bytes",
        png.len()
    );
    eprintln!("status page screenshot: {}", shot.display());
}
