//! The tour as a binary of the tests crate, so integration tests (and the end-to-end tests)
//! can run its services with `env!("CARGO_BIN_EXE_tour-service")`: `--role gateway|backend|
//! dependency` runs one service, `--serve` all three, no argument the whole tour. The code is
//! `observe_examples::tour`, shared with `cargo run -p observe-examples --example tour`.

fn main() -> std::process::ExitCode {
    observe_examples::tour::main()
}
