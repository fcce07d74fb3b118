//! Exact allocation counts of the JSON layer's hot path, with a counting global allocator.
//!
//! Counting is per thread (only while a thread enables it), so the test harness and the
//! non-blocking writer's own thread do not disturb the numbers.

// In a module so that `cargo test -p observe-core logs` selects these tests by name.
mod logs {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use observe_core::context::{RequestContext, SpanId, TraceFlags, TraceId};
    use observe_core::logs::{JsonLayer, NonBlocking};
    use tracing::{info, info_span};
    use tracing_subscriber::layer::SubscriberExt;

    struct Counting;

    /// Lines and bytes the layer handed to the sink (no allocation to count them).
    static LINES: AtomicUsize = AtomicUsize::new(0);
    static BYTES: AtomicUsize = AtomicUsize::new(0);

    struct CountingSink;

    impl std::io::Write for CountingSink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            LINES.fetch_add(b.iter().filter(|&&c| c == b'\n').count(), Ordering::Relaxed);
            BYTES.fetch_add(b.len(), Ordering::Relaxed);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    fn note() {
        let _ = COUNTING.try_with(|on| {
            if on.get() {
                let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
            }
        });
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
        ALLOCS.with(|n| n.set(0));
        COUNTING.with(|c| c.set(true));
        let r = f();
        COUNTING.with(|c| c.set(false));
        (r, ALLOCS.with(Cell::get))
    }

    fn request_cx() -> RequestContext {
        RequestContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::default(),
        )
    }

    /// An `info!` with 5 fields and a formatted message, inside 2 spans with fields, inside a
    /// request context.
    fn scenario(events: usize) {
        let outer = info_span!("request", method = "GET", route = "/users/{id}");
        let _o = outer.enter();
        let inner = info_span!("db", table = "users", password = "secret");
        let _i = inner.enter();
        let _cx = request_cx().enter();
        let emit = |i: usize| {
            info!(
                user_id = 42u64,
                ok = true,
                ratio = 0.5,
                name = "alice \"quoted\"\n",
                attempt = ?Some(i),
                "user {} loaded",
                i
            )
        };
        for i in 0..3 {
            emit(i);
        }
        for i in 0..events {
            let ((), n) = count(|| emit(i));
            assert_eq!(n, 0, "event {i} allocated {n} times");
        }
    }

    #[test]
    fn info_with_five_fields_in_two_spans_in_a_request_allocates_nothing() {
        let layer = JsonLayer::builder()
            .service_name("alloc")
            .writer(|| CountingSink)
            .build();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || scenario(10));
        // The events really were formatted and written: 3 warm-up + 10 counted, each a full
        // line with fields, two spans and ids.
        assert_eq!(LINES.load(Ordering::Relaxed), 13);
        assert!(
            BYTES.load(Ordering::Relaxed) > 13 * 300,
            "{}",
            BYTES.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn counting_allocator_sees_allocations() {
        // Guards against a counter that can never fail.
        let (v, n) = count(|| vec![1u8; 10]);
        assert_eq!(v.len(), 10);
        assert_eq!(n, 1);
    }

    #[test]
    fn non_blocking_writer_caller_allocates_nothing_after_warm_up() {
        let (writer, guard) = NonBlocking::builder()
            .capacity(64)
            .finish(std::io::sink())
            .unwrap();
        let layer = JsonLayer::builder().writer(writer.clone()).build();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let _cx = request_cx().enter();
            // Warm-up: lines pass through the queue and their buffers come back to the pool.
            for i in 0..8 {
                info!(i, "warm");
            }
            assert!(writer.flush_timeout(Duration::from_secs(10)));
            for i in 0..8 {
                let ((), n) = count(|| info!(i, "steady"));
                assert_eq!(n, 0, "event {i} allocated {n} times");
                // Let the buffer come back, so the next event finds one in the pool.
                assert!(writer.flush_timeout(Duration::from_secs(10)));
            }
        });
        assert!(guard.shutdown(Duration::from_secs(10)));
        assert_eq!(writer.dropped(), 0);
    }
}
