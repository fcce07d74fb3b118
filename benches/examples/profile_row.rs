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
    let n: u64 = args.next().map_or(100_000, |s| s.parse().expect("N"));
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
    let row: Row = match peers.iter().find(|(name, _)| *name == id) {
        Some((_, make)) => make(),
        None => peers::observe::rows()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("unknown row {id}")),
    };
    let rt = app::current_thread_runtime();
    let run = || app::run_in_process(&rt, &row.router, row.path, row.traceparent, n);
    match &row.dispatch {
        Some(d) => tracing::dispatcher::with_default(d, run),
        None => run(),
    }
}
