//! The clock that times requests.
//!
//! Every measured request reads the clock twice. `std::time::Instant` goes through
//! `clock_gettime` (about 30 ns a read on a virtualised x86-64 host); [`Instant`] here holds a
//! raw reading of a `quanta` clock, which reads the CPU's time-stamp counter where it is
//! invariant (about 12 ns a read) and falls back to the OS clock where it is not. Only the
//! difference of two readings is scaled to nanoseconds, with the clock's calibration against
//! the OS clock. Holding the clock in a static of our own skips what `quanta::Instant::now`
//! does on every read (a thread-local check for a mocked clock, then the global one).
//! Durations are only ever taken between two readings of this clock; wall-clock timestamps
//! (exemplars, logs) still come from `SystemTime`.
//!
//! The first reading in a process calibrates the clock, which can take up to 200 ms.
//! [`calibrate`] does it ahead of time: `init` and every layer's `Layer::layer` (router
//! construction) call it, so no request pays for it.
//!
//! ```
//! use observe_core::clock::{self, Instant};
//! clock::calibrate();
//! let start = Instant::now();
//! assert!(start.elapsed() < std::time::Duration::from_secs(60));
//! ```

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// How [`read`] reads the clock: not decided yet (the clock is not calibrated), the TSC
/// directly, or through `quanta`.
static SOURCE: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
const TSC: u8 = 1;
const QUANTA: u8 = 2;

#[inline]
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// A raw reading, in the unit `quanta`'s `delta_as_nanos` scales. Where `quanta` reads the
/// TSC, reading it here inline spares every reading a call into `quanta` and its match on the
/// clock's kind; anywhere else, `quanta` reads the OS clock.
#[inline]
fn read() -> u64 {
    // Acquire (a plain load on x86-64): whoever sees the source decided also sees the clock
    // initialised, which the unchecked reads below and in `elapsed_nanos` rely on.
    match SOURCE.load(Ordering::Acquire) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: RDTSC is available on every x86-64 processor.
        TSC => unsafe { std::arch::x86_64::_rdtsc() },
        // SAFETY: the source is decided only after the clock is initialised.
        QUANTA => unsafe { CLOCK.get().unwrap_unchecked() }.raw(),
        _ => decide_and_read(),
    }
}

#[cold]
fn decide_and_read() -> u64 {
    let clock = clock();
    let source = if reads_the_tsc(clock) { TSC } else { QUANTA };
    SOURCE.store(source, Ordering::Release);
    clock.raw()
}

/// Whether `quanta` chose the TSC: its raw readings then fall between two TSC readings taken
/// around them (an OS clock's nanoseconds since boot land in a window of a few hundred TSC
/// ticks by chance essentially never, and three times in a row never).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn reads_the_tsc(clock: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        // SAFETY: RDTSC is available on every x86-64 processor.
        let before = unsafe { std::arch::x86_64::_rdtsc() };
        let raw = clock.raw();
        let after = unsafe { std::arch::x86_64::_rdtsc() };
        (before..=after).contains(&raw)
    })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn reads_the_tsc(_clock: &quanta::Clock) -> bool {
    false
}

/// A reading of the request clock, for measuring how long something took.
///
/// Opaque: only [`Instant::elapsed`] (or [`Instant::elapsed_nanos`]) turns it into time.
///
/// ```
/// use observe_core::clock::Instant;
/// let start = Instant::now();
/// std::thread::sleep(std::time::Duration::from_millis(2));
/// // The TSC's calibration against the OS clock is close, not exact.
/// assert!(start.elapsed() >= std::time::Duration::from_millis(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// `now` must stay the only way to make one (no `Default`, no constant): `elapsed_nanos`
// relies on the clock having been initialised by it.
pub struct Instant(u64);

impl Instant {
    /// The clock now.
    ///
    /// ```
    /// let _ = observe_core::clock::Instant::now();
    /// ```
    #[inline]
    pub fn now() -> Instant {
        Instant(read())
    }

    /// Time since this reading; zero if the clock appears to have gone backwards.
    ///
    /// ```
    /// let start = observe_core::clock::Instant::now();
    /// assert!(start.elapsed() < std::time::Duration::from_secs(60));
    /// ```
    #[inline]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos())
    }

    /// Nanoseconds since this reading; zero if the clock appears to have gone backwards.
    ///
    /// ```
    /// let start = observe_core::clock::Instant::now();
    /// assert!(start.elapsed_nanos() < 60_000_000_000);
    /// ```
    #[inline]
    pub fn elapsed_nanos(&self) -> u64 {
        // SAFETY: an `Instant` is only made by `now`, which initialised the clock (the field
        // is private and no other constructor exists) before deciding the source `read` saw,
        // so `get` is `Some` here; saying so spares every measurement the initialisation check.
        debug_assert!(CLOCK.get().is_some(), "an Instant exists only after `now`");
        let end = read();
        let clock = unsafe { CLOCK.get().unwrap_unchecked() };
        clock.delta_as_nanos(self.0, end)
    }
}

/// Calibrates the request clock now if it has not been yet (once per process; up to 200 ms).
///
/// ```
/// observe_core::clock::calibrate(); // instant after the first call
/// ```
#[inline]
pub fn calibrate() {
    if SOURCE.load(Ordering::Acquire) == UNDECIDED {
        decide_and_read();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings scale to nanoseconds that agree with the OS clock to within calibration error,
    /// and `elapsed` is `elapsed_nanos` as a `Duration`.
    #[test]
    fn elapsed_agrees_with_the_os_clock() {
        calibrate();
        let os = std::time::Instant::now();
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let ours = start.elapsed_nanos();
        let theirs = os.elapsed().as_nanos() as u64;
        assert!(ours >= 18_000_000, "{ours} ns for a 20 ms sleep");
        assert!(
            ours <= theirs + theirs / 10,
            "{ours} ns, OS clock {theirs} ns"
        );
        let later = start.elapsed();
        assert!(later >= Duration::from_nanos(ours));
    }

    /// The source is decided once, by the first reading, and a clock whose readings are not
    /// the TSC's (here `quanta`'s mock, which reads what it is told) is never taken for it.
    #[test]
    fn only_a_clock_reading_the_tsc_is_read_inline() {
        calibrate();
        let source = SOURCE.load(Ordering::Acquire);
        assert!(source == TSC || source == QUANTA, "decided: {source}");
        let (mock, control) = quanta::Clock::mock();
        assert!(!reads_the_tsc(&mock), "a clock stopped at 0");
        control.increment(u64::MAX / 2);
        assert!(!reads_the_tsc(&mock), "a clock far from the TSC");
        if source == TSC {
            assert!(reads_the_tsc(clock()), "decided TSC, and quanta reads it");
        }
    }
}
