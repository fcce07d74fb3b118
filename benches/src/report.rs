//! Side-car results that criterion does not measure (allocations, output sizes), written next
//! to criterion's own directories so the results generator finds both.
//!
//! For a benchmark `group/id`, criterion writes `<criterion>/group/id/new/estimates.json`;
//! [`record`] writes `<criterion>/group/id/observe-extra.json`.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// Whether this process runs real measurements (`cargo bench` passes `--bench`).
///
/// Under `cargo test --benches` criterion runs each benchmark once; side-car files are then
/// not written, so a quick test run never overwrites the numbers of a real one.
pub fn is_bench_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Where criterion writes its results, found the way criterion finds it.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // <target>/<profile>/deps/<bench binary>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Turns a criterion id into the directory name criterion uses (same rules, simplified:
/// ids here are ASCII words, digits, `_`, `-`, `.` and `/`).
fn dir_name(part: &str) -> String {
    part.chars()
        .map(|c| match c {
            '?' | '"' | '<' | '>' | ':' | '*' | '|' | '\\' | ' ' | '/' => '_',
            c => c,
        })
        .collect()
}

/// Writes the side-car for `group/id` (`id` may contain `/` for parameterised ids).
///
/// `label` is the row's human name, `order` its position in the table. Extra fields (such as
/// allocations) come from `fields`. Does nothing outside a real bench run.
pub fn record(group: &str, id: &str, label: &str, order: u32, fields: Map<String, Value>) {
    if !is_bench_run() {
        return;
    }
    // criterion keeps a "function/parameter" string id in one directory, '/' made '_'.
    let dir = criterion_dir().join(dir_name(group)).join(dir_name(id));
    let mut obj = Map::new();
    obj.insert("group".into(), group.into());
    obj.insert("id".into(), id.into());
    obj.insert("label".into(), label.into());
    obj.insert("order".into(), order.into());
    obj.extend(fields);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("observe-extra.json"),
            serde_json::to_vec_pretty(&Value::Object(obj)).expect("json"),
        )
    }) {
        eprintln!(
            "observe-benches: cannot write side-car in {}: {e}",
            dir.display()
        );
    }
}

/// The side-car fields for an allocation measurement.
pub fn alloc_fields(per: &crate::alloc::PerOp) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("alloc_ops".into(), per.ops.into());
    m.insert("allocs".into(), round(per.allocs).into());
    m.insert("alloc_bytes".into(), round(per.bytes).into());
    m.insert("allocs_all_threads".into(), round(per.all_allocs).into());
    m.insert(
        "alloc_bytes_all_threads".into(),
        round(per.all_bytes).into(),
    );
    m
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes `group/observe-interleaved.json`: the row ids and, per round, each row's nanoseconds
/// per request (see [`crate::interleaved`]). Does nothing outside a real bench run.
pub fn record_interleaved(group: &str, ids: &[&str], batch: u64, ns: &[Vec<f64>]) {
    if !is_bench_run() {
        return;
    }
    let dir = criterion_dir().join(dir_name(group));
    let value = serde_json::json!({ "ids": ids, "batch": batch, "ns": ns });
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("observe-interleaved.json"),
            serde_json::to_vec_pretty(&value).expect("json"),
        )
    }) {
        eprintln!("observe-benches: cannot write {}: {e}", dir.display());
    }
}
