//! The `traceparent` header (W3C Trace Context Level 1, plus the Level 2 `random` flag).

use std::fmt;

use crate::context::{RequestContext, SpanId, TraceFlags, TraceId};

/// Length of a version `00` `traceparent` value, and of the prefix read from future versions.
pub const TRACEPARENT_LEN: usize = 55;

/// The flag bits this implementation understands (sampled, random). The spec requires the
/// others to be zeroed, so they are dropped on parse and never written.
const KNOWN_FLAGS: u8 = TraceFlags::SAMPLED.bits() | TraceFlags::RANDOM.bits();

/// A parsed `traceparent` header: `version-traceid-parentid-flags`.
///
/// Parsing and encoding work on stack arrays only; neither allocates.
///
/// ```
/// use observe_core::propagation::TraceParent;
///
/// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert!(tp.flags.is_sampled());
/// let encoded = tp.encode();
/// assert_eq!(
///     TraceParent::as_str(&encoded),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TraceParent {
    /// The version the header was received with (`00`, or a future version). Encoding
    /// always writes `00`: the highest version this implementation knows.
    pub version: u8,
    /// The trace id (never all zeros once parsed).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeros once parsed).
    pub parent_id: SpanId,
    /// The trace flags, restricted to the bits this implementation knows.
    pub flags: TraceFlags,
}

/// Which field of a `traceparent` was malformed.
///
/// ```
/// use observe_core::propagation::{TraceParent, TraceParentError, TraceParentField};
/// let err = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x").unwrap_err();
/// assert_eq!(err, TraceParentError::NotLowerHex { field: TraceParentField::Flags, at: 53 });
/// assert_eq!(err.to_string(), "traceparent trace-flags at byte 53 is not lowercase hex");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TraceParentField {
    /// The two-hex-digit version.
    Version,
    /// The 32-hex-digit trace id.
    TraceId,
    /// The 16-hex-digit parent id.
    ParentId,
    /// The two-hex-digit flags.
    Flags,
}

impl fmt::Display for TraceParentField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceParentField::Version => "version",
            TraceParentField::TraceId => "trace-id",
            TraceParentField::ParentId => "parent-id",
            TraceParentField::Flags => "trace-flags",
        })
    }
}

/// Why a `traceparent` value was rejected. The caller then starts a new trace.
///
/// Errors carry positions and lengths rather than copies of the input, so rejecting a
/// hostile header allocates nothing.
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TraceParentError {
    /// Version `00` must be exactly 55 characters; future versions at least 55.
    #[error("traceparent has {len} characters; version {version:02x} needs {}", if *version == 0 { "exactly 55" } else { "at least 55" })]
    Length {
        /// The received length in bytes.
        len: usize,
        /// The version found in the first two characters (0 if unreadable).
        version: u8,
    },
    /// Version `ff` is forbidden by the spec.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// A field was not lowercase hex of the right length.
    #[error("traceparent {field} at byte {at} is not lowercase hex")]
    NotLowerHex {
        /// The malformed field.
        field: TraceParentField,
        /// Byte offset where the field starts.
        at: usize,
    },
    /// A `-` was expected at this byte offset.
    #[error("traceparent expected '-' at byte {at}")]
    Delimiter {
        /// Byte offset of the missing delimiter.
        at: usize,
    },
    /// The trace id was all zeros.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// The parent id was all zeros.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
}

/// Each byte's value as a lowercase hex digit, or 0xff.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
static HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn hex_byte(pair: &[u8]) -> Option<u8> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    Some((nibble(pair[0])? << 4) | nibble(pair[1])?)
}

impl TraceParent {
    /// A version `00` traceparent from its parts (unknown flag bits are cleared).
    ///
    /// ```
    /// use observe_core::context::{SpanId, TraceFlags, TraceId};
    /// use observe_core::propagation::TraceParent;
    /// let tp = TraceParent::new(TraceId::random(), SpanId::random(), TraceFlags::new(0xff));
    /// assert_eq!(tp.flags.bits(), 0x03);
    /// ```
    pub const fn new(trace_id: TraceId, parent_id: SpanId, flags: TraceFlags) -> Self {
        TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags.bits() & KNOWN_FLAGS),
        }
    }

    /// The traceparent to send downstream for `cx`: its trace id, its span id as the parent.
    ///
    /// ```
    /// use observe_core::context::RequestContext;
    /// use observe_core::propagation::TraceParent;
    /// let cx = RequestContext::new_root(true);
    /// let tp = TraceParent::from_context(&cx);
    /// assert_eq!((tp.trace_id, tp.parent_id), (cx.trace_id, cx.span_id));
    /// ```
    pub const fn from_context(cx: &RequestContext) -> Self {
        TraceParent::new(cx.trace_id, cx.span_id, cx.flags)
    }

    /// Parses a `traceparent` value (without surrounding whitespace; [`extract`](super::extract)
    /// trims HTTP optional whitespace first).
    ///
    /// Follows the spec's rules: lowercase hex only, version `ff` forbidden, version `00`
    /// exactly 55 characters, higher versions parsed from their first 55 characters when
    /// what follows starts with `-` (the rest is ignored), all-zero ids rejected, unknown
    /// flag bits cleared. Never allocates.
    ///
    /// ```
    /// use observe_core::propagation::{TraceParent, TraceParentError};
    /// // A future version with extra fields is accepted; its known fields are used.
    /// let tp = TraceParent::parse(b"cc-12345678901234567890123456789012-1234567890123456-01-future").unwrap();
    /// assert_eq!(tp.version, 0xcc);
    /// assert_eq!(
    ///     TraceParent::parse(b"ff-12345678901234567890123456789012-1234567890123456-01"),
    ///     Err(TraceParentError::ForbiddenVersion)
    /// );
    /// ```
    #[inline]
    pub fn parse(value: &[u8]) -> Result<TraceParent, TraceParentError> {
        match Self::parse_version_00(value) {
            Some(tp) => Ok(tp),
            None => Self::parse_any(value),
        }
    }

    /// [`Self::parse`] for callers that only need the value, not why it was refused: the
    /// request path, where building and unpacking the `Result` costs more copying than the
    /// fast path's own work.
    #[inline(always)]
    pub(crate) fn parse_valid(value: &[u8]) -> Option<TraceParent> {
        match Self::parse_version_00(value) {
            Some(tp) => Some(tp),
            None => Self::parse_any(value).ok(),
        }
    }

    /// What nearly every request carries, a valid version-`00` value, in one straight pass.
    /// `None` for anything else, valid or not: [`Self::parse_any`] then applies every rule and
    /// says what was wrong.
    #[inline(always)]
    pub(crate) fn parse_version_00(value: &[u8]) -> Option<TraceParent> {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        {
            Self::parse_version_00_sse2(value)
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            Self::parse_version_00_portable(value)
        }
    }

    /// The one-pass parse on any target: fixed bytes compared, ids decoded sixteen digits at a
    /// time by [`TraceId::from_hex_bytes`] / [`SpanId::from_hex_bytes`].
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))] // tested on every target
    #[inline(always)]
    fn parse_version_00_portable(value: &[u8]) -> Option<TraceParent> {
        let v: &[u8; TRACEPARENT_LEN] = value.try_into().ok()?;
        if v[..3] != *b"00-" || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let trace_id = TraceId::from_hex_bytes(&v[3..35])?;
        let parent_id = SpanId::from_hex_bytes(&v[36..52])?;
        let flags = hex_byte(&v[53..55])?;
        if !trace_id.is_valid() || !parent_id.is_valid() {
            return None;
        }
        Some(TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags & KNOWN_FLAGS),
        })
    }

    /// The one-pass parse with SSE2 (x86-64 baseline): the 48 id digits are checked and
    /// decoded in three 16-byte loads (trace id bytes 3..19 and 19..35, parent id 36..52),
    /// the delimiters compared and the flags looked up as scalars, and the result decided
    /// once at the end rather than by a branch per field.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline(always)]
    fn parse_version_00_sse2(value: &[u8]) -> Option<TraceParent> {
        use std::arch::x86_64::*;

        /// Range test constants: adding `0x80 - lo` maps the range `lo..lo + len` onto the
        /// lowest signed values, so one signed compare against `-128 + len` tests the range
        /// and every other byte value (including `>= 0x80` and uppercase) fails it.
        const fn add(lo: u8) -> i8 {
            0x80u8.wrapping_sub(lo) as i8
        }
        const fn below(len: u8) -> i8 {
            (len as i8).wrapping_sub(-128i8) // -128 + len
        }
        let v: &[u8; TRACEPARENT_LEN] = value.try_into().ok()?;
        let fixed_ok = (u16::from_le_bytes([v[0], v[1]]) == u16::from_le_bytes(*b"00"))
            & (v[2] == b'-')
            & (v[35] == b'-')
            & (v[52] == b'-');
        // The flags' two digits by table: 0xff marks a byte that is not lowercase hex.
        let (high, low) = (HEX_VALUE[usize::from(v[53])], HEX_VALUE[usize::from(v[54])]);
        let flags_ok = (high | low) < 16;
        // SAFETY: SSE2 is part of the x86-64 baseline; the three unaligned loads read bytes
        // 3..19, 19..35 and 36..52 of the 55-byte array; the store writes exactly the
        // 16 bytes of `trace`.
        unsafe {
            let load = |at: usize| _mm_loadu_si128(v.as_ptr().add(at).cast::<__m128i>());
            let (t0, t1, p0) = (load(3), load(19), load(36));
            let digit_add = _mm_set1_epi8(add(b'0'));
            let digit_below = _mm_set1_epi8(below(10));
            let letter_add = _mm_set1_epi8(add(b'a'));
            let letter_below = _mm_set1_epi8(below(6));
            // Per lane: all ones when the byte is a digit or a letter (both must not fail
            // anywhere), the digit mask, and `byte + 0x80 - '0'` (kept for decoding).
            let classes = |w: __m128i| {
                let biased = _mm_add_epi8(w, digit_add);
                let digit = _mm_cmpgt_epi8(digit_below, biased);
                let letter = _mm_cmpgt_epi8(letter_below, _mm_add_epi8(w, letter_add));
                (_mm_or_si128(digit, letter), biased, digit)
            };
            let (ok_t0, biased_t0, digit_t0) = classes(t0);
            let (ok_t1, biased_t1, digit_t1) = classes(t1);
            let (ok_p0, biased_p0, digit_p0) = classes(p0);
            let ok = _mm_and_si128(_mm_and_si128(ok_t0, ok_t1), ok_p0);
            let hex_ok = _mm_movemask_epi8(ok) == 0xffff;

            // Once every byte is known to be hex: a digit's value is `byte - '0'`, a letter's
            // `byte - '0' - 0x27`; here each value keeps the 0x80 bias. Each 16-bit lane then
            // holds (first digit, second digit) as (low, high) bytes, and multiplying it by
            // 0x1001 adds `first << 12`, leaving `(first << 4 | second) + 0x80` in the high
            // byte (the rest overflows out), which is shifted down so the low bytes can be
            // packed. The bias comes off with one xor per id.
            let letter_gap = _mm_set1_epi8((b'a' - b'0' - 10) as i8);
            let bytes = |biased: __m128i, digit: __m128i| {
                let n = _mm_sub_epi8(biased, _mm_andnot_si128(digit, letter_gap));
                _mm_srli_epi16(_mm_mullo_epi16(n, _mm_set1_epi16(0x1001)), 8)
            };
            let bias = _mm_set1_epi8(-128);
            let trace = _mm_xor_si128(
                _mm_packus_epi16(bytes(biased_t0, digit_t0), bytes(biased_t1, digit_t1)),
                bias,
            );
            let parent = bytes(biased_p0, digit_p0);
            let parent =
                _mm_cvtsi128_si64(_mm_xor_si128(_mm_packus_epi16(parent, parent), bias)) as u64;
            let zero = _mm_setzero_si128();
            let trace_nonzero = _mm_movemask_epi8(_mm_cmpeq_epi8(trace, zero)) != 0xffff;
            if !(fixed_ok & flags_ok & hex_ok & trace_nonzero & (parent != 0)) {
                return None;
            }
            let mut trace_id = [0u8; 16];
            _mm_storeu_si128(trace_id.as_mut_ptr().cast::<__m128i>(), trace);
            let flags = low & KNOWN_FLAGS;
            Some(TraceParent {
                version: 0,
                trace_id: TraceId(trace_id),
                parent_id: SpanId(parent.to_le_bytes()),
                flags: TraceFlags::new(flags),
            })
        }
    }

    /// Every rule of the spec, with the error that names what was wrong.
    ///
    /// Kept out of line and cold so the fast path inlined into callers stays small.
    #[cold]
    #[inline(never)]
    fn parse_any(value: &[u8]) -> Result<TraceParent, TraceParentError> {
        let version = match value.get(..2).and_then(hex_byte) {
            Some(v) => v,
            None => {
                return Err(if value.len() < 2 {
                    TraceParentError::Length {
                        len: value.len(),
                        version: 0,
                    }
                } else {
                    TraceParentError::NotLowerHex {
                        field: TraceParentField::Version,
                        at: 0,
                    }
                })
            }
        };
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        // The version prefix must be exactly two hex digits followed by a dash.
        if value.get(2) != Some(&b'-') {
            return Err(TraceParentError::Delimiter { at: 2 });
        }
        let length_ok = if version == 0 {
            value.len() == TRACEPARENT_LEN
        } else {
            // Future versions are additive: anything after the known fields must be a new
            // field, introduced by a dash.
            value.len() == TRACEPARENT_LEN
                || (value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] == b'-')
        };
        if !length_ok {
            // A too-long value whose byte 55 is not '-' is reported as a length problem for
            // version 00, and as a delimiter problem for future versions.
            if version != 0 && value.len() > TRACEPARENT_LEN {
                return Err(TraceParentError::Delimiter {
                    at: TRACEPARENT_LEN,
                });
            }
            return Err(TraceParentError::Length {
                len: value.len(),
                version,
            });
        }
        let v = &value[..TRACEPARENT_LEN];
        for at in [35, 52] {
            if v[at] != b'-' {
                return Err(TraceParentError::Delimiter { at });
            }
        }
        let trace_id = TraceId::from_hex_bytes(&v[3..35]).ok_or(TraceParentError::NotLowerHex {
            field: TraceParentField::TraceId,
            at: 3,
        })?;
        let parent_id =
            SpanId::from_hex_bytes(&v[36..52]).ok_or(TraceParentError::NotLowerHex {
                field: TraceParentField::ParentId,
                at: 36,
            })?;
        let flags = hex_byte(&v[53..55]).ok_or(TraceParentError::NotLowerHex {
            field: TraceParentField::Flags,
            at: 53,
        })?;
        if !trace_id.is_valid() {
            return Err(TraceParentError::ZeroTraceId);
        }
        if !parent_id.is_valid() {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(TraceParent {
            version,
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags & KNOWN_FLAGS),
        })
    }

    /// Writes the version `00` form into a stack array. Never allocates.
    ///
    /// ```
    /// use observe_core::context::{SpanId, TraceFlags, TraceId};
    /// use observe_core::propagation::TraceParent;
    /// let tp = TraceParent::new(
    ///     TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
    ///     SpanId::from_hex("b7ad6b7169203331").unwrap(),
    ///     TraceFlags::SAMPLED,
    /// );
    /// assert_eq!(&tp.encode()[..], b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    /// ```
    pub fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        out[3..35].copy_from_slice(&self.trace_id.to_hex());
        out[36..52].copy_from_slice(&self.parent_id.to_hex());
        let flags = self.flags.bits() & KNOWN_FLAGS;
        out[53] = HEX[(flags >> 4) as usize];
        out[54] = HEX[(flags & 0x0f) as usize];
        out
    }

    /// Views an encoded traceparent as `&str` (it is always ASCII).
    ///
    /// ```
    /// use observe_core::propagation::TraceParent;
    /// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    /// assert!(TraceParent::as_str(&tp.encode()).ends_with("-00"));
    /// ```
    pub fn as_str(encoded: &[u8; TRACEPARENT_LEN]) -> &str {
        // `encode` writes only ASCII hex digits and dashes; a caller-built array that is not
        // UTF-8 yields "" rather than a panic.
        std::str::from_utf8(encoded).unwrap_or("")
    }

    /// A context for this service's work as a child of this traceparent: same trace id and
    /// flags (sampled set as decided), a fresh span id.
    ///
    /// ```
    /// use observe_core::propagation::TraceParent;
    /// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// let cx = tp.child_context(true);
    /// assert_eq!(cx.trace_id, tp.trace_id);
    /// assert_ne!(cx.span_id, tp.parent_id);
    /// ```
    #[inline]
    pub fn child_context(&self, sampled: bool) -> RequestContext {
        RequestContext::new(
            self.trace_id,
            SpanId::random(),
            self.flags.with_sampled(sampled),
        )
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TraceParent::as_str(&self.encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    type FastPath = fn(&[u8]) -> Option<TraceParent>;

    /// Every one-pass implementation built for this target, with its name: the portable one
    /// always, and the SSE2 one on x86-64 (which is what `parse` uses there).
    fn fast_paths() -> Vec<(&'static str, FastPath)> {
        #[cfg_attr(
            not(all(target_arch = "x86_64", target_feature = "sse2")),
            allow(unused_mut)
        )]
        let mut paths: Vec<(&'static str, FastPath)> =
            vec![("portable", TraceParent::parse_version_00_portable)];
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        paths.push(("sse2", TraceParent::parse_version_00_sse2));
        paths
    }

    /// Each one-pass path must give exactly what the full rules give for a 55-byte version
    /// `00` value, and `None` for anything else (left to the full parser); `parse` must agree
    /// with the full rules on everything.
    fn check_fast_paths(v: &[u8]) {
        let full = TraceParent::parse_any(v).ok();
        for (name, fast) in fast_paths() {
            let got = fast(v);
            if v.len() == TRACEPARENT_LEN && v.starts_with(b"00") {
                assert_eq!(got, full, "{name}: {:?}", String::from_utf8_lossy(v));
            } else {
                assert_eq!(got, None, "{name}: {:?}", String::from_utf8_lossy(v));
            }
        }
        assert_eq!(TraceParent::parse(v).ok(), full);
    }

    /// Every single-byte change of a valid value (each position, each byte value: uppercase,
    /// bytes >= 0x80, delimiters anywhere), and pairs of changes from a fixed-seed generator.
    #[test]
    fn version_00_fast_path_agrees_with_the_full_rules() {
        check_fast_paths(VALID);
        let mut v = VALID.to_vec();
        for at in 0..v.len() {
            for byte in 0..=255u8 {
                v[at] = byte;
                check_fast_paths(&v);
            }
            v[at] = VALID[at];
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"0123456789abcdefABCDEF-gz \x00\xff";
        for _ in 0..20_000 {
            let mut v = VALID.to_vec();
            for _ in 0..2 {
                let at = rng.usize(..v.len());
                v[at] = alphabet[rng.usize(..alphabet.len())];
            }
            check_fast_paths(&v);
        }
        check_fast_paths(&VALID[..54]);
        check_fast_paths(&[VALID, b"-"].concat());
        check_fast_paths(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }

    /// The flags field decoded for every pair of bytes (both digits, every value), and the
    /// ids at their edges: all zeros, one nonzero digit at each end, all `f`.
    #[test]
    fn version_00_fast_path_flags_and_id_edges() {
        let mut v = VALID.to_vec();
        for hi in 0..=255u8 {
            for lo in 0..=255u8 {
                v[53] = hi;
                v[54] = lo;
                check_fast_paths(&v);
            }
        }
        for (start, len) in [(3, 32), (36, 16)] {
            for fill in [b'0', b'f'] {
                let mut v = VALID.to_vec();
                v[start..start + len].fill(fill);
                check_fast_paths(&v);
                for at in [start, start + len - 1] {
                    for digit in b"123456789abcdef" {
                        let mut w = v.clone();
                        w[at] = *digit;
                        check_fast_paths(&w);
                    }
                }
            }
        }
        for version in [b"ff", b"01", b"cc", b"0f", b"f0"] {
            check_fast_paths(&with(0, version));
        }
    }

    /// Random valid values (every id byte from a fixed-seed generator, random flags) round
    /// trip through `encode` and every one-pass path.
    #[test]
    fn version_00_fast_path_decodes_random_ids() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let mut trace = [0u8; 16];
            let mut parent = [0u8; 8];
            rng.fill(&mut trace);
            rng.fill(&mut parent);
            let tp = TraceParent {
                version: 0,
                trace_id: TraceId(trace),
                parent_id: SpanId(parent),
                flags: TraceFlags::new(rng.u8(..) & KNOWN_FLAGS),
            };
            let mut encoded = tp.encode();
            // Any flags byte, not only the known bits `encode` writes.
            let flags = rng.u8(..);
            encoded[53..].copy_from_slice(&[
                HEX_DIGITS[(flags >> 4) as usize],
                HEX_DIGITS[(flags & 0xf) as usize],
            ]);
            let expected =
                (tp.trace_id.is_valid() && tp.parent_id.is_valid()).then_some(TraceParent {
                    flags: TraceFlags::new(flags & KNOWN_FLAGS),
                    ..tp
                });
            for (name, fast) in fast_paths() {
                assert_eq!(fast(&encoded), expected, "{name}");
            }
            check_fast_paths(&encoded);
        }
    }

    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

    fn with(prefix_len: usize, replacement: &[u8]) -> Vec<u8> {
        let mut v = VALID.to_vec();
        v[prefix_len..prefix_len + replacement.len()].copy_from_slice(replacement);
        v
    }

    #[test]
    fn version_00_must_be_exactly_55() {
        assert!(TraceParent::parse(VALID).is_ok());
        let mut long = VALID.to_vec();
        long.extend_from_slice(b"-extra");
        assert_eq!(
            TraceParent::parse(&long),
            Err(TraceParentError::Length {
                len: 61,
                version: 0
            })
        );
        assert!(matches!(
            TraceParent::parse(&VALID[..54]),
            Err(TraceParentError::Length { len: 54, .. })
        ));
    }

    #[test]
    fn future_version_rules() {
        let v = with(0, b"01");
        assert_eq!(TraceParent::parse(&v).unwrap().version, 1);
        let mut more = v.clone();
        more.extend_from_slice(b"-anything");
        assert!(TraceParent::parse(&more).is_ok());
        let mut bad = v.clone();
        bad.extend_from_slice(b".anything");
        assert_eq!(
            TraceParent::parse(&bad),
            Err(TraceParentError::Delimiter { at: 55 })
        );
        assert!(TraceParent::parse(&v[..54]).is_err());
    }

    #[test]
    fn forbidden_version_and_uppercase() {
        assert_eq!(
            TraceParent::parse(&with(0, b"ff")),
            Err(TraceParentError::ForbiddenVersion)
        );
        assert!(TraceParent::parse(&with(0, b"0A")).is_err());
        assert_eq!(
            TraceParent::parse(&with(3, b"4B")),
            Err(TraceParentError::NotLowerHex {
                field: TraceParentField::TraceId,
                at: 3
            })
        );
        assert!(TraceParent::parse(&with(36, b"F")).is_err());
        assert!(TraceParent::parse(&with(53, b"0A")).is_err());
    }

    #[test]
    fn zero_ids_rejected() {
        assert_eq!(
            TraceParent::parse(&with(3, &[b'0'; 32])),
            Err(TraceParentError::ZeroTraceId)
        );
        assert_eq!(
            TraceParent::parse(&with(36, &[b'0'; 16])),
            Err(TraceParentError::ZeroParentId)
        );
    }

    #[test]
    fn flags_keep_known_bits_only() {
        let tp = TraceParent::parse(&with(53, b"ff")).unwrap();
        assert_eq!(tp.flags.bits(), 0x03);
        let tp = TraceParent::parse(&with(53, b"09")).unwrap();
        assert!(tp.flags.is_sampled() && !tp.flags.is_random());
        assert_eq!(&tp.encode()[53..], b"01");
    }

    #[test]
    fn encode_always_writes_version_00() {
        let tp = TraceParent::parse(&with(0, b"cc")).unwrap();
        assert_eq!(&tp.encode()[..3], b"00-");
        assert_eq!(&tp.encode()[3..], &VALID[3..]);
    }
}
