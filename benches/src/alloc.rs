//! A counting global allocator.
//!
//! Every bench binary installs it with
//! `#[global_allocator] static ALLOC: observe_benches::alloc::CountingAlloc = CountingAlloc;`.
//! It counts allocations (including the allocating half of a `realloc`) and requested bytes,
//! both for the calling thread (what the request path itself pays) and for the whole process
//! (which includes background threads such as a batch span processor).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Wraps the system allocator and counts.
pub struct CountingAlloc;

static ALL_ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALL_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // const-initialised, no destructor: safe to touch from inside the allocator.
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
    static THREAD_BYTES: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn count(bytes: usize) {
    ALL_ALLOCS.fetch_add(1, Relaxed);
    ALL_BYTES.fetch_add(bytes as u64, Relaxed);
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = THREAD_BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: every method forwards to `System` unchanged; counting touches no allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A reading of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Allocations made by the calling thread.
    pub thread_allocs: u64,
    /// Bytes requested by the calling thread.
    pub thread_bytes: u64,
    /// Allocations made by every thread of the process.
    pub all_allocs: u64,
    /// Bytes requested by every thread of the process.
    pub all_bytes: u64,
}

impl Snapshot {
    /// Reads the counters now.
    pub fn now() -> Self {
        Snapshot {
            thread_allocs: THREAD_ALLOCS.with(Cell::get),
            thread_bytes: THREAD_BYTES.with(Cell::get),
            all_allocs: ALL_ALLOCS.load(Relaxed),
            all_bytes: ALL_BYTES.load(Relaxed),
        }
    }
}

/// Allocations per operation, averaged over a run of `ops` operations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerOp {
    /// Operations measured.
    pub ops: u64,
    /// Allocations per operation on the calling thread.
    pub allocs: f64,
    /// Bytes per operation on the calling thread.
    pub bytes: f64,
    /// Allocations per operation on all threads.
    pub all_allocs: f64,
    /// Bytes per operation on all threads.
    pub all_bytes: f64,
}

/// Runs `run(ops)` between two counter readings and divides.
///
/// The closure is expected to perform exactly `ops` operations.
pub fn measure(ops: u64, run: impl FnOnce(u64)) -> PerOp {
    let before = Snapshot::now();
    run(ops);
    let after = Snapshot::now();
    let per = |a: u64, b: u64| (b - a) as f64 / ops as f64;
    PerOp {
        ops,
        allocs: per(before.thread_allocs, after.thread_allocs),
        bytes: per(before.thread_bytes, after.thread_bytes),
        all_allocs: per(before.all_allocs, after.all_allocs),
        all_bytes: per(before.all_bytes, after.all_bytes),
    }
}

/// Whether the counting allocator is the global allocator of this binary (it counted something).
pub fn is_installed() -> bool {
    let before = Snapshot::now();
    drop(std::hint::black_box(Box::new(1u64)));
    Snapshot::now().thread_allocs > before.thread_allocs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: CountingAlloc = CountingAlloc;

    #[test]
    fn counts_exactly() {
        assert!(is_installed());
        let per = measure(10, |n| {
            for _ in 0..n {
                let v: Vec<u8> = Vec::with_capacity(100);
                std::hint::black_box(v);
            }
        });
        assert_eq!(per.allocs, 1.0);
        assert_eq!(per.bytes, 100.0);
        assert!(per.all_allocs >= 1.0);
    }

    #[test]
    fn realloc_counts_as_one_allocation_of_the_new_size() {
        let mut v: Vec<u8> = Vec::with_capacity(8);
        let per = measure(1, |_| {
            v.reserve_exact(64);
        });
        assert_eq!((per.allocs, per.bytes), (1.0, 64.0));
        std::hint::black_box(v);
    }

    #[test]
    fn other_threads_count_only_in_all_threads() {
        let per = measure(1, |_| {
            std::thread::scope(|s| {
                s.spawn(|| std::hint::black_box(Box::new([0u8; 4096])));
            });
        });
        assert!(per.all_bytes >= 4096.0, "{per:?}");
        assert!(
            per.bytes < 4096.0,
            "the spawning thread did not allocate the box: {per:?}"
        );
    }
}
