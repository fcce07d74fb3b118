//! The tour: three instrumented services (axum gateway → tonic backend → HTTP dependency), a
//! burst of requests, and what observe recorded — logs sharing a trace id, RED per route from
//! each `/metrics`, and the slowest trace as a waterfall.
//!
//! ```text
//! cargo run --release -p observe-examples --example tour
//! cargo run --release -p observe-examples --example tour -- --serve          # keep them running
//! cargo run --release -p observe-examples --example tour -- --fault fail     # alert drill
//! ```
//!
//! Everything is in the library module `observe_examples::tour`.

fn main() -> std::process::ExitCode {
    observe_examples::tour::main()
}
