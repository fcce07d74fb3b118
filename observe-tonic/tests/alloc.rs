//! Allocation count of the server layer on the unsampled path: after warm-up, a call through
//! `ServerLayer` — request, response future, response body to its trailers — allocates
//! nothing of observe's. A counting global allocator, hence its own test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use observe_core::metrics::{Metrics, MetricsConfig};
use observe_core::trace::Sampler;
use observe_tonic::ServerLayer;
use tower::{service_fn, Layer, Service};

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    COUNT.with(Cell::get)
}

/// Yields the frames it is given; allocates nothing while polled.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[test]
fn unsampled_server_call_allocates_nothing_after_warm_up() {
    let metrics = Metrics::leak(Metrics::new(MetricsConfig::default()));
    // Responses (a message, then OK trailers) are built before counting: the handler's
    // allocations are not observe's.
    let responses: Arc<Mutex<VecDeque<Response<Frames>>>> = Arc::default();
    let prepare = |n: usize| {
        let mut q = responses.lock().unwrap();
        for _ in 0..n {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            q.push_back(Response::new(Frames(VecDeque::from([
                Frame::data(Bytes::from_static(b"\0\0\0\0\0")),
                Frame::trailers(trailers),
            ]))));
        }
    };
    prepare(2);
    let queue = responses.clone();
    let mut svc = ServerLayer::new()
        .metrics(metrics)
        .sampler(Sampler::AlwaysOff)
        .layer(service_fn(move |_req: Request<()>| {
            let response = queue.lock().unwrap().pop_front().expect("prepared");
            std::future::ready(Ok::<_, Infallible>(response))
        }));
    let mut cx = Context::from_waker(Waker::noop());

    let mut one_call = |req: Request<()>| -> (u64, usize) {
        let before = allocations();
        let mut fut = svc.call(req);
        let Poll::Ready(Ok(response)) = Pin::new(&mut fut).poll(&mut cx) else {
            panic!("the service is ready at once");
        };
        drop(fut);
        let mut body = response.into_body();
        let mut frames = 0;
        while let Poll::Ready(Some(Ok(_))) = Pin::new(&mut body).poll_frame(&mut cx) {
            frames += 1;
        }
        drop(body);
        (allocations() - before, frames)
    };
    let requests: Vec<_> = (0..2)
        .map(|_| Request::post("/pkg.S/M").body(()).unwrap())
        .collect();
    let mut requests = requests.into_iter();
    // Warm-up: interns the method name and creates the series.
    assert_eq!(one_call(requests.next().unwrap()).1, 2);
    let (allocated, frames) = one_call(requests.next().unwrap());
    assert_eq!(frames, 2);
    assert_eq!(
        allocated, 0,
        "allocations in one unsampled call after warm-up"
    );
    assert_eq!(metrics.rpc_server().active(), 0);
    let calls: u64 = metrics
        .rpc_server()
        .snapshot()
        .iter()
        .map(|s| s.histogram.count)
        .sum();
    assert_eq!(calls, 2, "both calls recorded");
}
