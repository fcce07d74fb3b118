//! Runs one in-process row of the request-path bench N times with no measurement harness, for
//! instruction counts (`valgrind --tool=callgrind`: exact and repeatable, unlike time on a
//! shared machine) and for `perf record`.
//!
//! `benches/instructions.sh` runs it under callgrind for every row and writes the counts the
//! results generator reads. By hand:
//!
//! ```sh
//! cargo build --release -p observe-benches --example profile_row
//! valgrind --tool=callgrind --toggle-collect='*run_in_process*' \
//!   target/release/examples/profile_row observe_full_unsampled 10000
//! ```
//! Run it with two values of N and divide the difference in instructions by the difference in
//! N to remove the rest. The rows are the bench's own (`benches/peers`), by criterion id:
//! `bare_axum`, `noop_layer`, `observe_metrics`, `observe_full_unsampled`,
//! `observe_full_unsampled_info`, `observe_sampled`, `axum_tracing_otel_sampled`, ...

use observe_benches::{app, Row};

// The bench's rows module, shared (it allows the dead code of the rows this tool skips).
#[path = "../benches/peers/mod.rs"]
mod peers;

fn main() {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_else(|| "observe_metrics".into());
    if id == "turns" {
        return turns(args.collect());
    }
    let n: u64 = args.next().map_or(100_000, |s| s.parse().expect("N"));
    let row = make_row(&id);
    let rt = app::current_thread_runtime();
    let run = || app::run_in_process(&rt, &row.router, row.path, row.traceparent, n);
    match &row.dispatch {
        Some(d) => tracing::dispatcher::with_default(d, run),
        None => run(),
    }
}

/// `turns ROUNDS BATCH ROW...`: the rows timed in rotating turns, as the bench's goal table
/// does, printing each row's median ns/request and its overhead over the first row (bare axum
/// by convention) in units of the second's (the do-nothing layer). For comparing two builds
/// on a noisy machine: the ratio is taken within one process.
fn turns(args: Vec<String>) {
    let [rounds, batch, ids @ ..] = &args[..] else {
        panic!("usage: profile_row turns ROUNDS BATCH ROW...");
    };
    let (rounds, batch) = (
        rounds.parse().expect("ROUNDS"),
        batch.parse().expect("BATCH"),
    );
    let rows: Vec<Row> = ids.iter().map(|id| make_row(id)).collect();
    let picked: Vec<&Row> = rows.iter().collect();
    let ns = observe_benches::interleaved(&picked, rounds, batch);
    let median = |i: usize| {
        let mut v: Vec<f64> = ns.iter().map(|round| round[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = (0..rows.len()).map(median).collect();
    for (row, m) in rows.iter().zip(&medians) {
        let ratio = match medians[..] {
            [base, floor, ..] if floor > base => (m - base) / (floor - base),
            _ => f64::NAN,
        };
        println!("{:32} {m:8.1} ns  {ratio:5.2}x floor", row.id);
    }
}

fn make_row(id: &str) -> Row {
    // Built on demand: only the chosen row's router (and its globals) exists in the process.
    type MakeRow = fn() -> Row;
    let peers: [(&str, MakeRow); 11] = [
        ("bare_axum", peers::bare),
        ("noop_layer", peers::noop_layer),
        ("tower_http_trace", peers::tower_http_trace_no_subscriber),
        (
            "tower_http_trace_fmt_sink",
            peers::tower_http_trace_fmt_sink,
        ),
        ("prometheus_client_red", peers::prometheus_client_red),
        ("naive_string_labels", peers::naive_string_labels),
        ("axum_otel_metrics", peers::axum_otel_metrics),
        ("axum_prometheus", peers::axum_prometheus),
        ("autometrics", peers::autometrics),
        (
            "axum_tracing_otel_unsampled",
            peers::axum_tracing_otel_unsampled,
        ),
        (
            "axum_tracing_otel_sampled",
            peers::axum_tracing_otel_sampled,
        ),
    ];
    match peers.iter().find(|(name, _)| *name == id) {
        Some((_, make)) => make(),
        None => peers::observe::rows()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("unknown row {id}")),
    }
}
