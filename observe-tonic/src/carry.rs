//! The `tracestate` and `baggage` a server call arrived with, for the client calls it makes.
//!
//! [`RequestContext`](observe_core::context::RequestContext) holds ids and flags only (it is
//! `Copy`); the W3C headers a call arrived with must also reach the client layer. The server
//! layer moves the received values (refcounted `HeaderValue`s, never copied) into this
//! thread-local around each poll and takes them back afterwards, as it installs the context.
//! Nothing moves when the call carried neither header.
//!
//! observe-core's HTTP layers keep the same kind of slot privately; until core exposes one,
//! gRPC and HTTP hops each forward what their own kind of server received.

use std::cell::RefCell;

use http::HeaderValue;

/// The propagated headers a call arrived with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Carried {
    pub(crate) tracestate: Option<HeaderValue>,
    pub(crate) baggage: Option<HeaderValue>,
}

impl Carried {
    fn is_empty(&self) -> bool {
        self.tracestate.is_none() && self.baggage.is_none()
    }
}

thread_local! {
    static CARRIED: RefCell<Carried> = const {
        RefCell::new(Carried { tracestate: None, baggage: None })
    };
}

/// Runs `f` with the current call's received headers (empty outside a call).
pub(crate) fn with_current<R>(f: impl FnOnce(&Carried) -> R) -> R {
    CARRIED.with(|c| f(&c.borrow()))
}

/// Installs `slot` until dropped, then moves the value back into it.
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
        CARRIED.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
        CarriedGuard { slot: Some(slot) }
    }
}

impl Drop for CarriedGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            CARRIED.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_only_inside_the_guard_and_restored() {
        let mut slot = Carried {
            tracestate: Some(HeaderValue::from_static("k=v")),
            baggage: None,
        };
        {
            let _g = CarriedGuard::enter(&mut slot);
            with_current(|c| assert_eq!(c.tracestate.as_ref().unwrap(), "k=v"));
        }
        with_current(|c| assert!(c.is_empty()));
        assert_eq!(slot.tracestate.unwrap(), "k=v");
    }
}
