//! A log sink that discards what it is given but counts the bytes, so a bench can prove its
//! formatter really wrote (or really did not write) lines.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static BYTES: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Discards writes, counting them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingSink;

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BYTES.fetch_add(buf.len() as u64, Relaxed);
        WRITES.fetch_add(1, Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `MakeWriter` for tracing layers: `.with_writer(counting_sink)` / `.writer(counting_sink)`.
pub fn counting_sink() -> CountingSink {
    CountingSink
}

/// Bytes written to every [`CountingSink`] of the process so far.
pub fn bytes() -> u64 {
    BYTES.load(Relaxed)
}

/// `write` calls on every [`CountingSink`] of the process so far.
pub fn writes() -> u64 {
    WRITES.load(Relaxed)
}
