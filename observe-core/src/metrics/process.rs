//! Process metrics read from Linux `/proc` at scrape time (never on the request path):
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`. Other platforms expose
//! none of them rather than wrong values.

use super::encode::Writer;

/// One reading of the process' resource use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

#[cfg(target_os = "linux")]
pub(crate) fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat, page_size(), clock_ticks(), boot_time())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn read() -> Option<ProcessStats> {
    None
}

#[cfg(target_os = "linux")]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[cfg(target_os = "linux")]
fn open_fds() -> Option<u64> {
    // The directory handle read_dir holds is itself one of the entries; don't count it.
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

#[cfg(target_os = "linux")]
fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Parses `/proc/self/stat`. The command name (field 2) may contain spaces and parentheses,
/// so fields are counted from the last `)`.
#[cfg(target_os = "linux")]
fn parse_stat(stat: &str, page: u64, ticks: f64, btime: Option<f64>) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `f[0]` is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let utime = num(14)?;
    let stime = num(15)?;
    let start_ticks = num(22)?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)?.saturating_mul(page),
        open_fds: open_fds(),
        max_fds: max_fds(),
        start_time_seconds: btime.map(|b| b + start_ticks as f64 / ticks),
    })
}

pub(crate) fn write(w: &mut Writer<'_>) {
    let Some(p) = read() else { return };
    w.counter(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        p.cpu_seconds,
    );
    w.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        p.resident_bytes,
    );
    w.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        p.virtual_bytes,
    );
    if let Some(n) = p.open_fds {
        w.gauge("process_open_fds", "Number of open file descriptors", n);
    }
    if let Some(n) = p.max_fds {
        w.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors",
            n,
        );
    }
    if let Some(t) = p.start_time_seconds {
        w.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            t,
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parenthesised_command() {
        // Fields 3.. of a real line, with a command name containing ") (".
        let line = "1234 (we) (ird) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 4 0 \
                    1000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let p = parse_stat(line, 4096, 100.0, Some(1_700_000_000.0)).unwrap();
        assert_eq!(p.cpu_seconds, 4.0);
        assert_eq!(p.virtual_bytes, 104_857_600);
        assert_eq!(p.resident_bytes, 2560 * 4096);
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
    }

    #[test]
    fn reads_this_process() {
        let p = read().expect("/proc is readable on Linux");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds.unwrap() >= 3, "stdin/out/err at least");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        assert!(start <= now + 1.0 && start > now - 86_400.0 * 365.0);
    }
}
