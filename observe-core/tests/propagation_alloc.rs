//! Proves the request-path parsers allocate nothing, with a counting global allocator.
//!
//! Allocations are counted per thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `f`.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (r, ALLOCATIONS.with(Cell::get) - before)
}

mod propagation {
    use super::allocations;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use observe_core::propagation::{extract, Baggage, TraceParent, TraceState};

    #[test]
    fn the_counter_sees_allocations() {
        let (v, n) = allocations(|| vec![1u8; 16]);
        assert_eq!(v.len(), 16);
        assert_eq!(
            n, 1,
            "the counting allocator must count, or the zeros below prove nothing"
        );
    }

    #[test]
    fn traceparent_parse_and_encode_allocate_nothing() {
        let inputs: [&[u8]; 4] = [
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ];
        let (out, n) = allocations(|| {
            let mut ok = 0;
            for input in inputs {
                if let Ok(tp) = TraceParent::parse(input) {
                    let encoded = tp.encode();
                    ok += usize::from(TraceParent::as_str(&encoded).len() == 55);
                }
            }
            ok
        });
        assert_eq!(out, 2);
        assert_eq!(n, 0, "TraceParent::parse + encode allocated");
    }

    #[test]
    fn tracestate_and_baggage_parsing_allocate_nothing() {
        let ts = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,";
        let bg = "userId=alice,serverNode=DF 28;ttl=30".replace(' ', "%20");
        let plain = "userId=alice,isProduction=false;p";
        let (sum, n) = allocations(|| {
            let ts = TraceState::parse(ts).unwrap();
            let mut sum = ts.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            sum += ts.get("congo").unwrap().len();
            let b = Baggage::parse(plain).unwrap();
            for m in b.iter() {
                sum += m.key().len() + m.value().len() + m.properties().count();
            }
            // Reading raw (still encoded) values never allocates either.
            let b = Baggage::parse(&bg).unwrap();
            sum += b.iter().map(|m| m.raw_value().len()).sum::<usize>();
            sum
        });
        assert!(sum > 0);
        assert_eq!(n, 0, "borrowed tracestate/baggage parsing allocated");
    }

    #[test]
    fn extract_of_single_valid_lines_allocates_nothing() {
        // Header values as hyper produces them: slices of one shared buffer.
        let buf = Bytes::from(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01congo=t61rcWkgMzEuserId=alice"
                .to_vec(),
        );
        let _promote = buf.clone();
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_maybe_shared(buf.slice(0..55)).unwrap(),
        );
        headers.insert(
            "tracestate",
            HeaderValue::from_maybe_shared(buf.slice(55..72)).unwrap(),
        );
        headers.insert(
            "baggage",
            HeaderValue::from_maybe_shared(buf.slice(72..)).unwrap(),
        );

        let (ex, n) = allocations(|| extract(&headers));
        assert_eq!(n, 0, "extract allocated on the common path");
        assert!(ex.traceparent.is_some());
        assert_eq!(ex.tracestate.unwrap(), "congo=t61rcWkgMzE");
        assert_eq!(ex.baggage.unwrap(), "userId=alice");
    }
}
