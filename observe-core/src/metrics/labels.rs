//! Label values for the RED instruments: small `Copy` types, so that looking up a series for a
//! label set never allocates.
//!
//! Free-form values (HTTP route templates, gRPC method names, upstream host names) are interned
//! once (the string and a hash of it). The interner is bounded: past [`MAX_INTERNED`] distinct strings per
//! kind (or for strings longer than [`MAX_INTERNED_LEN`] bytes) `intern` returns the `_OTHER`
//! value and counts the event in `observe_metric_overflow_total`, so a caller that mistakenly
//! interns raw paths cannot grow memory without bound.
//!
//! ```
//! use observe_core::metrics::{HttpMethod, Route};
//! assert_eq!(HttpMethod::from_bytes(b"GET").as_str(), "GET");
//! assert_eq!(HttpMethod::from_bytes(b"BREW").as_str(), "_OTHER");
//! assert_eq!(Route::intern("/users/{id}").as_str(), "/users/{id}");
//! ```

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{LazyLock, PoisonError, RwLock};

use crate::context::{RequestContext, SpanId, TraceId};

/// Distinct strings each interner (routes, RPC methods, server addresses) keeps at most.
pub const MAX_INTERNED: usize = 10_000;
/// Longest string (in bytes) that is interned; longer ones become `_OTHER`.
pub const MAX_INTERNED_LEN: usize = 512;

/// The value semantic conventions use for anything outside a known, bounded set.
pub const OTHER: &str = "_OTHER";

/// One interned value: the string and a hash of its content, both computed once.
///
/// Label sets hash and compare interned values on every request; hashing a stored `u64` and
/// comparing addresses first is what keeps that lookup from reading the route's bytes.
#[derive(Debug)]
pub(crate) struct Interned {
    s: &'static str,
    hash: u64,
}

impl Interned {
    fn new(s: &'static str) -> Self {
        Interned {
            s,
            hash: content_hash(s),
        }
    }
}

/// The hash of `_OTHER`: fixed, so that [`OTHER_INTERNED`] can be a `static` (and
/// `Route::OTHER` a constant). Interning `"_OTHER"` returns that record itself.
const OTHER_HASH: u64 = 0x5f4f_5448_4552_0000;

/// A hash of `s` with a seed drawn once per process, so that nobody can choose strings that
/// collide (a host name from a user-supplied URL, say) and turn series lookups into long
/// probes. Equal strings always get the same hash, `_OTHER` included.
fn content_hash(s: &str) -> u64 {
    static SEEDED: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);
    if s == OTHER {
        return OTHER_HASH;
    }
    SEEDED.hash_one(s)
}

/// `_OTHER`, for every interned kind.
static OTHER_INTERNED: Interned = Interned {
    s: OTHER,
    hash: OTHER_HASH,
};

struct Interner {
    // foldhash rather than SipHash: this lookup runs on every request, and the set is bounded
    // (MAX_INTERNED) and filled from route templates, not from attacker-chosen strings.
    map: RwLock<HashMap<&'static str, &'static Interned, foldhash::fast::RandomState>>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            map: RwLock::new(HashMap::default()),
        }
    }

    /// The interned copy of `s`, or `None` when the interner is full or `s` is too long.
    fn intern(&self, s: &str) -> Option<&'static Interned> {
        if s.len() > MAX_INTERNED_LEN {
            return None;
        }
        if s == OTHER {
            return Some(&OTHER_INTERNED);
        }
        if let Some(found) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(s)
        {
            return Some(found);
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = map.get(s) {
            return Some(found);
        }
        if map.len() >= MAX_INTERNED {
            return None;
        }
        // Leaked on purpose: an interned value lives as long as the process, and the map
        // bounds how many there can be.
        let leaked: &'static str = Box::leak(Box::<str>::from(s));
        let interned: &'static Interned = Box::leak(Box::new(Interned::new(leaked)));
        map.insert(leaked, interned);
        Some(interned)
    }

    fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn intern_or_other(interner: &Interner, s: &str) -> &'static Interned {
    match interner.intern(s) {
        Some(v) => v,
        None => {
            crate::counters::METRIC_OVERFLOW.inc();
            &OTHER_INTERNED
        }
    }
}

/// Slots of the per-thread cache in front of each interner.
const CACHE_SLOTS: usize = 16;

/// A per-thread, direct-mapped cache in front of an interner, indexed by the address of the
/// string being interned and checked by content.
///
/// Frameworks hand every request of a route the same template from one allocation (axum's
/// `MatchedPath` is an `Arc<str>` cloned per request), so its address finds the slot without
/// hashing the bytes or taking the interner's lock. Comparing the bytes means a reused address
/// or two strings sharing a slot can cost a miss, never a wrong value.
struct LocalCache([Cell<Option<&'static Interned>>; CACHE_SLOTS]);

impl LocalCache {
    const fn new() -> Self {
        LocalCache([const { Cell::new(None) }; CACHE_SLOTS])
    }

    #[inline]
    fn get_or(&self, s: &str, intern: impl FnOnce() -> &'static Interned) -> &'static Interned {
        let addr = s.as_ptr() as usize;
        let slot = &self.0[((addr >> 4) ^ (addr >> 12)) % CACHE_SLOTS];
        match slot.get() {
            Some(cached) if cached.s == s => cached,
            _ => {
                let interned = intern();
                slot.set(Some(interned));
                interned
            }
        }
    }
}

static ROUTES: LazyLock<Interner> = LazyLock::new(Interner::new);
static RPC_METHODS: LazyLock<Interner> = LazyLock::new(Interner::new);
static SERVER_ADDRESSES: LazyLock<Interner> = LazyLock::new(Interner::new);

macro_rules! interned {
    ($(#[$doc:meta])* $name:ident, $interner:ident) => {
        $(#[$doc])*
        #[derive(Copy, Clone)]
        pub struct $name(&'static Interned);

        impl $name {
            /// The `_OTHER` value.
            pub const OTHER: $name = $name(&OTHER_INTERNED);

            /// The interned value for `s`: a lookup under a read lock when `s` was seen before
            /// (no allocation), one leaked copy the first time. `_OTHER` when the interner is
            /// full or `s` is longer than [`MAX_INTERNED_LEN`].
            pub fn intern(s: &str) -> Self {
                thread_local! {
                    static CACHE: LocalCache = const { LocalCache::new() };
                }
                let slow = || intern_or_other(&$interner, s);
                $name(CACHE.try_with(|c| c.get_or(s, slow)).unwrap_or_else(|_| slow()))
            }

            /// The label value.
            #[inline]
            pub fn as_str(&self) -> &'static str {
                self.0.s
            }

            /// The interned record's address: equal addresses mean equal values (records are
            /// never freed), for identities that must not read the record.
            #[inline]
            #[allow(dead_code)]
            pub(crate) fn address(self) -> u64 {
                std::ptr::from_ref(self.0) as usize as u64
            }

            /// How many distinct values are interned (process-wide).
            pub fn interned_count() -> usize {
                $interner.len()
            }
        }

        // Equal values are almost always the same interned record: compare addresses first,
        // and hash the stored content hash, never the bytes.
        impl PartialEq for $name {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                std::ptr::eq(self.0, other.0)
                    || (self.0.hash == other.0.hash && self.0.s == other.0.s)
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            #[inline]
            fn hash<H: Hasher>(&self, state: &mut H) {
                state.write_u64(self.0.hash);
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.s.cmp(other.0.s)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0.s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.s)
            }
        }
    };
}

interned!(
    /// A matched route template (`/users/{id}`), the `http_route` label.
    ///
    /// Only ever built from the router's template, never from the raw request path: a request
    /// that matched no route has no `Route` at all (the label is then absent).
    ///
    /// ```
    /// # use observe_core::metrics::Route;
    /// let a = Route::intern("/users/{id}");
    /// assert_eq!(a, Route::intern(&String::from("/users/{id}")));
    /// assert_eq!(Route::intern(&"x".repeat(10_000)), Route::OTHER);
    /// ```
    Route,
    ROUTES
);

interned!(
    /// A fully qualified gRPC method (`pkg.Service/Method`), the `rpc_method` label.
    ///
    /// ```
    /// # use observe_core::metrics::RpcMethod;
    /// assert_eq!(RpcMethod::intern("helloworld.Greeter/SayHello").as_str(), "helloworld.Greeter/SayHello");
    /// assert_eq!(RpcMethod::OTHER.as_str(), "_OTHER");
    /// ```
    RpcMethod,
    RPC_METHODS
);

impl RpcMethod {
    /// The method from a gRPC request path (`/pkg.Service/Method`): the leading `/` is dropped;
    /// anything that is not `service/method` becomes `_OTHER`.
    ///
    /// ```
    /// # use observe_core::metrics::RpcMethod;
    /// assert_eq!(RpcMethod::from_path("/pkg.Svc/Do").as_str(), "pkg.Svc/Do");
    /// assert_eq!(RpcMethod::from_path("/nonsense"), RpcMethod::OTHER);
    /// ```
    pub fn from_path(path: &str) -> Self {
        let p = path.strip_prefix('/').unwrap_or(path);
        match p.split_once('/') {
            Some((svc, m)) if !svc.is_empty() && !m.is_empty() && !m.contains('/') => {
                Self::intern(p)
            }
            _ => Self::OTHER,
        }
    }
}

interned!(
    /// The host a client called (`server_address`, host only: no port, no user info).
    ///
    /// ```
    /// # use observe_core::metrics::ServerAddress;
    /// assert_eq!(ServerAddress::intern("api.example.com").as_str(), "api.example.com");
    /// ```
    ServerAddress,
    SERVER_ADDRESSES
);

/// The `http_request_method` label: the nine standard methods, `_OTHER` for anything else.
///
/// ```
/// # use observe_core::metrics::HttpMethod;
/// assert_eq!(HttpMethod::from(&http::Method::PATCH), HttpMethod::Patch);
/// assert_eq!(HttpMethod::from(&http::Method::from_bytes(b"PURGE").unwrap()), HttpMethod::Other);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    /// Any non-standard method, exposed as `_OTHER`.
    Other,
}

impl HttpMethod {
    /// Every value, in label order.
    pub const ALL: [HttpMethod; 10] = [
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Delete,
        HttpMethod::Connect,
        HttpMethod::Options,
        HttpMethod::Trace,
        HttpMethod::Patch,
        HttpMethod::Other,
    ];

    /// The method from its token (case-sensitive, as HTTP methods are).
    pub fn from_bytes(b: &[u8]) -> Self {
        match b {
            b"GET" => HttpMethod::Get,
            b"HEAD" => HttpMethod::Head,
            b"POST" => HttpMethod::Post,
            b"PUT" => HttpMethod::Put,
            b"DELETE" => HttpMethod::Delete,
            b"CONNECT" => HttpMethod::Connect,
            b"OPTIONS" => HttpMethod::Options,
            b"TRACE" => HttpMethod::Trace,
            b"PATCH" => HttpMethod::Patch,
            _ => HttpMethod::Other,
        }
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Connect => "CONNECT",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Other => OTHER,
        }
    }
}

impl From<&http::Method> for HttpMethod {
    // Compares `http`'s own enum (one tag comparison for a standard method) instead of
    // matching the method's text; extension methods fall through to `_OTHER` either way.
    #[inline]
    fn from(m: &http::Method) -> Self {
        use http::Method;
        if *m == Method::GET {
            HttpMethod::Get
        } else if *m == Method::POST {
            HttpMethod::Post
        } else if *m == Method::PUT {
            HttpMethod::Put
        } else if *m == Method::DELETE {
            HttpMethod::Delete
        } else if *m == Method::PATCH {
            HttpMethod::Patch
        } else if *m == Method::HEAD {
            HttpMethod::Head
        } else if *m == Method::OPTIONS {
            HttpMethod::Options
        } else if *m == Method::CONNECT {
            HttpMethod::Connect
        } else if *m == Method::TRACE {
            HttpMethod::Trace
        } else {
            HttpMethod::Other
        }
    }
}

/// The `url_scheme` label.
///
/// ```
/// # use observe_core::metrics::UrlScheme;
/// assert_eq!(UrlScheme::from_bytes(b"https").as_str(), "https");
/// assert_eq!(UrlScheme::from_bytes(b"gopher"), UrlScheme::Http);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Default)]
pub enum UrlScheme {
    /// `http` (also the fallback: a server that sees no scheme is plain HTTP).
    #[default]
    Http,
    /// `https`.
    Https,
}

impl UrlScheme {
    /// Every value, in label order.
    pub const ALL: [UrlScheme; 2] = [UrlScheme::Http, UrlScheme::Https];

    /// `https` (ASCII case-insensitive) is [`UrlScheme::Https`]; anything else is `Http`.
    pub fn from_bytes(b: &[u8]) -> Self {
        if b.eq_ignore_ascii_case(b"https") {
            UrlScheme::Https
        } else {
            UrlScheme::Http
        }
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            UrlScheme::Http => "http",
            UrlScheme::Https => "https",
        }
    }
}

/// The `error_type` label: why a request failed. Low cardinality by construction.
///
/// For HTTP, a response with a failing status and no other error gets `error_type` set to the
/// status code (`"500"`) automatically, as semantic conventions ask (servers: 5xx; clients:
/// 4xx and 5xx). For gRPC it is the status code name (`"UNAVAILABLE"`).
///
/// ```
/// # use observe_core::metrics::ErrorType;
/// assert_eq!(ErrorType::Cancelled.to_string(), "cancelled");
/// assert_eq!(ErrorType::Status(503).to_string(), "503");
/// assert_eq!(ErrorType::Named("hyper::Error").to_string(), "hyper::Error");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ErrorType {
    /// The request's future was dropped before a response was produced (the client went away,
    /// or a timeout layer above cancelled it): `cancelled`.
    Cancelled,
    /// A timeout fired: `timeout`.
    Timeout,
    /// The failing HTTP status code itself, e.g. `500`.
    Status(u16),
    /// A failing gRPC status, by name, e.g. `UNAVAILABLE`.
    Grpc(GrpcCode),
    /// A low-cardinality identifier chosen by the instrumentation, such as an error's type name.
    Named(&'static str),
    /// `_OTHER`.
    Other,
}

impl ErrorType {
    /// `error` in 24 bits for a label set's cache identity (a tag and the code), equal only
    /// for equal values; `None` for a `Named` error, whose text is compared by content.
    #[inline]
    pub(crate) fn packed(error: Option<ErrorType>) -> Option<u64> {
        let (tag, value) = match error {
            None => (0, 0),
            Some(ErrorType::Cancelled) => (1, 0),
            Some(ErrorType::Timeout) => (2, 0),
            Some(ErrorType::Status(code)) => (3, u64::from(code)),
            Some(ErrorType::Grpc(code)) => (4, code as u64),
            Some(ErrorType::Other) => (5, 0),
            Some(ErrorType::Named(_)) => return None,
        };
        Some(tag | value << 8)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorType::Cancelled => f.write_str("cancelled"),
            ErrorType::Timeout => f.write_str("timeout"),
            ErrorType::Status(s) => f.write_str(itoa::Buffer::new().format(*s)),
            ErrorType::Grpc(c) => f.write_str(c.as_str()),
            ErrorType::Named(n) => f.write_str(n),
            ErrorType::Other => f.write_str(OTHER),
        }
    }
}

/// A gRPC status code (0..=16), exposed by name in `rpc_response_status_code`.
///
/// ```
/// # use observe_core::metrics::GrpcCode;
/// assert_eq!(GrpcCode::from_i32(5).as_str(), "NOT_FOUND");
/// assert_eq!(GrpcCode::from_i32(99), GrpcCode::Unknown);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a number; anything outside 0..=16 is `UNKNOWN` (as gRPC itself maps it).
    pub fn from_i32(code: i32) -> Self {
        use GrpcCode::*;
        match code {
            0 => Ok,
            1 => Cancelled,
            2 => Unknown,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The code from a `grpc-status` header value (ASCII decimal); `UNKNOWN` when malformed.
    pub fn from_bytes(b: &[u8]) -> Self {
        if b.is_empty() || b.len() > 2 || !b.iter().all(u8::is_ascii_digit) {
            return GrpcCode::Unknown;
        }
        let n = b.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
        Self::from_i32(n)
    }

    /// The numeric code.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The canonical name, e.g. `DEADLINE_EXCEEDED`.
    pub const fn as_str(self) -> &'static str {
        use GrpcCode::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether a server reports this code as an error (semantic conventions: `UNKNOWN`,
    /// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`). A client
    /// treats every code but `OK` as an error.
    pub const fn is_server_error(self) -> bool {
        use GrpcCode::*;
        matches!(
            self,
            Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
        )
    }
}

/// The trace and span of a sampled request, attached to the histogram bucket its duration
/// landed in (OpenMetrics exemplars `{trace_id="…",span_id="…"}`: 63 characters, well inside
/// the 128-character limit).
///
/// ```
/// # use observe_core::context::RequestContext;
/// # use observe_core::metrics::Exemplar;
/// let sampled = RequestContext::new_root(true);
/// assert!(Exemplar::from_context(&sampled).is_some());
/// assert!(Exemplar::from_context(&RequestContext::new_root(false)).is_none());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Exemplar {
    /// The sampled request's trace.
    pub trace_id: TraceId,
    /// The request's span.
    pub span_id: SpanId,
}

impl Exemplar {
    /// The exemplar for a request context: `Some` only when it is sampled (an exemplar must
    /// point at a trace that was actually exported).
    pub fn from_context(cx: &RequestContext) -> Option<Exemplar> {
        cx.flags.is_sampled().then_some(Exemplar {
            trace_id: cx.trace_id,
            span_id: cx.span_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `From<&Method>` compares `http`'s enum; it must agree with the text match for every
    /// standard method and send extension methods (any case) to `_OTHER`.
    #[test]
    fn method_from_http_agrees_with_from_bytes() {
        use http::Method;
        for m in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ] {
            let ours = HttpMethod::from(&m);
            assert_ne!(ours, HttpMethod::Other, "{m}");
            assert_eq!(ours, HttpMethod::from_bytes(m.as_str().as_bytes()));
            assert_eq!(ours.as_str(), m.as_str());
        }
        for ext in ["get", "PURGE", "GETX", "A-VERY-LONG-EXTENSION-METHOD-NAME"] {
            let m = Method::from_bytes(ext.as_bytes()).unwrap();
            assert_eq!(HttpMethod::from(&m), HttpMethod::Other, "{ext}");
        }
    }

    /// Equal content means equal values and equal hashes, whichever record holds it: the
    /// `_OTHER` constant, an interned `"_OTHER"`, and the overflow value are one label value.
    #[test]
    fn equality_and_hash_follow_content() {
        let hasher = foldhash::fast::RandomState::default();
        assert_eq!(Route::intern(OTHER), Route::OTHER);
        assert_eq!(
            Route::intern(&"x".repeat(MAX_INTERNED_LEN + 1)),
            Route::OTHER
        );
        let a = Route::intern("/eq-test/{id}");
        let b = Route::intern(&String::from("/eq-test/{id}"));
        assert_eq!(a, b);
        assert_eq!(hasher.hash_one(a), hasher.hash_one(b));
        // Two records with the same content (interning never makes them, but equality and
        // hashing must not depend on it), `_OTHER` included.
        let twin = Route(Box::leak(Box::new(Interned::new(Box::leak(
            String::from("/eq-test/{id}").into_boxed_str(),
        )))));
        assert_eq!(a, twin);
        assert_eq!(hasher.hash_one(a), hasher.hash_one(twin));
        let other_twin = Route(Box::leak(Box::new(Interned::new(Box::leak(
            String::from(OTHER).into_boxed_str(),
        )))));
        assert_eq!(other_twin, Route::OTHER);
        assert_eq!(hasher.hash_one(other_twin), hasher.hash_one(Route::OTHER));
        assert_ne!(a, Route::intern("/eq-test/{other}"));
        assert!(Route::intern("/a") < Route::intern("/b"));
    }

    /// The per-thread cache is found by address: the same buffer holding another template
    /// (an address reused after a router is dropped, say) must give the other template.
    #[test]
    fn cache_checks_content_not_just_address() {
        let mut buf = String::from("/cache-test/a");
        let a = Route::intern(&buf);
        assert_eq!(a.as_str(), "/cache-test/a");
        buf.replace_range(12.., "b"); // same allocation, new content
        let b = Route::intern(&buf);
        assert_eq!(b.as_str(), "/cache-test/b");
        assert_eq!(Route::intern("/cache-test/a"), a);
        // Many distinct strings share the 16 slots: every answer is still its own string.
        let many: Vec<String> = (0..200).map(|i| format!("/cache-test/{i}")).collect();
        for _ in 0..3 {
            for s in &many {
                assert_eq!(Route::intern(s).as_str(), s);
            }
        }
    }
}
