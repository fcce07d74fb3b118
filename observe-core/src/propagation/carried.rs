//! The incoming `tracestate` and `baggage` of the request being handled, for outgoing calls.
//!
//! One slot for every protocol: an HTTP handler's gRPC calls and a gRPC handler's HTTP calls
//! forward what their request arrived with, whichever layer received it.
//!
//! [`RequestContext`](crate::context::RequestContext) holds only ids and flags (it is `Copy`);
//! the W3C headers a request arrived with must also be forwarded by the client layer. The server
//! layer's future moves the received header values (refcounted, never copied) into this
//! thread-local for the duration of each `poll` and takes them back afterwards, exactly as it
//! installs the `RequestContext`; nothing is allocated, and nothing is moved when the request
//! carried neither header.

use std::cell::RefCell;

use http::HeaderValue;

/// The propagated headers a request arrived with.
///
/// ```
/// use http::HeaderValue;
/// use observe_core::propagation::carried::{with_current, Carried, CarriedGuard};
///
/// let mut slot = Carried { tracestate: Some(HeaderValue::from_static("k=v")), baggage: None };
/// {
///     let _in_request = CarriedGuard::enter(&mut slot);
///     with_current(|c| assert_eq!(c.tracestate.as_ref().unwrap(), "k=v"));
/// }
/// with_current(|c| assert!(c.is_empty()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Carried {
    /// The validated `tracestate` header, if any.
    pub tracestate: Option<HeaderValue>,
    /// The validated `baggage` header, if any.
    pub baggage: Option<HeaderValue>,
}

impl Carried {
    /// `true` when neither header is present.
    pub fn is_empty(&self) -> bool {
        self.tracestate.is_none() && self.baggage.is_none()
    }
}

thread_local! {
    static CARRIED: RefCell<Carried> = const {
        RefCell::new(Carried { tracestate: None, baggage: None })
    };
}

/// Swaps `slot` with the thread's current value. Called in pairs around a poll.
pub fn swap(slot: &mut Carried) {
    CARRIED.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
}

/// Runs `f` with the current request's propagated headers (empty outside a request).
pub fn with_current<R>(f: impl FnOnce(&Carried) -> R) -> R {
    CARRIED.with(|c| f(&c.borrow()))
}

/// Installs `slot` until dropped, then moves the (possibly updated) value back into it.
#[must_use = "the headers are uninstalled as soon as the guard drops"]
pub struct CarriedGuard<'a> {
    slot: Option<&'a mut Carried>,
}

impl<'a> CarriedGuard<'a> {
    /// Installs `slot` on this thread (a no-op when there is nothing to carry or restore).
    #[inline]
    pub fn enter(slot: &'a mut Carried) -> Self {
        if slot.is_empty() && with_current(Carried::is_empty) {
            // The common case: nothing to carry, nothing to restore.
            return CarriedGuard { slot: None };
        }
        swap(slot);
        CarriedGuard { slot: Some(slot) }
    }
}

impl Drop for CarriedGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            swap(slot);
        }
    }
}
