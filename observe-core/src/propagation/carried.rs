//! The incoming `tracestate` and `baggage` of the request being handled, for outgoing calls.
//!
//! One slot for every protocol: an HTTP handler's gRPC calls and a gRPC handler's HTTP calls
//! forward what their request arrived with, whichever layer received it.
//!
//! [`RequestContext`](crate::context::RequestContext) holds only ids and flags (it is `Copy`);
//! the W3C headers a request arrived with must also be forwarded by the client layer. The server
//! layers keep them in the request's future and install a pointer to them in a thread-local
//! around each `poll` ([`scope`]), exactly as they install the `RequestContext`: nothing is
//! copied, moved or allocated, and entering and leaving store one word each.

use std::cell::Cell;

use http::HeaderValue;

/// The propagated headers a request arrived with.
///
/// ```
/// use http::HeaderValue;
/// use observe_core::propagation::carried::{scope, with_current, Carried};
///
/// let received = Carried { tracestate: Some(HeaderValue::from_static("k=v")), baggage: None };
/// scope(&received, || {
///     with_current(|c| assert_eq!(c.tracestate.as_ref().unwrap(), "k=v"));
/// });
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

/// What `with_current` shows outside any request.
static EMPTY: Carried = Carried {
    tracestate: None,
    baggage: None,
};

thread_local! {
    // Null outside a request. Non-null only while a `scope` (or a layer's `enter_scoped`
    // guard) that borrows the pointee is running.
    static CARRIED: Cell<*const Carried> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `carried` as the current request's propagated headers, borrowed, not moved.
/// Scopes nest; the innermost is current.
///
/// ```
/// use http::HeaderValue;
/// use observe_core::propagation::carried::{scope, with_current, Carried};
///
/// let outer = Carried { tracestate: None, baggage: Some(HeaderValue::from_static("a=1")) };
/// let inner = Carried::default();
/// scope(&outer, || {
///     scope(&inner, || with_current(|c| assert!(c.is_empty())));
///     with_current(|c| assert_eq!(c.baggage.as_ref().unwrap(), "a=1"));
/// });
/// ```
#[inline]
pub fn scope<R>(carried: &Carried, f: impl FnOnce() -> R) -> R {
    // SAFETY: `_exit` drops at the end of this call (or while unwinding from `f`), inside the
    // borrow of `carried`.
    let _exit = unsafe { enter_scoped(Some(carried)) };
    f()
}

/// Installs a pointer to `carried` until the guard drops: [`scope`]'s mechanism, for the
/// layers, which build their futures in place while it is installed. `None` installs the
/// empty value (a request that carried nothing hides whatever an enclosing one carried).
///
/// # Safety
///
/// The guard must be dropped, not forgotten, before `carried` is moved or dropped: keep it in a
/// local declared after the value it points at.
#[inline]
pub(crate) unsafe fn enter_scoped(carried: Option<&Carried>) -> ScopeExit {
    let carried = carried.map_or(std::ptr::null(), |c| c as *const Carried);
    ScopeExit {
        previous: CARRIED.with(|c| c.replace(carried)),
    }
}

/// Restores the previously installed headers when dropped.
pub(crate) struct ScopeExit {
    previous: *const Carried,
}

impl Drop for ScopeExit {
    #[inline]
    fn drop(&mut self) {
        CARRIED.with(|c| c.set(self.previous));
    }
}

/// Runs `f` with the current request's propagated headers (empty outside a request).
///
/// ```
/// use observe_core::propagation::carried::with_current;
/// assert!(with_current(|c| c.is_empty()));
/// ```
#[inline]
pub fn with_current<R>(f: impl FnOnce(&Carried) -> R) -> R {
    let current = CARRIED.with(Cell::get);
    if current.is_null() {
        f(&EMPTY)
    } else {
        // SAFETY: non-null only while the scope borrowing the pointee runs (see `CARRIED`).
        f(unsafe { &*current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baggage(value: &'static str) -> Carried {
        Carried {
            tracestate: None,
            baggage: Some(HeaderValue::from_static(value)),
        }
    }

    fn current_baggage() -> Option<HeaderValue> {
        with_current(|c| c.baggage.clone())
    }

    #[test]
    fn scopes_nest_and_restore() {
        let (a, b) = (baggage("a=1"), baggage("b=2"));
        assert_eq!(current_baggage(), None);
        scope(&a, || {
            assert_eq!(current_baggage().unwrap(), "a=1");
            scope(&b, || assert_eq!(current_baggage().unwrap(), "b=2"));
            assert_eq!(current_baggage().unwrap(), "a=1");
        });
        assert_eq!(current_baggage(), None);
    }

    #[test]
    fn scope_is_left_when_the_closure_panics() {
        let a = baggage("a=1");
        let caught = std::panic::catch_unwind(|| scope(&a, || panic!("inside the scope")));
        assert!(caught.is_err());
        assert_eq!(current_baggage(), None);
    }
}
