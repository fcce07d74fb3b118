//! The sampling decision and the hot-path globals allocate nothing (counting allocator; this
//! binary holds only this test so no other thread allocates while it counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use observe_core::config::Config;
use observe_core::context::{TraceFlags, TraceId};
use observe_core::trace::{self, Sampler};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn sampling_decisions_and_globals_allocate_nothing() {
    let guard = trace::install(
        &Config::default()
            .sampler(Sampler::ParentBasedTraceIdRatio(0.5))
            .span_collector(16),
    )
    .unwrap();
    let ids: Vec<TraceId> = (0..1000).map(|_| TraceId::random()).collect();
    let samplers = [
        Sampler::AlwaysOn,
        Sampler::AlwaysOff,
        Sampler::TraceIdRatio(0.3),
        Sampler::ParentBasedAlwaysOn,
        Sampler::ParentBasedAlwaysOff,
        Sampler::ParentBasedTraceIdRatio(0.3),
    ];
    let parents = [None, Some(TraceFlags::SAMPLED), Some(TraceFlags::default())];

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut sampled = 0u64;
    for id in &ids {
        for s in samplers {
            for p in parents {
                sampled += u64::from(s.should_sample(p, *id));
            }
        }
        let global = trace::sampler();
        sampled += u64::from(global.should_sample(None, *id));
        sampled += u64::from(trace::tracer().is_some());
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the sampling path");
    assert!(sampled > 0);
    assert_eq!(trace::sampler(), Sampler::ParentBasedTraceIdRatio(0.5));
    drop(guard);
}
