//! The clock that times requests.
//!
//! Every measured request reads the clock twice. `std::time::Instant` goes through
//! `clock_gettime` (about 30 ns a read on a virtualised x86-64 host); [`Instant`] here is
//! `quanta`'s, which reads the CPU's time-stamp counter where it is invariant and scales it to
//! nanoseconds with a calibration against the OS clock (about 12 ns a read), and falls back to
//! the OS clock where it is not. Durations are only ever taken between two readings of this
//! clock; wall-clock timestamps (exemplars, logs) still come from `SystemTime`.
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

pub use quanta::Instant;

/// Calibrates the request clock now if it has not been yet (once per process; up to 200 ms).
///
/// ```
/// observe_core::clock::calibrate(); // instant after the first call
/// ```
#[inline]
pub fn calibrate() {
    let _ = Instant::now();
}
