//! The incoming `tracestate` and `baggage` of the request being handled, for outgoing calls.
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
#[derive(Clone, Debug, Default)]
pub(crate) struct Carried {
    pub(crate) tracestate: Option<HeaderValue>,
    pub(crate) baggage: Option<HeaderValue>,
}

impl Carried {
    pub(crate) fn is_empty(&self) -> bool {
        self.tracestate.is_none() && self.baggage.is_none()
    }
}

thread_local! {
    static CARRIED: RefCell<Carried> = const {
        RefCell::new(Carried { tracestate: None, baggage: None })
    };
}

/// Swaps `slot` with the thread's current value. Called in pairs around a poll.
pub(crate) fn swap(slot: &mut Carried) {
    CARRIED.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
}

/// Runs `f` with the current request's propagated headers (empty outside a request).
pub(crate) fn with_current<R>(f: impl FnOnce(&Carried) -> R) -> R {
    CARRIED.with(|c| f(&c.borrow()))
}

/// Installs `slot` until dropped, then moves the (possibly updated) value back into it.
pub(crate) struct CarriedGuard<'a> {
    slot: Option<&'a mut Carried>,
}

impl<'a> CarriedGuard<'a> {
    #[inline]
    pub(crate) fn enter(slot: &'a mut Carried) -> Self {
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
