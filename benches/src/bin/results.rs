//! Writes `benches/RESULTS.md` from criterion's output and the benches' side-car files.
//!
//! ```text
//! cargo bench -p observe-benches            # measure (a few minutes on 2 cores)
//! cargo run -p observe-benches --bin results # write benches/RESULTS.md
//! ```
//!
//! Options: `--criterion DIR` (default: `$CRITERION_HOME`, `$CARGO_TARGET_DIR/criterion`, or
//! `<workspace>/target/criterion`), `--out FILE` (default `benches/RESULTS.md`), `--stdout`.
//! Nothing in the output is typed by hand: every number comes from those files, the machine
//! facts from `/proc/cpuinfo` and `rustc --version`, the versions from `Cargo.lock`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// One measured benchmark.
#[derive(Clone, Debug)]
struct Bench {
    group: String,
    /// Function id (`observe_metrics`, `prometheus_client_text_encode`).
    function: String,
    /// Parameter (`1000`, `2`), if any.
    param: Option<String>,
    label: String,
    order: u64,
    /// Nanoseconds per iteration: criterion's slope when it has one, else its mean.
    ns: f64,
    /// Half-width of the 95 % confidence interval of `ns`.
    ns_ci: f64,
    extra: serde_json::Map<String, Value>,
}

impl Bench {
    fn num(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(Value::as_f64)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut criterion = default_criterion_dir();
    let mut out = PathBuf::from(MANIFEST_DIR).join("RESULTS.md");
    let mut to_stdout = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--criterion" => criterion = PathBuf::from(args.next().expect("--criterion DIR")),
            "--out" => out = PathBuf::from(args.next().expect("--out FILE")),
            "--stdout" => to_stdout = true,
            other => {
                eprintln!("unknown argument {other:?}; see the doc comment of src/bin/results.rs");
                std::process::exit(2);
            }
        }
    }
    let benches = load(&criterion);
    if benches.is_empty() {
        eprintln!(
            "no criterion results under {}: run `cargo bench -p observe-benches` first",
            criterion.display()
        );
        std::process::exit(1);
    }
    let lock = PathBuf::from(MANIFEST_DIR).join("../Cargo.lock");
    let interleaved = Interleaved::load(&criterion.join("in_process"));
    let instructions = Instructions::load(&criterion.join("in_process"));
    let md = render(&benches, interleaved.as_ref(), instructions.as_ref(), &lock);
    if to_stdout {
        print!("{md}");
    } else {
        std::fs::write(&out, md).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
        eprintln!("wrote {} ({} benchmarks)", out.display(), benches.len());
    }
}

/// The goal rows timed in turns by the request-path bench (`in_process/observe-interleaved.json`):
/// per round, each row's nanoseconds per request.
struct Interleaved {
    ids: Vec<String>,
    batch: u64,
    ns: Vec<Vec<f64>>,
}

/// `benches/instructions.sh`'s counts: instructions per in-process request, from callgrind.
struct Instructions {
    valgrind: String,
    rows: Vec<(String, f64)>,
}

impl Instructions {
    fn load(group_dir: &Path) -> Option<Self> {
        let v = read_json(&group_dir.join("observe-instructions.json"))?;
        // `[[id, instructions], ...]`, in the order the script ran them.
        let rows = v["rows"]
            .as_array()?
            .iter()
            .map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_f64()?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Instructions {
            valgrind: v["valgrind"].as_str().unwrap_or("valgrind").to_owned(),
            rows,
        })
    }

    fn get(&self, id: &str) -> Option<f64> {
        self.rows.iter().find(|(k, _)| k == id).map(|(_, n)| *n)
    }

    /// A row's instructions minus bare axum's.
    fn over(&self, id: &str) -> Option<f64> {
        Some(self.get(id)? - self.get("bare_axum")?)
    }
}

impl Interleaved {
    fn load(group_dir: &Path) -> Option<Self> {
        let v = read_json(&group_dir.join("observe-interleaved.json"))?;
        let ids = v["ids"]
            .as_array()?
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let ns = v["ns"]
            .as_array()?
            .iter()
            .map(|round| {
                round
                    .as_array()?
                    .iter()
                    .map(Value::as_f64)
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        let batch = v["batch"].as_u64()?;
        (!ns.is_empty() && ns.iter().all(|r| r.len() == ids.len())).then_some(Interleaved {
            ids,
            batch,
            ns,
        })
    }

    fn rounds(&self) -> usize {
        self.ns.len()
    }

    /// The median over rounds of one row's nanoseconds per request.
    fn median(&self, id: &str) -> Option<f64> {
        let i = self.ids.iter().position(|x| x == id)?;
        let mut xs: Vec<f64> = self.ns.iter().map(|r| r[i]).collect();
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        Some(if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        })
    }

    /// A row's median minus bare axum's.
    fn over(&self, id: &str) -> Option<f64> {
        Some(self.median(id)? - self.median("bare_axum")?)
    }
}

fn default_criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return h.into();
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    PathBuf::from(MANIFEST_DIR).join("../target/criterion")
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// Finds every `new/benchmark.json` under `dir`.
fn load(dir: &Path) -> Vec<Bench> {
    let mut found = Vec::new();
    walk(dir, &mut found);
    let mut out = Vec::new();
    for new_dir in found {
        let Some(meta) = read_json(&new_dir.join("benchmark.json")) else {
            continue;
        };
        let Some(est) = read_json(&new_dir.join("estimates.json")) else {
            continue;
        };
        let bench_dir = new_dir.parent().expect("parent");
        let extra = read_json(&bench_dir.join("observe-extra.json"))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let group = s(&meta, "group_id").unwrap_or_default();
        let mut function = s(&meta, "function_id").unwrap_or_default();
        let mut param = s(&meta, "value_str");
        // Ids given as "function/parameter" strings: criterion keeps them whole.
        if param.is_none() {
            if let Some((f, p)) = function.rsplit_once('/') {
                (function, param) = (f.to_owned(), Some(p.to_owned()));
            }
        }
        let point = |k: &str| -> Option<(f64, f64)> {
            let e = est.get(k)?;
            let p = e.get("point_estimate")?.as_f64()?;
            let ci = e.get("confidence_interval")?;
            let lo = ci.get("lower_bound")?.as_f64()?;
            let hi = ci.get("upper_bound")?.as_f64()?;
            Some((p, (hi - lo) / 2.0))
        };
        let Some((ns, ns_ci)) = point("slope").or_else(|| point("mean")) else {
            continue;
        };
        let label = extra
            .get("label")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| function.clone());
        let order = extra.get("order").and_then(Value::as_u64).unwrap_or(1000);
        out.push(Bench {
            group,
            function,
            param,
            label,
            order,
            ns,
            ns_ci,
            extra,
        });
    }
    out.sort_by(|a, b| {
        (
            a.group.as_str(),
            a.order,
            a.param.as_deref().map(param_key),
            a.function.as_str(),
        )
            .cmp(&(
                b.group.as_str(),
                b.order,
                b.param.as_deref().map(param_key),
                b.function.as_str(),
            ))
    });
    out
}

fn param_key(p: &str) -> (u64, String) {
    (p.parse().unwrap_or(u64::MAX), p.to_owned())
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").is_file() {
                found.push(p);
            } else if !p
                .file_name()
                .is_some_and(|n| n == "report" || n == "base" || n == "change")
            {
                walk(&p, found);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Peers and tools whose versions the table depends on.
const VERSIONED: &[&str] = &[
    "axum",
    "hyper",
    "tokio",
    "tower-http",
    "axum-otel-metrics",
    "axum-prometheus",
    "metrics",
    "metrics-exporter-prometheus",
    "axum-tracing-opentelemetry",
    "tracing-opentelemetry-instrumentation-sdk",
    "autometrics",
    "prometheus-client",
    "opentelemetry",
    "opentelemetry_sdk",
    "tracing-opentelemetry",
    "tracing",
    "tracing-subscriber",
    "criterion",
];

/// `name -> versions` from a Cargo.lock (a name can appear in several versions).
fn lock_versions(lock: &Path) -> BTreeMap<String, Vec<String>> {
    parse_lock(&std::fs::read_to_string(lock).unwrap_or_default())
}

fn parse_lock(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                map.entry(n)
                    .or_default()
                    .push(v.trim_matches('"').to_owned());
            }
        }
    }
    map
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// UTC now as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    utc(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC` (days-from-civil, inverted).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000_000.0 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 100_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 10_000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_signed_ns(ns: f64) -> String {
    let sign = if ns < 0.0 { "−" } else { "+" };
    format!("{sign}{}", fmt_ns(ns.abs()))
}

fn fmt_num(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(x) if (x - x.round()).abs() < 0.005 => format!("{}", x.round() as i64),
        Some(x) => format!("{x:.2}"),
    }
}

fn fmt_signed(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(x) if x >= 0.0 => format!("+{}", fmt_num(Some(x))),
        Some(x) => format!("−{}", fmt_num(Some(-x))),
    }
}

fn render(
    benches: &[Bench],
    interleaved: Option<&Interleaved>,
    instructions: Option<&Instructions>,
    lock: &Path,
) -> String {
    let mut md = String::new();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = command_line(
        &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()),
        &["--version"],
    );
    let _ = writeln!(md, "# observe benchmark results\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run -p observe-benches --bin results` from criterion's \
         `target/criterion/**/new/estimates.json` and the benches' `observe-extra.json` side-car \
         files (allocations, output sizes). Do not edit by hand; rerun the benches and the \
         generator (see `benches/README.md`).\n"
    );
    let _ = writeln!(md, "- Date: {}", utc_now());
    let _ = writeln!(
        md,
        "- Machine: {nproc} CPUs ({}), {}",
        cpu_model(),
        command_line("uname", &["-sr"])
    );
    let _ = writeln!(
        md,
        "- Toolchain: {rustc}, `[profile.bench]` (release + debug info)"
    );
    let versions = lock_versions(lock);
    let listed: Vec<String> = VERSIONED
        .iter()
        .filter_map(|n| versions.get(*n).map(|v| format!("{n} {}", v.join(" / "))))
        .collect();
    let _ = writeln!(md, "- Versions (Cargo.lock): {}", listed.join(", "));
    let _ = writeln!(
        md,
        "- Time per request is criterion's slope estimate (mean where there is none), \
         ± half its 95 % confidence interval. Allocations are exact counts from a counting \
         global allocator over 2,000 requests (10,000 log lines, 200 scrapes), measured outside \
         criterion's timing.\n"
    );

    let by_group = |g: &str| -> Vec<&Bench> { benches.iter().filter(|b| b.group == g).collect() };
    goals(&mut md, benches, interleaved, instructions);

    request_table(
        &mut md,
        "Request path, in-process",
        "`Router` called as a tower `Service` on a current-thread runtime, request built fresh \
         with a `traceparent` header, body read to the end. Allocations are those of the request's \
         thread (a batch span processor's own thread is not counted here; see the last column).",
        &by_group("in_process"),
        "allocs",
        "alloc_bytes",
        true,
    );
    instructions_table(&mut md, instructions);
    request_table(
        &mut md,
        "Request path, loopback HTTP/1.1",
        "hyper client on one keep-alive connection to `axum::serve` on 127.0.0.1 (server on its own \
         thread), one request at a time. Allocations count client and server together, so only \
         the difference to bare axum is the row's own.",
        &by_group("loopback"),
        "allocs_all_threads",
        "alloc_bytes_all_threads",
        false,
    );
    threads_table(&mut md, &by_group("threads"));
    routes_table(&mut md, &by_group("routes_10k"), &by_group("in_process"));
    json_table(&mut md, &by_group("json_log"));
    scrape_table(&mut md, &by_group("scrape"));
    record_table(&mut md, &by_group("record"));
    let known = [
        "in_process",
        "loopback",
        "threads",
        "routes_10k",
        "json_log",
        "scrape",
        "record",
    ];
    let others: Vec<&Bench> = benches
        .iter()
        .filter(|b| !known.contains(&b.group.as_str()))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            md,
            "## Other benchmarks\n\n| benchmark | time |\n|---|---:|"
        );
        for b in others {
            let _ = writeln!(md, "| {}/{} | {} |", b.group, b.function, fmt_ns(b.ns));
        }
        md.push('\n');
    }
    md
}

/// Instructions per request from `benches/instructions.sh`, when it was run.
fn instructions_table(md: &mut String, instructions: Option<&Instructions>) {
    let _ = writeln!(
        md,
        "## Request path, instructions per request (callgrind)\n"
    );
    let Some(c) = instructions else {
        let _ = writeln!(
            md,
            "Not measured in this run: `benches/instructions.sh` (needs valgrind) writes them.\n"
        );
        return;
    };
    let _ = writeln!(
        md,
        "The in-process rows counted by {} (`benches/instructions.sh`): instructions inside the \
         request loop at 15,000 requests minus at 5,000, over 10,000, on the request's thread \
         only (a batch processor's or log writer's thread is not counted). Exact and repeatable, unlike \
         time on a shared machine; not time (an atomic or a clock read costs more than an add). \
         Under valgrind `quanta` sees no invariant TSC and reads the OS clock, which overstates \
         the clock's share of observe's rows.\n",
        c.valgrind
    );
    let _ = writeln!(
        md,
        "| row | instructions/request | over bare axum | over the do-nothing layer |\n|---|---:|---:|---:|"
    );
    for (id, n) in &c.rows {
        let _ = writeln!(
            md,
            "| {id} | {} | {} | {} |",
            *n as i64,
            c.over(id).map_or("–".into(), |x| format!("{:+}", x as i64)),
            c.get("noop_layer")
                .map_or("–".into(), |f| format!("{:+}", (n - f) as i64)),
        );
    }
    md.push('\n');
}

fn find<'a>(
    benches: &'a [Bench],
    group: &str,
    function: &str,
    param: Option<&str>,
) -> Option<&'a Bench> {
    benches
        .iter()
        .find(|b| b.group == group && b.function == function && b.param.as_deref() == param)
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// The goals of issue #7, each checked against this run's numbers.
fn goals(
    md: &mut String,
    benches: &[Bench],
    interleaved: Option<&Interleaved>,
    instructions: Option<&Instructions>,
) {
    let ip = |f: &str| find(benches, "in_process", f, None);
    let over = |f: &str| Some(ip(f)?.ns - ip("bare_axum")?.ns);
    let allocs = |f: &str| ip(f)?.num("allocs");
    let _ = writeln!(
        md,
        "## Goals\n\nChecked against this run (in-process rows, overhead over bare axum).\n"
    );
    let _ = writeln!(md, "| goal | measured | verdict |\n|---|---|---|");

    for row in ["observe_metrics", "observe_full_unsampled"] {
        let m = allocs(row).zip(allocs("noop_layer"));
        let _ = writeln!(
            md,
            "| `{row}`: allocations equal the do-nothing `Router::layer` floor | {} vs floor {} | {} |",
            fmt_num(m.map(|x| x.0)),
            fmt_num(m.map(|x| x.1)),
            verdict(m.map(|(a, f)| a <= f)),
        );
    }
    let turns = interleaved.map(|i| {
        format!(
            "the same, rows timed in turns (median of {} rounds of {} requests)",
            i.rounds(),
            i.batch
        )
    });
    // Each ratio goal measured up to three ways; every measure's verdict, for the summary
    // below. Where a goal names several peers, each measure takes the cheapest by that measure.
    let ratio_goals = [
        RatioGoal {
            ratio: Ratio::AtMostTwice,
            label: "full unsampled overhead at most ~2x the floor's",
            ours: "observe_full_unsampled",
            theirs: &["noop_layer"],
            instructions_label:
                "the same, in instructions per request (callgrind; not time, but exact)",
        },
        RatioGoal {
            ratio: Ratio::CheaperBy(5),
            label: "full unsampled at least 5x cheaper than the cheapest metrics middleware peer \
                    (axum-otel-metrics, axum-prometheus)",
            ours: "observe_full_unsampled",
            theirs: &["axum_otel_metrics", "axum_prometheus"],
            instructions_label:
                "the same, in instructions per request (callgrind; not time, but exact)",
        },
        RatioGoal {
            ratio: Ratio::CheaperBy(3),
            label: "sampled at least 3x cheaper than axum-tracing-opentelemetry sampled",
            ours: "observe_sampled",
            theirs: &["axum_tracing_otel_sampled"],
            instructions_label:
                "the same, in instructions per request (callgrind; request thread only)",
        },
    ];
    // The cheapest of `peers` by one measure.
    let cheapest = |peers: &[&str], over: &dyn Fn(&str) -> Option<f64>| {
        peers
            .iter()
            .filter_map(|p| over(p))
            .min_by(|a, b| a.total_cmp(b))
    };
    let mut summary = Vec::new();
    for RatioGoal {
        ratio,
        label,
        ours,
        theirs,
        instructions_label,
    } in ratio_goals
    {
        let pair = over(ours).zip(cheapest(theirs, &over));
        // criterion's own intervals say when a row was disturbed: an overhead whose interval
        // (its row's and bare axum's together) is wider than a quarter of it is no measure.
        let disturbed = pair.is_some_and(|(o, t)| {
            let theirs_row = theirs
                .iter()
                .copied()
                .find(|p| over(p) == Some(t))
                .unwrap_or(theirs[0]);
            [(ours, o), (theirs_row, t)].iter().any(|&(row, overhead)| {
                let spread = ip(row).zip(ip("bare_axum")).map(|(r, b)| r.ns_ci + b.ns_ci);
                spread.is_none_or(|s| s > 0.25 * overhead.abs())
            })
        });
        let mut verdicts = vec![ratio_row(md, ratio, Unit::Ns, label, pair, disturbed)];
        if let (Some(i), Some(turns)) = (interleaved, &turns) {
            let i_over = |f: &str| i.over(f);
            let m = i.over(ours).zip(cheapest(theirs, &i_over));
            // Only the rows timed in turns have a turns measure.
            if m.is_some() {
                verdicts.push(ratio_row(md, ratio, Unit::Ns, turns, m, false));
            }
        }
        if let Some(c) = instructions {
            let c_over = |f: &str| c.over(f);
            let m = c.over(ours).zip(cheapest(theirs, &c_over));
            verdicts.push(ratio_row(
                md,
                ratio,
                Unit::Instructions,
                instructions_label,
                m,
                false,
            ));
        }
        summary.push((label, verdicts));
    }
    let j = find(benches, "json_log", "observe_json_in_request", None)
        .or_else(|| find(benches, "json_log", "observe_json", None))
        .zip(find(benches, "json_log", "fmt_json", None));
    let _ = writeln!(
        md,
        "| JSON log line: at least 5x the lines/s of `fmt().json()`, 0 allocations | {} | {} |",
        j.map_or("–".into(), |(o, f)| format!(
            "{:.2}x lines/s, {} allocs/line",
            f.ns / o.ns,
            fmt_num(o.num("allocs"))
        )),
        verdict(j.map(|(o, f)| f.ns >= 5.0 * o.ns && o.num("allocs") == Some(0.0))),
    );
    let s = find(benches, "scrape", "observe", Some("1000")).zip(find(
        benches,
        "scrape",
        "prometheus_client_text_encode",
        Some("1000"),
    ));
    let _ = writeln!(
        md,
        "| scrape at 1,000 series no slower than prometheus-client `text::encode` | {} vs {} | {} |",
        s.map_or("–".into(), |x| fmt_ns(x.0.ns)),
        s.map_or("–".into(), |x| fmt_ns(x.1.ns)),
        // Within the two intervals counts as "no slower".
        verdict(s.map(|(o, p)| o.ns - o.ns_ci <= p.ns + p.ns_ci)),
    );
    md.push('\n');
    // autometrics records metrics too, but of the handler function, not of HTTP: it is no
    // router layer and pays no floor, so "5x cheaper" than it would be below that floor.
    // Only from rows criterion measured steadily (as the goals' disturbance check).
    let steady = |f: &str| {
        let (r, b) = ip(f).zip(ip("bare_axum"))?;
        let overhead = over(f)?;
        (r.ns_ci + b.ns_ci <= 0.25 * overhead.abs()).then_some(overhead)
    };
    if let (Some(o), Some(a), Some(f)) = (
        steady("observe_full_unsampled"),
        steady("autometrics"),
        steady("noop_layer"),
    ) {
        let instructions = instructions
            .and_then(|c| c.over("observe_full_unsampled").zip(c.over("autometrics")))
            .map_or(String::new(), |(o, a)| {
                format!(" ({:.2}x in instructions)", a / o)
            });
        let _ = writeln!(
            md,
            "Not a goal row: autometrics also records metrics, of the handler function rather \
             than of HTTP (no route, method or status; no router layer, so none of the \
             do-nothing layer's {}). observe full unsampled is {:.2}x cheaper than it{instructions}; \
             5x cheaper would be {}, less than that floor.\n",
            fmt_signed_ns(f),
            a / o,
            fmt_signed_ns(a / 5.0),
        );
    }
    let _ = writeln!(
        md,
        "A goal measured more than one way counts as met only when every measure says so; where \
         they disagree it is unsettled: noise on the host decided between them (time moves by \
         ±50–300 ns between runs on a shared 2-core machine), and only the instruction count \
         repeats exactly.\n"
    );
    for (goal, verdicts) in &summary {
        let _ = writeln!(md, "- {goal}: {}", combined(verdicts));
    }
    md.push('\n');
}

/// One ratio goal: our row against the cheapest of `theirs` (or the floor).
struct RatioGoal {
    ratio: Ratio,
    label: &'static str,
    ours: &'static str,
    theirs: &'static [&'static str],
    instructions_label: &'static str,
}

/// The ratio goals: ours at most twice the floor's overhead, or at least `n` times cheaper
/// than a peer's.
#[derive(Clone, Copy)]
enum Ratio {
    AtMostTwice,
    CheaperBy(u32),
}

#[derive(Clone, Copy)]
enum Unit {
    Ns,
    Instructions,
}

/// Writes one measure of a ratio goal, `(ours, theirs)` overheads over bare axum, and returns
/// its verdict (`None`: not measured). A baseline at or below zero (bare axum's row disturbed)
/// gives no ratio rather than a meaningless one.
fn ratio_row(
    md: &mut String,
    ratio: Ratio,
    unit: Unit,
    label: &str,
    pair: Option<(f64, f64)>,
    disturbed: bool,
) -> Option<bool> {
    let show = |x: f64| match unit {
        Unit::Ns => fmt_signed_ns(x),
        Unit::Instructions => format!("{:+}", x as i64),
    };
    let (vs, divisor) = match ratio {
        Ratio::AtMostTwice => ("vs floor", pair.map(|p| p.1)),
        Ratio::CheaperBy(_) => ("vs", pair.map(|p| p.0)),
    };
    let ratioed = pair.filter(|_| divisor.is_some_and(|d| d > 0.0));
    let usable = ratioed.filter(|_| !disturbed);
    let (text, met) = match (ratio, ratioed) {
        (Ratio::AtMostTwice, Some((a, f))) => (format!("{:.2}x", a / f), a <= 2.0 * f),
        (Ratio::CheaperBy(n), Some((o, p))) => {
            (format!("{:.2}x cheaper", p / o), p >= f64::from(n) * o)
        }
        (_, None) => ("no ratio".to_owned(), false),
    };
    let verdict_text = match (pair, usable) {
        (Some(_), None) if disturbed && ratioed.is_some() => {
            "not measured (disturbed: the rows' 95 % intervals are wider than a quarter of the \
             overheads compared)"
        }
        (Some(_), None) => "not measured (a baseline came out ≤ 0: bare axum's row was disturbed)",
        _ => verdict(usable.map(|_| met)),
    };
    let _ = writeln!(
        md,
        "| {label} | {} {vs} {} ({text}) | {verdict_text} |",
        pair.map_or("–".into(), |p| show(p.0)),
        pair.map_or("–".into(), |p| show(p.1)),
    );
    usable.map(|_| met)
}

/// One verdict for a goal measured several ways: met only if every measure says met.
fn combined(verdicts: &[Option<bool>]) -> String {
    let measured: Vec<bool> = verdicts.iter().flatten().copied().collect();
    let met = measured.iter().filter(|m| **m).count();
    let verdict = match (measured.len(), met) {
        (0, _) => return "not measured".into(),
        (1, 1) => "**met** by its only measure taken".into(),
        (1, 0) => "**not met** by its only measure taken".into(),
        (n, m) if m == n => format!("**met** by all {n} measures taken"),
        (n, 0) => format!("**not met** by any of its {n} measures taken"),
        (n, m) => {
            format!("unsettled: met by {m} of its {n} measures taken (noise decided between them)")
        }
    };
    match verdicts.len() - measured.len() {
        0 => verdict,
        skipped => format!("{verdict}; {skipped} not measured in this run (see its row)"),
    }
}

fn request_table(
    md: &mut String,
    title: &str,
    how: &str,
    rows: &[&Bench],
    allocs_key: &str,
    bytes_key: &str,
    all_threads_column: bool,
) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "## {title}\n\n{how}\n");
    let base = rows.iter().find(|b| b.function == "bare_axum");
    let _ = write!(
        md,
        "| row | ns/request | overhead vs bare axum | ratio | allocs/request | overhead allocs | bytes/request |"
    );
    if all_threads_column {
        let _ = write!(md, " allocs/request, all threads |");
    }
    let _ = write!(md, "\n|---|---:|---:|---:|---:|---:|---:|");
    if all_threads_column {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    for b in rows {
        let (over, ratio, over_allocs) = match base {
            Some(base) => (
                fmt_signed_ns(b.ns - base.ns),
                format!("{:.2}x", b.ns / base.ns),
                fmt_signed(
                    b.num(allocs_key)
                        .zip(base.num(allocs_key))
                        .map(|(a, z)| a - z),
                ),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let _ = write!(
            md,
            "| {} | {} ± {} | {} | {} | {} | {} | {} |",
            b.label,
            fmt_ns(b.ns),
            fmt_ns(b.ns_ci),
            over,
            ratio,
            fmt_num(b.num(allocs_key)),
            over_allocs,
            fmt_num(b.num(bytes_key)),
        );
        if all_threads_column {
            let _ = write!(md, " {} |", fmt_num(b.num("allocs_all_threads")));
        }
        md.push('\n');
    }
    md.push('\n');
}

fn threads_table(md: &mut String, rows: &[&Bench]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Scaling: threads hammering the same route\n\n`k` threads, each with its own \
         current-thread runtime, share one router (and so the same metric series); time is wall \
         time divided by requests, so on `k` free cores it ideally divides by `k`. Overhead is \
         against bare axum with the same `k`.\n"
    );
    let _ = writeln!(
        md,
        "| row | threads | ns/request (wall) | overhead vs bare axum | ratio | allocs/request (all threads) |\n|---|---:|---:|---:|---:|---:|"
    );
    thread_rows(md, rows.iter().collect(), "bare_axum", true);
}

/// The rows of a table of `k`-thread runs: each against the `base` row with the same `k`,
/// with its overhead over it when `overhead`, then the ratio and allocations.
fn thread_rows(md: &mut String, rows: Vec<&&Bench>, base: &str, overhead: bool) {
    for b in &rows {
        let base = rows
            .iter()
            .find(|x| x.function == base && x.param == b.param);
        let over = match base {
            Some(base) if overhead => format!(" {} |", fmt_signed_ns(b.ns - base.ns)),
            None if overhead => " – |".into(),
            _ => String::new(),
        };
        let ratio = base.map_or("–".into(), |base| format!("{:.2}x", b.ns / base.ns));
        let label = b
            .label
            .rsplit_once(", ")
            .map_or(b.label.as_str(), |(l, _)| l);
        let _ = writeln!(
            md,
            "| {label} | {} | {} ± {} |{over} {ratio} | {} |",
            b.param.as_deref().unwrap_or("?"),
            fmt_ns(b.ns),
            fmt_ns(b.ns_ci),
            fmt_num(b.num("allocs_all_threads")),
        );
    }
    md.push('\n');
}

fn routes_table(md: &mut String, rows: &[&Bench], one_route: &[&Bench]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Scaling: 10,000 routes registered\n\nThe same request (`GET /users/42`) with 10,000 \
         routes registered in all, each visited once before measuring so every route has its \
         series. The last column compares each row to its own in-process time with one route: \
         lookup cost must not grow with series count (axum's own routing cost is in the bare row).\n"
    );
    let _ = writeln!(
        md,
        "| row | ns/request | overhead vs bare axum (10,000 routes) | allocs/request | vs same row, 1 route |\n|---|---:|---:|---:|---:|"
    );
    let base = rows.iter().find(|b| b.function == "bare_axum");
    for b in rows {
        let over = base.map_or("–".into(), |base| fmt_signed_ns(b.ns - base.ns));
        let vs_one = one_route
            .iter()
            .find(|x| x.function == b.function)
            .map_or("–".into(), |x| fmt_signed_ns(b.ns - x.ns));
        let _ = writeln!(
            md,
            "| {} | {} ± {} | {over} | {} | {vs_one} |",
            b.label,
            fmt_ns(b.ns),
            fmt_ns(b.ns_ci),
            fmt_num(b.num("allocs")),
        );
    }
    md.push('\n');
}

fn json_table(md: &mut String, rows: &[&Bench]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## JSON log formatting\n\nOne `info!` event with 5 fields inside 2 spans, formatted as a \
         JSON line and written to a sink that only counts bytes.\n"
    );
    let _ = writeln!(
        md,
        "| formatter | ns/line | lines/s | vs `fmt().json()` | allocs/line | bytes/line |\n|---|---:|---:|---:|---:|---:|"
    );
    let base = rows.iter().find(|b| b.function == "fmt_json");
    for b in rows {
        let ratio = base.map_or("–".into(), |base| {
            format!("{:.2}x lines/s", base.ns / b.ns)
        });
        let _ = writeln!(
            md,
            "| {} | {} ± {} | {:.0} | {ratio} | {} | {} |",
            b.label,
            fmt_ns(b.ns),
            fmt_ns(b.ns_ci),
            1e9 / b.ns,
            fmt_num(b.num("allocs")),
            fmt_num(b.num("alloc_bytes")),
        );
    }
    md.push('\n');
}

fn scrape_table(md: &mut String, rows: &[&Bench]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Scrape cost\n\nEncoding `/metrics` (Prometheus text) with N route × status series of \
         `http_server_request_duration_seconds` (14 buckets). Output bytes are the size of one \
         scrape body (label sets differ slightly between libraries).\n"
    );
    let _ = writeln!(
        md,
        "| series | encoder | time/scrape | vs prometheus-client | output bytes | allocs/scrape | bytes allocated/scrape |\n|---:|---|---:|---:|---:|---:|---:|"
    );
    let mut params: Vec<&str> = rows.iter().filter_map(|b| b.param.as_deref()).collect();
    params.sort_by_key(|p| param_key(p));
    params.dedup();
    for p in params {
        let base = rows.iter().find(|b| {
            b.function == "prometheus_client_text_encode" && b.param.as_deref() == Some(p)
        });
        let mut these: Vec<&&Bench> = rows
            .iter()
            .filter(|b| b.param.as_deref() == Some(p))
            .collect();
        these.sort_by_key(|b| b.order);
        for b in these {
            let ratio = base.map_or("–".into(), |base| format!("{:.2}x", b.ns / base.ns));
            let _ = writeln!(
                md,
                "| {p} | {} | {} ± {} | {ratio} | {} | {} | {} |",
                b.label,
                fmt_ns(b.ns),
                fmt_ns(b.ns_ci),
                fmt_num(b.num("output_bytes")),
                fmt_num(b.num("allocs")),
                fmt_num(b.num("alloc_bytes")),
            );
        }
    }
    md.push('\n');
}

fn record_table(md: &mut String, rows: &[&Bench]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Recording cost: one request's metrics, threads on one series

Active gauge up, one \
         duration observation, gauge down, on `k` threads recording the same series at once \
         (`benches/benches/record.rs`). Time is per operation as each thread sees it: wall time \
         of a batch divided by the operations each thread did, so on `k` free cores it ideally \
         stays the same as `k` grows; any growth with `k` is contention.\n"
    );
    let _ = writeln!(
        md,
        "| row | threads | ns/op per thread | vs prometheus-client, same threads | allocs/op (all threads) |\n|---|---:|---:|---:|---:|"
    );
    let mut sorted: Vec<&&Bench> = rows.iter().collect();
    sorted.sort_by_key(|b| b.order);
    thread_rows(md, sorted, "prometheus_client", false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00 UTC"); // leap day of a century year
    }

    #[test]
    fn lock_lists_every_version_of_a_name() {
        let lock =
            "version = 4\n\n[[package]]\nname = \"prometheus-client\"\nversion = \"0.22.3\"\n\n\
                    [[package]]\nname = \"axum\"\nversion = \"0.8.9\"\nsource = \"x\"\n\n\
                    [[package]]\nname = \"prometheus-client\"\nversion = \"0.26.0\"\n";
        let v = parse_lock(lock);
        assert_eq!(v["prometheus-client"], ["0.22.3", "0.26.0"]);
        assert_eq!(v["axum"], ["0.8.9"]);
        assert_eq!(
            v.len(),
            2,
            "the lock file's own `version = 4` is no package"
        );
    }

    #[test]
    fn interleaved_medians_per_row() {
        let dir = std::env::temp_dir().join(format!("observe-interleaved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Three rounds; the second was disturbed (every row slow): medians ignore it.
        std::fs::write(
            dir.join("observe-interleaved.json"),
            r#"{"ids":["bare_axum","noop_layer","observe_full_unsampled"],"batch":10,
               "ns":[[1000,1150,1300],[5000,9000,7000],[1010,1160,1290]]}"#,
        )
        .unwrap();
        let i = Interleaved::load(&dir).expect("parsed");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((i.rounds(), i.batch), (3, 10));
        assert_eq!(i.median("noop_layer"), Some(1160.0));
        assert_eq!(i.over("observe_full_unsampled"), Some(290.0)); // 1300 - 1010
        assert_eq!(i.over("absent"), None);
    }

    #[test]
    fn ratio_rows_judge_and_refuse_a_disturbed_baseline() {
        let mut md = String::new();
        let two = Ratio::AtMostTwice;
        assert_eq!(
            ratio_row(&mut md, two, Unit::Ns, "u", Some((290.0, 150.0)), false),
            Some(true)
        );
        assert_eq!(
            ratio_row(&mut md, two, Unit::Ns, "u", Some((310.0, 150.0)), false),
            Some(false)
        );
        assert_eq!(
            ratio_row(&mut md, two, Unit::Ns, "u", Some((70.0, -99.0)), false),
            None
        );
        assert_eq!(ratio_row(&mut md, two, Unit::Ns, "u", None, false), None);
        let three = Ratio::CheaperBy(3);
        let i = Unit::Instructions;
        assert_eq!(
            ratio_row(&mut md, three, i, "s", Some((100.0, 400.0)), false),
            Some(true)
        );
        assert_eq!(
            ratio_row(&mut md, three, i, "s", Some((200.0, 400.0)), false),
            Some(false)
        );
        assert!(
            md.contains("| u | +290 ns vs floor +150 ns (1.93x) | met |"),
            "{md}"
        );
        assert!(
            md.contains("(no ratio) | not measured (a baseline came out ≤ 0"),
            "{md}"
        );
        assert!(
            md.contains("| s | +100 vs +400 (4.00x cheaper) | met |"),
            "{md}"
        );
        assert_eq!(
            ratio_row(&mut md, three, Unit::Ns, "d", Some((13.0, 1300.0)), true),
            None,
            "a disturbed measure gives no verdict, however good it looks"
        );
        assert!(
            md.contains("| d | +13 ns vs +1300 ns (100.00x cheaper) | not measured (disturbed"),
            "{md}"
        );
        let five = Ratio::CheaperBy(5);
        assert_eq!(
            ratio_row(&mut md, five, i, "f", Some((100.0, 400.0)), false),
            Some(false)
        );
        assert_eq!(
            ratio_row(&mut md, five, i, "f", Some((100.0, 500.0)), false),
            Some(true)
        );
    }

    #[test]
    fn a_goal_is_met_only_when_every_measure_says_so() {
        assert_eq!(
            combined(&[Some(true), Some(true), None]),
            "**met** by all 2 measures taken; 1 not measured in this run (see its row)"
        );
        assert_eq!(
            combined(&[Some(true), Some(false), Some(false)]),
            "unsettled: met by 1 of its 3 measures taken (noise decided between them)"
        );
        assert_eq!(
            combined(&[Some(false), Some(false)]),
            "**not met** by any of its 2 measures taken"
        );
        assert_eq!(combined(&[None]), "not measured");
    }

    #[test]
    fn instruction_counts_over_bare_axum() {
        let dir = std::env::temp_dir().join(format!("observe-instr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("observe-instructions.json"),
            r#"{"requests":10000,"valgrind":"valgrind-3.24.0",
               "rows":[["bare_axum",9000],["noop_layer",9900],["observe_full_unsampled",11400]]}"#,
        )
        .unwrap();
        let c = Instructions::load(&dir).expect("parsed");
        let mut md = String::new();
        instructions_table(&mut md, Some(&c));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.over("observe_full_unsampled"), Some(2400.0));
        assert_eq!(c.over("absent"), None);
        assert!(
            md.contains("| observe_full_unsampled | 11400 | +2400 | +1500 |"),
            "{md}"
        );
        assert!(md.contains("valgrind-3.24.0"), "{md}");
    }

    #[test]
    fn reads_criterion_output_and_side_car() {
        let dir = std::env::temp_dir().join(format!("observe-results-test-{}", std::process::id()));
        let new = dir.join("scrape/observe_1000/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"scrape","function_id":"observe/1000","value_str":null}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":2000.0,"confidence_interval":{"lower_bound":1900.0,"upper_bound":2100.0}},
               "slope":{"point_estimate":1500.0,"confidence_interval":{"lower_bound":1400.0,"upper_bound":1600.0}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("scrape/observe_1000/observe-extra.json"),
            r#"{"label":"observe","order":2,"allocs":3.0,"output_bytes":1234}"#,
        )
        .unwrap();
        let b = load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(b.len(), 1);
        let b = &b[0];
        assert_eq!(
            (b.group.as_str(), b.function.as_str()),
            ("scrape", "observe")
        );
        assert_eq!(b.param.as_deref(), Some("1000"));
        assert_eq!(b.ns, 1500.0, "the slope is preferred over the mean");
        assert_eq!(b.ns_ci, 100.0);
        assert_eq!(b.num("allocs"), Some(3.0));
        assert_eq!(b.num("output_bytes"), Some(1234.0));
        assert_eq!(b.label, "observe");
    }
}
