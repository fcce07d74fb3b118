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
    pub fn parse(value: &[u8]) -> Result<TraceParent, TraceParentError> {
        match Self::parse_version_00(value) {
            Some(tp) => Ok(tp),
            None => Self::parse_any(value),
        }
    }

    /// What nearly every request carries, a valid version-`00` value, in one straight pass.
    /// `None` for anything else, valid or not: [`Self::parse_any`] then applies every rule and
    /// says what was wrong.
    #[inline]
    fn parse_version_00(value: &[u8]) -> Option<TraceParent> {
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

    /// Every rule of the spec, with the error that names what was wrong.
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

    /// The one-pass path must give exactly what the full rules give, for every input it takes:
    /// every single-byte change of a valid value (each position, each byte value), and
    /// pairs of changes from a fixed-seed generator. Anything but a 55-byte version `00` value
    /// must be left to the full parser.
    #[test]
    fn version_00_fast_path_agrees_with_the_full_rules() {
        let check = |v: &[u8]| {
            let fast = TraceParent::parse_version_00(v);
            let full = TraceParent::parse_any(v).ok();
            if v.len() == TRACEPARENT_LEN && v.starts_with(b"00") {
                assert_eq!(fast, full, "{:?}", String::from_utf8_lossy(v));
            } else {
                assert_eq!(fast, None, "{:?}", String::from_utf8_lossy(v));
            }
            assert_eq!(TraceParent::parse(v).ok(), full);
        };
        check(VALID);
        let mut v = VALID.to_vec();
        for at in 0..v.len() {
            for byte in 0..=255u8 {
                v[at] = byte;
                check(&v);
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
            check(&v);
        }
        check(&VALID[..54]);
        check(&[VALID, b"-"].concat());
        check(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }

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
