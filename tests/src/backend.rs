//! Locating backends, and the one rule for when one is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// `true` when running under CI (`CI=true`), where a missing backend is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Reports a missing backend. Under CI this panics (the test fails); elsewhere it prints a
/// loud notice and returns, and the caller returns early from the test.
///
/// ```no_run
/// # fn t() {
/// let Some(promtool) = observe_tests::backend::find_binary("promtool") else {
///     observe_tests::backend::missing("promtool", "apt-get install prometheus, or run scripts/test");
///     return;
/// };
/// # }
/// ```
pub fn missing(backend: &str, how_to_get: &str) {
    let msg = format!(
        "\n==================== BACKEND MISSING ====================\n\
         {backend} is not available, so this test did NOT run.\n\
         Install it: {how_to_get}\n\
         =========================================================\n"
    );
    if in_ci() {
        panic!("{msg}(CI=true: a missing backend is a failure)");
    }
    eprintln!("{msg}");
}

/// Finds an executable by name on `PATH` (and in `/usr/sbin`, `/usr/bin` for Debian's packages).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python interpreter of the test virtualenv that `scripts/test` makes (`tests/.venv`),
/// or `OBSERVE_TEST_PYTHON` when set.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OBSERVE_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = repo_root().join("tests/.venv/bin/python");
    is_executable(&p).then_some(p)
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for a test's own backends).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on loopback")
}
