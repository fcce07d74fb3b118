//! The request's trace context and how it follows a request's future.
//!
//! [`RequestContext`] is a small `Copy` value (trace id, span id, flags). The HTTP and gRPC
//! server layers install it in a thread-local on every `poll` of the request's future and
//! restore the previous value afterwards — the way `tracing::Instrumented` enters its span — so
//! anything running inside the request (the JSON log layer, the client layers) can read it
//! without allocation and whether or not the request is sampled.
//!
//! ```
//! use observe_core::context::{RequestContext, TraceId, SpanId, TraceFlags};
//!
//! let cx = RequestContext::new(
//!     TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
//!     SpanId::from_hex("00f067aa0ba902b7").unwrap(),
//!     TraceFlags::SAMPLED,
//! );
//! assert!(RequestContext::current().is_none());
//! {
//!     let _entered = cx.enter();
//!     assert_eq!(RequestContext::current(), Some(cx));
//! }
//! assert!(RequestContext::current().is_none());
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decodes exactly `2 * N` lowercase hex digits into `N` bytes (`N` a multiple of 8, as the
/// 16-byte trace id and 8-byte span id are). W3C Trace Context allows only lowercase hex, so
/// uppercase is rejected here.
#[inline]
fn decode_lower_hex<const N: usize>(src: &[u8]) -> Option<[u8; N]> {
    const { assert!(N.is_multiple_of(8)) };
    if src.len() != N * 2 {
        return None;
    }
    // Every incoming traceparent decodes 48 hex digits, so this is on the request path: sixteen
    // digits at a time (SSE2, on every x86-64) or eight (in a u64 elsewhere) rather than one.
    let mut out = [0u8; N];
    for (digits, bytes) in src.chunks_exact(16).zip(out.chunks_exact_mut(8)) {
        let digits: &[u8; 16] = digits.try_into().expect("16 digits");
        bytes.copy_from_slice(&decode_hex16(digits)?);
    }
    Some(out)
}

/// Sixteen lowercase hex digits to eight bytes, or `None` if any digit is not `[0-9a-f]`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn decode_hex16(digits: &[u8; 16]) -> Option<[u8; 8]> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads exactly the 16 bytes
    // of `digits` (unaligned load allowed).
    unsafe {
        let v = _mm_loadu_si128(digits.as_ptr().cast());
        let between = |lo: u8, hi: u8| {
            // Signed compares: bytes >= 0x80 are negative, so never in a range here.
            _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8((lo - 1) as i8)),
                _mm_cmplt_epi8(v, _mm_set1_epi8((hi + 1) as i8)),
            )
        };
        let digit = between(b'0', b'9');
        let letter = between(b'a', b'f');
        if _mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xffff {
            return None;
        }
        // '0'..'9' have their value in the low nibble; 'a'..'f' have 1..6 there, so add 9.
        let nibbles = _mm_add_epi8(
            _mm_and_si128(v, _mm_set1_epi8(0x0f)),
            _mm_and_si128(letter, _mm_set1_epi8(9)),
        );
        // Each 16-bit lane holds (high digit, low digit): make its low byte `high << 4 | low`,
        // then pack the eight low bytes.
        let pairs = _mm_and_si128(
            _mm_or_si128(_mm_slli_epi16(nibbles, 4), _mm_srli_epi16(nibbles, 8)),
            _mm_set1_epi16(0x00ff),
        );
        let packed = _mm_packus_epi16(pairs, pairs);
        Some((_mm_cvtsi128_si64(packed) as u64).to_le_bytes())
    }
}

/// Sixteen lowercase hex digits to eight bytes, eight digits at a time in a u64.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn decode_hex16(digits: &[u8; 16]) -> Option<[u8; 8]> {
    let (a, b) = digits.split_at(8);
    let a = decode_hex8(u64::from_le_bytes(a.try_into().expect("8 digits")))?;
    let b = decode_hex8(u64::from_le_bytes(b.try_into().expect("8 digits")))?;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&a.to_le_bytes());
    out[4..].copy_from_slice(&b.to_le_bytes());
    Some(out)
}

/// Decodes eight lowercase hex digits (little-endian in `word`, first digit in the low byte)
/// into four bytes (first byte in the low byte), or `None` if any digit is not `[0-9a-f]`.
///
/// SWAR: with every byte below 0x80, adding `0x80 - n` to each byte sets its top bit exactly
/// when the byte is `>= n`, and no carry crosses into the next byte.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))] // tested on every target
#[inline]
fn decode_hex8(word: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if word & HIGH != 0 {
        return None;
    }
    let at_least = |n: u64| word.wrapping_add((0x80 - n) * ONES) & HIGH;
    let digit = at_least(b'0' as u64) & !at_least(b'9' as u64 + 1);
    let letter = at_least(b'a' as u64) & !at_least(b'f' as u64 + 1);
    if digit | letter != HIGH {
        return None;
    }
    // '0'..'9' have their value in the low nibble; 'a'..'f' have 1..6 there, so add 9.
    let nibbles = (word & (0x0f * ONES)) + (letter >> 7) * 9;
    // Each 16-bit lane holds (high digit, low digit): make its low byte `high << 4 | low`.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let packed = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    Some((packed | (packed >> 16)) as u32)
}

/// Every byte's two lowercase hex digits: a log line writes 24 bytes of ids as hex, so one
/// lookup per byte rather than two nibble lookups and shifts.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    t
};

fn encode_lower_hex(src: &[u8], out: &mut [u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(src) {
        pair.copy_from_slice(&HEX_PAIRS[b as usize]);
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The all-zero id, which W3C Trace Context defines as invalid.
            pub const INVALID: Self = Self([0; $len]);

            /// `true` unless every byte is zero.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// Parses exactly the lowercase hex form (no prefix, no separators).
            pub fn from_hex(hex: &str) -> Option<Self> {
                Self::from_hex_bytes(hex.as_bytes())
            }

            /// Like [`Self::from_hex`], on bytes.
            #[inline]
            pub fn from_hex_bytes(hex: &[u8]) -> Option<Self> {
                decode_lower_hex::<$len>(hex).map(Self)
            }

            /// Writes the lowercase hex form into a stack buffer; no allocation.
            pub fn to_hex(&self) -> [u8; $len * 2] {
                let mut out = [0u8; $len * 2];
                encode_lower_hex(&self.0, &mut out);
                out
            }

            /// A random, valid id from a thread-local generator; no allocation, no syscall.
            #[inline]
            pub fn random() -> Self {
                loop {
                    let mut out = [0u8; $len];
                    for chunk in out.chunks_mut(8) {
                        let r = fastrand::u64(..).to_le_bytes();
                        chunk.copy_from_slice(&r[..chunk.len()]);
                    }
                    let id = Self(out);
                    if id.is_valid() {
                        return id;
                    }
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hex = self.to_hex();
                // The buffer holds only ASCII hex digits.
                f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
    };
}

id_type!(
    /// A 16-byte W3C trace id.
    ///
    /// ```
    /// # use observe_core::context::TraceId;
    /// let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    /// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
    /// ```
    TraceId,
    16
);
id_type!(
    /// An 8-byte W3C span id (the `parent-id` field of `traceparent`).
    ///
    /// ```
    /// # use observe_core::context::SpanId;
    /// assert!(!SpanId::INVALID.is_valid());
    /// assert!(SpanId::random().is_valid());
    /// ```
    SpanId,
    8
);

impl From<TraceId> for opentelemetry::trace::TraceId {
    fn from(id: TraceId) -> Self {
        opentelemetry::trace::TraceId::from_bytes(id.0)
    }
}
impl From<opentelemetry::trace::TraceId> for TraceId {
    fn from(id: opentelemetry::trace::TraceId) -> Self {
        TraceId(id.to_bytes())
    }
}
impl From<SpanId> for opentelemetry::trace::SpanId {
    fn from(id: SpanId) -> Self {
        opentelemetry::trace::SpanId::from_bytes(id.0)
    }
}
impl From<opentelemetry::trace::SpanId> for SpanId {
    fn from(id: opentelemetry::trace::SpanId) -> Self {
        SpanId(id.to_bytes())
    }
}

/// The `trace-flags` byte of W3C Trace Context.
///
/// ```
/// # use observe_core::context::TraceFlags;
/// let f = TraceFlags::new(0x03);
/// assert!(f.is_sampled() && f.is_random());
/// assert!(!TraceFlags::default().is_sampled());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// Bit 0: the caller may have recorded this trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// Bit 1 (Trace Context level 2): the trace id's rightmost 7 bytes are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);

    /// Wraps the raw byte.
    pub const fn new(bits: u8) -> Self {
        TraceFlags(bits)
    }
    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// The sampled bit.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// The random bit (level 2).
    pub const fn is_random(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// These flags with the sampled bit set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            TraceFlags(self.0 | 0x01)
        } else {
            TraceFlags(self.0 & !0x01)
        }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

/// The trace context of the request being handled: `Copy`, 32 bytes, no heap.
///
/// `span_id` is this service's span for the request (the server span when sampled, or an id
/// generated for log correlation when not), so log lines and outgoing `traceparent` headers
/// carry the same ids that an exported span would.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct RequestContext {
    /// The trace this request belongs to.
    pub trace_id: TraceId,
    /// This service's span for the request.
    pub span_id: SpanId,
    /// The flags this service propagates downstream.
    pub flags: TraceFlags,
}

/// The thread's installed contexts.
///
/// Two ways in, because they have different costs and different guarantees:
///
/// - [`RequestContext::scope`] (and [`RequestContext::in_scope`], and the layers' futures)
///   installs a *pointer* to a context for the duration of a closure. Entering and leaving
///   stores two words, where copying the context in and out would move 26 bytes each way,
///   twice per request. The closure bounds the pointer's life: it cannot outlive the borrow,
///   even if the closure panics.
/// - [`RequestContext::enter`] installs a *copy* behind a guard the caller holds, which may be
///   moved, kept or forgotten, so no pointer to it can be installed.
///
/// Each installation takes a fresh stamp; the most recent of the two is current. A guard or
/// scope restores what it replaced, stamp included, so nesting the two in any order unwinds
/// to the right context.
struct Installed {
    scoped: Cell<*const RequestContext>,
    scoped_stamp: Cell<u64>,
    value: Cell<Option<RequestContext>>,
    value_stamp: Cell<u64>,
    next_stamp: Cell<u64>,
}

impl Installed {
    #[inline]
    fn stamp(&self) -> u64 {
        let stamp = self.next_stamp.get() + 1;
        self.next_stamp.set(stamp);
        stamp
    }

    #[inline]
    fn current(&self) -> Option<RequestContext> {
        let scoped = self.scoped.get();
        if !scoped.is_null() && self.scoped_stamp.get() > self.value_stamp.get() {
            // SAFETY: `scoped` is non-null only inside `RequestContext::scope`, which borrows
            // the context for the whole call and restores the previous pointer on the way out
            // (on unwind too), or while a layer's `enter_scoped` guard lives, which its caller
            // keeps inside the borrow; so it points at a live context.
            Some(unsafe { *scoped })
        } else {
            self.value.get()
        }
    }
}

thread_local! {
    static CURRENT: Installed = const {
        Installed {
            scoped: Cell::new(std::ptr::null()),
            scoped_stamp: Cell::new(0),
            value: Cell::new(None),
            value_stamp: Cell::new(0),
            next_stamp: Cell::new(0),
        }
    };
}

/// Puts the previous scoped pointer back when dropped: when `RequestContext::scope` returns or
/// unwinds, or where a layer's `enter_scoped` guard goes out of scope.
pub(crate) struct ScopeExit {
    scoped: *const RequestContext,
    stamp: u64,
}

impl Drop for ScopeExit {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.scoped.set(self.scoped);
            c.scoped_stamp.set(self.stamp);
        });
    }
}

impl RequestContext {
    /// A context from its parts.
    pub const fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        RequestContext {
            trace_id,
            span_id,
            flags,
        }
    }

    /// A new root context: random trace and span ids, the random flag set (level 2).
    ///
    /// ```
    /// # use observe_core::context::RequestContext;
    /// let cx = RequestContext::new_root(false);
    /// assert!(cx.trace_id.is_valid() && !cx.is_sampled() && cx.flags.is_random());
    /// ```
    pub fn new_root(sampled: bool) -> Self {
        RequestContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: TraceFlags::RANDOM.with_sampled(sampled),
        }
    }

    /// A context for a new span in the same trace: same trace id, a fresh span id.
    pub fn new_child(&self, sampled: bool) -> Self {
        RequestContext {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            flags: self.flags.with_sampled(sampled),
        }
    }

    /// Whether this request is sampled (its spans are recorded and exported).
    pub const fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The context installed on this thread by the enclosing request, if any.
    #[inline]
    pub fn current() -> Option<RequestContext> {
        CURRENT.with(Installed::current)
    }

    /// Installs this context on the current thread until the guard drops, restoring the
    /// previous one then. Guards nest, with each other and with [`scope`](Self::scope).
    ///
    /// Prefer [`scope`](Self::scope) where the work fits in a closure: it installs a pointer
    /// rather than a copy.
    ///
    /// ```
    /// use observe_core::context::RequestContext;
    /// let cx = RequestContext::new_root(false);
    /// let entered = cx.enter();
    /// assert_eq!(RequestContext::current(), Some(cx));
    /// drop(entered);
    /// assert_eq!(RequestContext::current(), None);
    /// ```
    #[inline]
    pub fn enter(self) -> EnteredContext {
        let (previous, previous_stamp) = CURRENT.with(|c| {
            let stamp = c.stamp();
            (c.value.replace(Some(self)), c.value_stamp.replace(stamp))
        });
        EnteredContext {
            previous,
            previous_stamp,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Runs `f` with this context installed, the context borrowed rather than copied.
    ///
    /// This is how the layers install a request's context around each `poll`.
    ///
    /// ```
    /// use observe_core::context::RequestContext;
    /// let cx = RequestContext::new_root(true);
    /// let seen = cx.scope(RequestContext::current);
    /// assert_eq!(seen, Some(cx));
    /// assert_eq!(RequestContext::current(), None);
    /// ```
    #[inline]
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `_exit` is dropped at the end of this call (or while unwinding from `f`),
        // inside the borrow of `self`.
        let _exit = unsafe { self.enter_scoped() };
        f()
    }

    /// Installs a pointer to this context until the returned guard drops: [`scope`]'s
    /// mechanism, for callers that must build a value in place while it is installed (a
    /// closure would return it by value, and the layers' futures are hundreds of bytes).
    ///
    /// # Safety
    ///
    /// The guard must be dropped, not forgotten, before `self` is moved or dropped: keep it in
    /// a local declared after the context's.
    ///
    /// [`scope`]: Self::scope
    #[inline]
    pub(crate) unsafe fn enter_scoped(&self) -> ScopeExit {
        CURRENT.with(|c| {
            let stamp = c.stamp();
            ScopeExit {
                scoped: c.scoped.replace(self),
                stamp: c.scoped_stamp.replace(stamp),
            }
        })
    }

    /// Runs `f` with this context installed (as [`scope`](Self::scope), by value).
    ///
    /// ```
    /// use observe_core::context::RequestContext;
    /// let cx = RequestContext::new_root(false);
    /// assert_eq!(cx.in_scope(RequestContext::current), Some(cx));
    /// ```
    #[inline]
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        self.scope(f)
    }
}

/// Restores the previously installed context when dropped. Returned by [`RequestContext::enter`].
///
/// It is `!Send`: a context entered on one thread must be left on that thread.
#[must_use = "the context is left as soon as the guard drops"]
pub struct EnteredContext {
    previous: Option<RequestContext>,
    previous_stamp: u64,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnteredContext {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.value.set(self.previous);
            c.value_stamp.set(self.previous_stamp);
        });
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with a [`RequestContext`] installed on every poll.
    ///
    /// Created by [`FutureExt::with_context`] and [`FutureExt::in_current_context`].
    #[derive(Debug)]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        cx: Option<RequestContext>,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.cx {
            Some(cx) => cx.scope(|| this.inner.poll(task)),
            None => this.inner.poll(task),
        }
    }
}

/// Carries a [`RequestContext`] into futures, as `tracing`'s `Instrument` does for spans.
///
/// ```
/// use observe_core::context::{FutureExt, RequestContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = RequestContext::new_root(false);
/// let _entered = cx.enter();
/// // A spawned task runs on any thread; carry the request's context explicitly.
/// let seen = tokio::spawn(async { RequestContext::current() }.in_current_context())
///     .await
///     .unwrap();
/// assert_eq!(seen, Some(cx));
/// # }
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs this future with `cx` installed on every poll.
    fn with_context(self, cx: RequestContext) -> WithContext<Self> {
        WithContext {
            inner: self,
            cx: Some(cx),
        }
    }

    /// Runs this future with the caller's current context (if any) installed on every poll.
    fn in_current_context(self) -> WithContext<Self> {
        WithContext {
            inner: self,
            cx: RequestContext::current(),
        }
    }
}

impl<F: Future> FutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(&id.to_hex(), b"0af7651916cd43dd8448eb211c80319c");
        assert!(TraceId::from_hex("0af7651916cd43dd8448eb211c80319").is_none());
        assert!(TraceId::from_hex("0af7651916cd43dd8448eb211c80319g").is_none());
        assert!(SpanId::from_hex("00f067aa0ba902b7").unwrap().is_valid());
        assert!(!SpanId::from_hex("0000000000000000").unwrap().is_valid());
    }

    fn decode_hex_nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }

    /// The byte-at-a-time decoder the SWAR one must agree with.
    fn decode_scalar(src: &[u8]) -> Option<Vec<u8>> {
        src.chunks_exact(2)
            .map(|p| Some((decode_hex_nibble(p[0])? << 4) | decode_hex_nibble(p[1])?))
            .collect()
    }

    /// Puts every byte value at every position of `digits` and checks `decode` against the
    /// scalar decoder: same bytes for valid hex, `None` for anything else.
    fn agrees_with_scalar_everywhere(digits: &[u8], decode: impl Fn(&[u8]) -> Option<Vec<u8>>) {
        let valid = b"0123456789abcdef";
        for pos in 0..digits.len() {
            for byte in 0..=255u8 {
                let mut d = digits.to_vec();
                d[pos] = byte;
                let got = decode(&d);
                assert_eq!(got, decode_scalar(&d), "byte {byte:#04x} at {pos}");
                assert_eq!(got.is_some(), valid.contains(&byte), "byte {byte:#04x}");
            }
        }
    }

    #[test]
    fn swar_decode_agrees_with_scalar_for_every_byte_in_every_position() {
        agrees_with_scalar_everywhere(b"0f1e2d3c", |d| {
            let word = u64::from_le_bytes(d.try_into().unwrap());
            decode_hex8(word).map(|b| b.to_le_bytes().to_vec())
        });
    }

    #[test]
    fn decode16_agrees_with_scalar_for_every_byte_in_every_position() {
        agrees_with_scalar_everywhere(b"0f1e2d3c4b5a6978", |d| {
            decode_hex16(d.try_into().unwrap()).map(|b| b.to_vec())
        });
    }

    proptest::proptest! {
        #[test]
        fn decode_agrees_with_scalar(src in proptest::collection::vec(
            proptest::prop_oneof![
                60 => proptest::sample::select(b"0123456789abcdef".to_vec()),
                1 => proptest::num::u8::ANY,
            ],
            32,
        )) {
            let got = decode_lower_hex::<16>(&src).map(|out| out.to_vec());
            proptest::prop_assert_eq!(got, decode_scalar(&src));
        }
    }

    #[test]
    fn enter_nests_and_restores() {
        let a = RequestContext::new_root(true);
        let b = a.new_child(false);
        assert_eq!(b.trace_id, a.trace_id);
        assert_ne!(b.span_id, a.span_id);
        let ga = a.enter();
        {
            let _gb = b.enter();
            assert_eq!(RequestContext::current(), Some(b));
        }
        assert_eq!(RequestContext::current(), Some(a));
        drop(ga);
        assert_eq!(RequestContext::current(), None);
    }

    #[test]
    fn scope_nests_and_restores() {
        let a = RequestContext::new_root(true);
        let b = a.new_child(false);
        a.scope(|| {
            assert_eq!(RequestContext::current(), Some(a));
            b.scope(|| assert_eq!(RequestContext::current(), Some(b)));
            assert_eq!(RequestContext::current(), Some(a));
        });
        assert_eq!(RequestContext::current(), None);
    }

    /// A guard entered inside a scope, and a scope inside a guard: whichever came last is
    /// current, and leaving it brings back the other.
    #[test]
    fn scope_and_enter_nest_in_either_order() {
        let [a, b, c] = [(); 3].map(|()| RequestContext::new_root(false));
        let ga = a.enter();
        b.scope(|| {
            assert_eq!(RequestContext::current(), Some(b));
            {
                let _gc = c.enter();
                assert_eq!(RequestContext::current(), Some(c));
            }
            assert_eq!(
                RequestContext::current(),
                Some(b),
                "the scope again, not `a`"
            );
        });
        assert_eq!(RequestContext::current(), Some(a));
        drop(ga);
        assert_eq!(RequestContext::current(), None);
    }

    /// A guard may outlive the scope it was entered in (guards are values): it stays current
    /// until dropped, and the scope's borrowed context is never read after the scope ends.
    #[test]
    fn a_guard_that_leaves_its_scope_stays_current() {
        let [a, b] = [(); 2].map(|()| RequestContext::new_root(false));
        let escaped = {
            let scoped = a;
            scoped.scope(|| b.enter())
        };
        assert_eq!(RequestContext::current(), Some(b));
        drop(escaped);
        assert_eq!(RequestContext::current(), None);
        // Forgotten, a guard leaves its value installed (as before scopes existed); no pointer
        // into a finished scope is ever left behind.
        std::mem::forget(a.scope(|| b.enter()));
        assert_eq!(RequestContext::current(), Some(b));
    }

    #[test]
    fn scope_is_left_when_the_closure_panics() {
        let a = RequestContext::new_root(true);
        let caught = std::panic::catch_unwind(|| a.scope(|| panic!("inside the scope")));
        assert!(caught.is_err());
        assert_eq!(RequestContext::current(), None);
    }

    #[test]
    fn with_context_installs_only_while_polled() {
        let cx = RequestContext::new_root(true);
        let fut = async { RequestContext::current() }.with_context(cx);
        assert_eq!(RequestContext::current(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(fut), Some(cx));
        assert_eq!(RequestContext::current(), None);
    }
}
