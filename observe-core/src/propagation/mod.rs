//! W3C `traceparent`, `tracestate` and `baggage`: parsed and written without heap allocation.
//!
//! - [`TraceParent`] parses and encodes `traceparent` (Trace Context Level 1, and the Level 2
//!   `random` flag) on stack arrays.
//! - [`TraceState`] validates and iterates a borrowed `tracestate`; [`TraceStateBuf`] is the
//!   owned form for adding this service's entry (sampled path only).
//! - [`Baggage`] validates and iterates a borrowed `baggage` with lazy percent-decoding;
//!   [`BaggageBuilder`] writes one.
//! - [`extract`] reads all three from request headers; [`inject`] writes them onward.
//! - [`W3cPropagator`] and [`W3cBaggagePropagator`] plug the same rules into OpenTelemetry.
//!
//! Bad input never fails a request: an invalid `traceparent` means "start a new trace", and an
//! invalid or oversized `tracestate`/`baggage` is dropped (never forwarded raw) and counted in
//! [`counters::PROPAGATION_INVALID`].
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use observe_core::propagation::{extract, inject};
//!
//! let mut incoming = HeaderMap::new();
//! incoming.insert("traceparent", HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
//! incoming.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
//! let extracted = extract(&incoming);
//! let parent = extracted.traceparent.expect("valid traceparent");
//!
//! let cx = parent.child_context(true);
//! let mut outgoing = HeaderMap::new();
//! inject(&cx, extracted.tracestate.as_ref(), extracted.baggage.as_ref(), &mut outgoing);
//! assert!(outgoing["traceparent"].to_str().unwrap().starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
//! assert_eq!(outgoing["tracestate"], "congo=t61rcWkgMzE");
//! ```

mod baggage;
pub mod carried;
mod propagator;
mod traceparent;
mod tracestate;

pub use baggage::{
    Baggage, BaggageBuilder, BaggageError, Member as BaggageMember, Members as BaggageMembers,
    Property as BaggageProperty, MAX_BYTES as BAGGAGE_MAX_BYTES,
    MAX_MEMBERS as BAGGAGE_MAX_MEMBERS,
};
pub use propagator::{W3cBaggagePropagator, W3cPropagator};
pub use traceparent::{TraceParent, TraceParentError, TraceParentField, TRACEPARENT_LEN};
pub use tracestate::{
    Members as TraceStateMembers, TraceState, TraceStateBuf, TraceStateError,
    LARGE_MEMBER_LEN as TRACESTATE_LARGE_MEMBER_LEN, MAX_MEMBERS as TRACESTATE_MAX_MEMBERS,
    MAX_PROPAGATED_LEN as TRACESTATE_MAX_LEN,
};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::RequestContext;
use crate::counters;
use carried::Carried;

/// The `traceparent` header name (with [`TRACESTATE`] and [`BAGGAGE`]: lowercase, as the
/// specs ask senders to use).
///
/// ```
/// assert_eq!(observe_core::propagation::TRACEPARENT.as_str(), "traceparent");
/// ```
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header name.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The `baggage` header name.
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// What [`extract`] found in a request's headers. Everything in it is validated.
///
/// ```
/// use observe_core::propagation::{extract, Extracted};
/// assert_eq!(extract(&http::HeaderMap::new()), Extracted::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The caller's trace context; `None` when absent, duplicated or invalid (start a new trace).
    pub traceparent: Option<TraceParent>,
    /// The `tracestate` to forward: a refcounted clone of the received header when it was one
    /// valid line, a rebuilt value when lines were combined or it had to be truncated, `None`
    /// when absent, empty, invalid, or there was no valid `traceparent`.
    pub tracestate: Option<HeaderValue>,
    /// The `baggage` to forward: the received header when it was one valid line within limits,
    /// otherwise the valid members that fit the limits, combined; `None` when nothing is left.
    pub baggage: Option<HeaderValue>,
}

/// `bytes` without leading and trailing spaces and tabs (HTTP's optional whitespace).
#[inline]
fn trim_ows(bytes: &[u8]) -> &[u8] {
    // Senders almost never pad: two byte checks settle it without scanning.
    match (bytes.first(), bytes.last()) {
        (Some(b' ' | b'\t'), _) | (_, Some(b' ' | b'\t')) => trim_ows_padded(bytes),
        _ => bytes,
    }
}

fn trim_ows_padded(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parses one received `traceparent` line set: exactly one line, OWS trimmed.
/// Counts anything present but unusable.
pub(crate) fn traceparent_from_lines<'a>(
    mut lines: impl Iterator<Item = &'a [u8]>,
) -> Option<TraceParent> {
    let first = lines.next()?;
    if lines.next().is_some() {
        // Two traceparents cannot both be the parent: restart the trace.
        counters::PROPAGATION_INVALID.inc();
        return None;
    }
    traceparent_one_line(first)
}

/// Parses a `traceparent` that arrived as one header line (OWS trimmed), counting it when
/// unusable. [`extract`] calls it directly for the usual single line, without the iterator.
#[inline]
fn traceparent_one_line(line: &[u8]) -> Option<TraceParent> {
    // The usual line goes straight to the one-pass parse: one that passes it starts with "00"
    // and ends with a hex digit, so it had no whitespace to trim.
    match TraceParent::parse_version_00(line) {
        Some(parsed) => Some(parsed),
        None => traceparent_one_line_otherwise(line),
    }
}

/// Any other line: trimmed, then every rule applied. Counts it when unusable.
#[cold]
#[inline(never)]
fn traceparent_one_line_otherwise(line: &[u8]) -> Option<TraceParent> {
    let parsed = TraceParent::parse_valid(trim_ows(line));
    if parsed.is_none() {
        counters::PROPAGATION_INVALID.inc();
    }
    parsed
}

/// The validated, combined, normalized tracestate of several lines, truncated to the spec's
/// 512 characters. `Err(())` when invalid (already counted), `Ok(None)` when empty.
pub(crate) fn tracestate_from_lines(lines: &[&[u8]]) -> Result<Option<TraceStateBuf>, ()> {
    let mut combined = String::new();
    for line in lines {
        let Ok(s) = std::str::from_utf8(line) else {
            counters::PROPAGATION_INVALID.inc();
            return Err(());
        };
        if !combined.is_empty() {
            combined.push(',');
        }
        combined.push_str(s);
    }
    match TraceState::parse(&combined) {
        Ok(ts) if ts.is_empty() => Ok(None),
        Ok(ts) => {
            let mut buf = ts.to_buf();
            if buf.truncate_to(TRACESTATE_MAX_LEN) > 0 {
                counters::PROPAGATION_INVALID.inc();
            }
            Ok((!buf.is_empty()).then_some(buf))
        }
        Err(_) => {
            counters::PROPAGATION_INVALID.inc();
            Err(())
        }
    }
}

/// The `tracestate` to carry when it arrived as one header line: forwarded as the same
/// refcounted bytes when valid and short enough, so nothing is allocated.
fn tracestate_one_line(line: &HeaderValue) -> Option<HeaderValue> {
    let Ok(s) = std::str::from_utf8(line.as_bytes()) else {
        counters::PROPAGATION_INVALID.inc();
        return None;
    };
    match TraceState::parse(s) {
        Ok(ts) if ts.is_empty() => None,
        Ok(ts) if ts.encoded_len() <= TRACESTATE_MAX_LEN => Some(line.clone()),
        // Too long: truncated by whole entries.
        Ok(_) => tracestate_from_lines(&[line.as_bytes()])
            .ok()
            .flatten()
            .and_then(|buf| buf.to_header_value()),
        Err(_) => {
            counters::PROPAGATION_INVALID.inc();
            None
        }
    }
}

/// The `tracestate` of several header lines, combined as RFC 9110 says.
fn tracestate_lines(headers: &HeaderMap) -> Option<HeaderValue> {
    let lines: Vec<&[u8]> = headers
        .get_all(TRACESTATE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    tracestate_from_lines(&lines)
        .ok()
        .flatten()
        .and_then(|buf| buf.to_header_value())
}

/// The sanitized `baggage` of several lines as text, counting drops.
pub(crate) fn baggage_from_lines<'a>(lines: &[&'a [u8]]) -> Option<std::borrow::Cow<'a, str>> {
    let (out, dropped) = baggage::sanitize(lines);
    if dropped {
        counters::PROPAGATION_INVALID.inc();
    }
    match out {
        baggage::Sanitized::Empty => None,
        baggage::Sanitized::Unchanged => std::str::from_utf8(lines[0])
            .ok()
            .map(std::borrow::Cow::Borrowed),
        baggage::Sanitized::Rebuilt(s) => Some(std::borrow::Cow::Owned(s)),
    }
}

/// The `baggage` to carry when it arrived as one header line (unchanged bytes when valid).
fn baggage_one_line(line: &HeaderValue) -> Option<HeaderValue> {
    let (out, dropped) = baggage::sanitize(&[line.as_bytes()]);
    if dropped {
        counters::PROPAGATION_INVALID.inc();
    }
    match out {
        baggage::Sanitized::Empty => None,
        baggage::Sanitized::Unchanged => Some(line.clone()),
        baggage::Sanitized::Rebuilt(s) => HeaderValue::from_str(&s).ok(),
    }
}

/// The `baggage` of several header lines, combined.
fn baggage_lines(headers: &HeaderMap) -> Option<HeaderValue> {
    let lines: Vec<&[u8]> = headers
        .get_all(BAGGAGE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    baggage_from_lines(&lines).and_then(|s| HeaderValue::from_str(&s).ok())
}

/// Where one propagation header was found: its first line, and whether there were more.
#[derive(Clone, Copy)]
struct Lines<'a> {
    first: Option<&'a HeaderValue>,
    more: bool,
}

impl<'a> Lines<'a> {
    const NONE: Lines<'a> = Lines {
        first: None,
        more: false,
    };

    fn of(headers: &'a HeaderMap, name: HeaderName) -> Self {
        let mut all = headers.get_all(name).iter();
        Lines {
            first: all.next(),
            more: all.next().is_some(),
        }
    }

    fn add(&mut self, value: &'a HeaderValue) {
        match self.first {
            None => self.first = Some(value),
            Some(_) => self.more = true,
        }
    }
}

/// Up to this many header lines, one pass comparing names finds the three propagation
/// headers in less work than three hashed lookups (each hashes its name byte by byte);
/// above it, the lookups win.
const SCAN_MAX_LINES: usize = 24;

/// The `traceparent`, `tracestate` and `baggage` lines of `headers`.
fn find_lines(headers: &HeaderMap) -> [Lines<'_>; 3] {
    if headers.len() > SCAN_MAX_LINES {
        return [
            Lines::of(headers, TRACEPARENT),
            Lines::of(headers, TRACESTATE),
            Lines::of(headers, BAGGAGE),
        ];
    }
    let mut found = [Lines::NONE; 3];
    for (name, value) in headers {
        // Names are stored lowercase; comparing lengths first rejects almost every header.
        let slot = match name.as_str() {
            "traceparent" => 0,
            "tracestate" => 1,
            "baggage" => 2,
            _ => continue,
        };
        found[slot].add(value);
    }
    found
}

/// Where the propagation headers are in a request: the first phase of [`extract`], which the
/// server layer splits so that a request carrying no `tracestate` or `baggage` (the usual
/// case) keeps only its `traceparent` line and one flag, and never builds, moves or stores
/// the empty values.
#[derive(Clone, Copy)]
pub(crate) struct Found<'a> {
    headers: &'a HeaderMap,
    traceparent: Lines<'a>,
    // A `tracestate` or `baggage` line exists: `carried` finds them again (rarely needed).
    others: bool,
}

impl<'a> Found<'a> {
    /// Finds the `traceparent` lines of `headers`, and whether there are others to carry.
    #[inline]
    pub(crate) fn in_headers(headers: &'a HeaderMap) -> Self {
        if headers.len() > SCAN_MAX_LINES {
            return Found {
                headers,
                traceparent: Lines::of(headers, TRACEPARENT),
                others: headers.contains_key(TRACESTATE) || headers.contains_key(BAGGAGE),
            };
        }
        let mut traceparent = Lines::NONE;
        let mut others = false;
        for (name, value) in headers {
            // Names are stored lowercase; comparing lengths first rejects almost every header.
            match name.as_str() {
                "traceparent" => traceparent.add(value),
                "tracestate" | "baggage" => others = true,
                _ => {}
            }
        }
        Found {
            headers,
            traceparent,
            others,
        }
    }

    /// The caller's trace context: `None` when absent, duplicated or invalid (counted).
    #[inline]
    pub(crate) fn traceparent(&self) -> Option<TraceParent> {
        match self.traceparent {
            Lines { first: None, .. } => None,
            Lines {
                first: Some(line),
                more: false,
            } => traceparent_one_line(line.as_bytes()),
            // Several lines: the rule for them lives in `traceparent_from_lines`.
            Lines { more: true, .. } => traceparent_from_lines(
                self.headers
                    .get_all(TRACEPARENT)
                    .iter()
                    .map(HeaderValue::as_bytes),
            ),
        }
    }

    /// The validated `tracestate` (only with a valid `traceparent`, as the spec requires) and
    /// `baggage` to forward; `None`, settled without a call, when the request has no line of
    /// either (the usual case). Invalid values are dropped and counted.
    #[inline]
    pub(crate) fn carried(&self, traceparent_valid: bool) -> Option<Carried> {
        self.others.then(|| self.validate_others(traceparent_valid))
    }

    #[inline(never)]
    fn validate_others(&self, traceparent_valid: bool) -> Carried {
        let [_, tracestate, baggage] = find_lines(self.headers);
        // "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate."
        let tracestate = match tracestate {
            Lines { first: None, .. } => None,
            _ if !traceparent_valid => None,
            Lines { more: true, .. } => tracestate_lines(self.headers),
            Lines {
                first: Some(line), ..
            } => tracestate_one_line(line),
        };
        let baggage = match baggage {
            Lines { first: None, .. } => None,
            Lines { more: true, .. } => baggage_lines(self.headers),
            Lines {
                first: Some(line), ..
            } => baggage_one_line(line),
        };
        Carried {
            tracestate,
            baggage,
        }
    }
}

/// Reads `traceparent`, `tracestate` and `baggage` from request headers.
///
/// Never fails: an absent, duplicated or invalid `traceparent` gives `None` (the caller
/// starts a new trace) and then `tracestate` is not read, as the spec requires. Multiple
/// `tracestate`/`baggage` lines are combined as RFC 7230 says. Invalid `tracestate` is
/// dropped whole; a `tracestate` over 512 characters is truncated by whole entries (longest
/// first); invalid `baggage` members and members beyond 64 or 8192 bytes are dropped. Every
/// drop is counted in [`counters::PROPAGATION_INVALID`].
/// Work is linear in the header size, and nothing is allocated when each header is one valid line.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use observe_core::propagation::extract;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("traceparent", HeaderValue::from_static("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
/// headers.append("baggage", HeaderValue::from_static("userId=alice"));
/// headers.append("baggage", HeaderValue::from_static("serverNode=DF%2028,isProduction=false"));
/// let ex = extract(&headers);
/// assert!(ex.traceparent.is_none()); // all-zero trace id: start a new trace
/// assert_eq!(ex.baggage.unwrap(), "userId=alice,serverNode=DF%2028,isProduction=false");
/// ```
#[inline]
pub fn extract(headers: &HeaderMap) -> Extracted {
    let found = Found::in_headers(headers);
    let traceparent = found.traceparent();
    let Carried {
        tracestate,
        baggage,
    } = found.carried(traceparent.is_some()).unwrap_or_default();
    Extracted {
        traceparent,
        tracestate,
        baggage,
    }
}

/// Writes `cx` as `traceparent` (version `00`), and `tracestate`/`baggage` when given, into
/// outgoing request headers.
///
/// `traceparent` always replaces any existing one; `tracestate` replaces an existing one or,
/// when `None`, removes it (a stale `tracestate` must not travel with a new parent); `baggage`
/// replaces an existing one only when given. The values passed in are expected to come from
/// [`extract`] or the builders, which validate them. Building the `traceparent` header value
/// copies its 55 bytes into one small buffer: `http` has no inline header storage.
///
/// ```
/// use http::HeaderMap;
/// use observe_core::context::RequestContext;
/// use observe_core::propagation::{inject, TraceParent};
///
/// let cx = RequestContext::new_root(true);
/// let mut headers = HeaderMap::new();
/// inject(&cx, None, None, &mut headers);
/// let sent = TraceParent::parse(headers["traceparent"].as_bytes()).unwrap();
/// assert_eq!((sent.trace_id, sent.parent_id), (cx.trace_id, cx.span_id));
/// assert!(sent.flags.is_sampled() && sent.flags.is_random());
/// ```
pub fn inject(
    cx: &RequestContext,
    tracestate: Option<&HeaderValue>,
    baggage: Option<&HeaderValue>,
    headers: &mut HeaderMap,
) {
    let encoded = TraceParent::from_context(cx).encode();
    if let Ok(value) = HeaderValue::from_bytes(&encoded) {
        headers.insert(TRACEPARENT, value);
    }
    match tracestate {
        Some(ts) => {
            headers.insert(TRACESTATE, ts.clone());
        }
        None => {
            headers.remove(TRACESTATE);
        }
    }
    if let Some(b) = baggage {
        headers.insert(BAGGAGE, b.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// `n` unrelated headers, then the given lines, then `n` more (so the propagation headers
    /// sit in the middle of a small and of a large map).
    fn headers(n: usize, lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..n {
            h.append(
                HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        for (name, value) in lines {
            h.append(*name, HeaderValue::from_static(value));
        }
        for i in 0..n {
            h.append(
                HeaderName::try_from(format!("x-after-{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h
    }

    /// Optional whitespace around a `traceparent` is ignored, on either side or both, and
    /// only spaces and tabs count as such.
    #[test]
    fn traceparent_ows_is_trimmed() {
        let expected = TraceParent::parse(TP.as_bytes()).unwrap();
        for padded in [
            format!(" {TP}"),
            format!("{TP}\t"),
            format!(" \t {TP} \t"),
            format!("\t{TP}"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT, HeaderValue::from_str(&padded).unwrap());
            assert_eq!(extract(&h).traceparent, Some(expected), "{padded:?}");
        }
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\x0bx"), b"\x0bx", "a vertical tab is not OWS");
    }

    /// The one-pass scan (small maps) and the hashed lookups (large maps) must agree.
    #[test]
    fn scan_and_lookup_agree_on_every_shape() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("traceparent", TP)],
            &[("traceparent", TP), ("traceparent", TP)],
            &[("traceparent", "garbage"), ("tracestate", "a=1")],
            &[("traceparent", TP), ("tracestate", "a=1")],
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
            ],
            &[("tracestate", "a=1"), ("baggage", "k=v")],
            &[
                ("traceparent", TP),
                ("baggage", "k=v"),
                ("baggage", "k2=v2"),
            ],
            &[("baggage", "k=v"), ("baggage", "not valid baggage")],
        ];
        for lines in cases {
            let small = extract(&headers(2, lines));
            let large = extract(&headers(SCAN_MAX_LINES, lines));
            let show = |e: &Extracted| {
                format!(
                    "{:?} {:?} {:?}",
                    e.traceparent.map(|t| t.encode()),
                    e.tracestate,
                    e.baggage
                )
            };
            assert_eq!(show(&small), show(&large), "lines {lines:?}");
        }
        let both = extract(&headers(
            3,
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
            ],
        ));
        assert_eq!(both.tracestate.unwrap(), "a=1,b=2");
        let twice = extract(&headers(3, &[("traceparent", TP), ("traceparent", TP)]));
        assert!(twice.traceparent.is_none());
        let bag = extract(&headers(3, &[("baggage", "k=v"), ("baggage", "k2=v2")]));
        assert_eq!(bag.baggage.unwrap(), "k=v,k2=v2");
    }
}
