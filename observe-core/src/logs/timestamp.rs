//! RFC 3339 UTC timestamps with microseconds, formatted on the stack.
//!
//! The calendar conversion is done by hand (days since the epoch to a proleptic Gregorian
//! date) so that formatting a log line needs neither a date crate nor an allocation.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a formatted timestamp: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const LEN: usize = 27;

/// The last second this format can express: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

/// Formats `secs` seconds and `micros` microseconds after the Unix epoch as
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// Times past the year 9999 are clamped to its last microsecond; `micros` above 999 999 is
/// clamped too, so the output is always well-formed.
///
/// ```
/// use observe_core::logs::timestamp::format_unix;
/// assert_eq!(&format_unix(0, 0), b"1970-01-01T00:00:00.000000Z");
/// assert_eq!(&format_unix(951_782_400, 123_456), b"2000-02-29T00:00:00.123456Z");
/// ```
pub fn format_unix(secs: u64, micros: u32) -> [u8; LEN] {
    let (secs, micros) = if secs > MAX_SECS {
        (MAX_SECS, 999_999)
    } else {
        (secs, micros.min(999_999))
    };
    // Lines logged within the same second (every busy service) share the date and time of day:
    // each thread keeps the last second it formatted, so a line formats only its microseconds.
    thread_local! {
        static LAST: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let prefix = LAST
        .try_with(|last| match last.get() {
            (s, prefix) if s == secs => prefix,
            _ => {
                let prefix = format_secs(secs);
                last.set((secs, prefix));
                prefix
            }
        })
        .unwrap_or_else(|_| format_secs(secs));
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    out[..19].copy_from_slice(&prefix);
    put(&mut out[20..26], u64::from(micros));
    out
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time in seconds (at most [`MAX_SECS`]).
fn format_secs(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let mut out = *b"0000-00-00T00:00:00";
    put(&mut out[0..4], year);
    put(&mut out[5..7], month);
    put(&mut out[8..10], day);
    put(&mut out[11..13], h);
    put(&mut out[14..16], m);
    put(&mut out[17..19], s);
    out
}

/// Formats a `SystemTime` (times before the epoch are clamped to it).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use observe_core::logs::timestamp::format;
/// let t = UNIX_EPOCH + Duration::from_micros(2_147_483_648_000_001);
/// assert_eq!(&format(t), b"2038-01-19T03:14:08.000001Z");
/// ```
pub fn format(t: SystemTime) -> [u8; LEN] {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => format_unix(d.as_secs(), d.subsec_micros()),
        Err(_) => format_unix(0, 0),
    }
}

/// Writes `n` as zero-padded decimal filling `dst` exactly.
fn put(dst: &mut [u8], mut n: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`:
/// shift to eras of 400 years starting on March 1st so that the leap day is the last day of
/// the shifted year and every era has the same shape.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719_468 days from 0000-03-01 to 1970-01-01; all values stay non-negative.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: count days forward one by one from the epoch.
    fn slow_civil(mut days: u64) -> (u64, u64, u64) {
        let mut y = 1970;
        loop {
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = if leap { 366 } else { 365 };
            if days < len {
                let ml = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ];
                let mut m = 0;
                while days >= ml[m] {
                    days -= ml[m];
                    m += 1;
                }
                return (y, m as u64 + 1, days + 1);
            }
            days -= len;
            y += 1;
        }
    }

    #[test]
    fn matches_day_by_day_count_for_three_centuries() {
        let mut expect = (1970, 1, 1);
        for d in 0..(366 * 300) {
            if d % 997 == 0 {
                expect = slow_civil(d);
            } else {
                // Advance the reference by one day cheaply.
                let (y, m, day) = expect;
                let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                let ml = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ];
                expect = if day < ml[m as usize - 1] {
                    (y, m, day + 1)
                } else if m < 12 {
                    (y, m + 1, 1)
                } else {
                    (y + 1, 1, 1)
                };
            }
            assert_eq!(civil_from_days(d), expect, "day {d}");
        }
    }

    /// The per-thread cache of the last second never serves a stale date or time.
    #[test]
    fn alternating_seconds_are_formatted_afresh() {
        let a = 1_700_000_000; // 2023-11-14T22:13:20
        let b = 951_825_600; // 2000-02-29T12:00:00
        for _ in 0..3 {
            assert_eq!(&format_unix(a, 1), b"2023-11-14T22:13:20.000001Z");
            assert_eq!(&format_unix(a, 2), b"2023-11-14T22:13:20.000002Z");
            assert_eq!(&format_unix(b, 3), b"2000-02-29T12:00:00.000003Z");
            assert_eq!(&format_unix(a + 1, 4), b"2023-11-14T22:13:21.000004Z");
        }
    }

    #[test]
    fn clamps() {
        assert_eq!(&format_unix(u64::MAX, 0), b"9999-12-31T23:59:59.999999Z");
        assert_eq!(&format_unix(0, 5_000_000), b"1970-01-01T00:00:00.999999Z");
    }
}
