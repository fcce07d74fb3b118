//! JSON string escaping, value truncation and number formatting into a byte buffer.
//!
//! Everything here appends to a caller-owned `Vec<u8>` and never allocates beyond growing it.
//! The escaping is stricter than JSON requires: besides `"`, `\` and the C0 controls it escapes
//! DEL and U+2028/U+2029, which JavaScript-based log viewers treat as line terminators.

use std::fmt::{self, Write as _};

/// What a byte needs: 0 nothing, `b'u'` a `\u00XX` escape, `b'?'` a look at the next bytes
/// (a possible U+2028/U+2029), anything else the character after a backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x7f] = b'u';
    t[0xe2] = b'?';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The index of the first byte at or after `i` that [`ESCAPE`] marks, looking sixteen bytes
/// at a time while sixteen remain (SSE2, on every x86-64); in the last fifteen it returns
/// early and the caller's byte loop goes on from there. Messages and values are mostly clean.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn skip_clean(bytes: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::*;
    while let Some(chunk) = bytes.get(i..i + 16) {
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly `chunk`.
        let marked = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            // Control bytes: v <= 0x1f unsigned, i.e. min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            let quote_or_backslash = _mm_or_si128(is(b'"'), is(b'\\'));
            let del_or_e2 = _mm_or_si128(is(0x7f), is(0xe2));
            _mm_movemask_epi8(_mm_or_si128(
                control,
                _mm_or_si128(quote_or_backslash, del_or_e2),
            ))
        };
        if marked != 0 {
            return i + marked.trailing_zeros() as usize;
        }
        i += 16;
    }
    i
}

/// Elsewhere the byte loop does all the work.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn skip_clean(_bytes: &[u8], i: usize) -> usize {
    i
}

/// Appends `s` escaped for the inside of a JSON string (no surrounding quotes).
pub(crate) fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = skip_clean(bytes, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            i += 1;
            continue;
        }
        if esc == b'?' {
            // U+2028 is E2 80 A8 and U+2029 is E2 80 A9; other E2 sequences pass through.
            if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                i = skip_clean(bytes, i);
            } else {
                i += 1;
            }
            continue;
        }
        buf.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            buf.extend_from_slice(&[b'\\', esc]);
        }
        i += 1;
        start = i;
        i = skip_clean(bytes, i);
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Appends `s` as a complete JSON string, quotes included.
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    escape_into(buf, s);
    buf.push(b'"');
}

/// Appended to a string value that was cut at the configured maximum length.
pub(crate) const TRUNCATED_MARKER: &str = "...[truncated]";

/// A `fmt::Write` that escapes into a buffer and stops after `remaining` bytes of input.
///
/// Cutting happens on a character boundary; once cut, formatting is aborted with
/// `fmt::Error` so that a huge `Debug` value costs no more than the part that is kept.
pub(crate) struct StrValue<'a> {
    buf: &'a mut Vec<u8>,
    remaining: usize,
    truncated: bool,
}

impl<'a> StrValue<'a> {
    /// Opens a JSON string; [`StrValue::finish`] closes it.
    pub(crate) fn begin(buf: &'a mut Vec<u8>, max_len: usize) -> Self {
        buf.push(b'"');
        StrValue {
            buf,
            remaining: max_len,
            truncated: false,
        }
    }

    /// Writes the truncation marker if needed and the closing quote.
    pub(crate) fn finish(self) {
        if self.truncated {
            self.buf.extend_from_slice(TRUNCATED_MARKER.as_bytes());
        }
        self.buf.push(b'"');
    }
}

impl fmt::Write for StrValue<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Err(fmt::Error);
        }
        if s.len() <= self.remaining {
            escape_into(self.buf, s);
            self.remaining -= s.len();
            return Ok(());
        }
        let mut cut = self.remaining;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        escape_into(self.buf, &s[..cut]);
        self.remaining = 0;
        self.truncated = true;
        Err(fmt::Error)
    }
}

/// Appends a string value, truncated to `max_len` bytes of input.
pub(crate) fn write_str_value(buf: &mut Vec<u8>, s: &str, max_len: usize) {
    let mut v = StrValue::begin(buf, max_len);
    let _ = v.write_str(s);
    v.finish();
}

/// Appends the `Debug` output of a value as a JSON string, truncated to `max_len` bytes.
pub(crate) fn write_debug_value(buf: &mut Vec<u8>, value: &dyn fmt::Debug, max_len: usize) {
    let mut v = StrValue::begin(buf, max_len);
    // An error here is either our own truncation or the value's Debug failing; both leave a
    // well-formed (possibly partial) string behind.
    let _ = write!(v, "{value:?}");
    v.finish();
}

/// Appends an error's message followed by its sources, `": "`-separated, as one JSON string.
pub(crate) fn write_error_value(
    buf: &mut Vec<u8>,
    err: &(dyn std::error::Error + 'static),
    max_len: usize,
) {
    let mut v = StrValue::begin(buf, max_len);
    let _ = (|| -> fmt::Result {
        write!(v, "{err}")?;
        let mut source = err.source();
        while let Some(s) = source {
            write!(v, ": {s}")?;
            source = s.source();
        }
        Ok(())
    })();
    v.finish();
}

/// Appends a signed integer.
pub(crate) fn write_i64(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends an unsigned integer.
pub(crate) fn write_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends a 128-bit integer: a JSON number when it fits in 64 bits (what JSON parsers read
/// exactly), otherwise a string so that no parser silently rounds it.
pub(crate) fn write_i128(buf: &mut Vec<u8>, n: i128) {
    let mut b = itoa::Buffer::new();
    let s = b.format(n);
    if i64::try_from(n).is_ok() {
        buf.extend_from_slice(s.as_bytes());
    } else {
        write_str(buf, s);
    }
}

/// See [`write_i128`].
pub(crate) fn write_u128(buf: &mut Vec<u8>, n: u128) {
    let mut b = itoa::Buffer::new();
    let s = b.format(n);
    if u64::try_from(n).is_ok() {
        buf.extend_from_slice(s.as_bytes());
    } else {
        write_str(buf, s);
    }
}

/// A fixed-capacity `fmt::Write` target on the stack.
struct StackBuf {
    bytes: [u8; 64],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends a float: a JSON number when finite, else the string `"NaN"`, `"inf"` or `"-inf"`
/// (JSON has no literal for them).
pub(crate) fn write_f64(buf: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        buf.extend_from_slice(b"\"NaN\"");
        return;
    }
    if f.is_infinite() {
        buf.extend_from_slice(if f > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
        return;
    }
    // `Display` never uses an exponent (1e300 would print 301 digits), so very large or very
    // small magnitudes use `LowerExp`; both print the shortest form that round-trips.
    let abs = f.abs();
    let mut s = StackBuf {
        bytes: [0; 64],
        len: 0,
    };
    let plain = abs == 0.0 || (1e-5..1e16).contains(&abs);
    let ok = if plain {
        write!(s, "{f}")
    } else {
        write!(s, "{f:e}")
    };
    if ok.is_err() {
        s.len = 0;
        // The shortest exponent form of any f64 is well under 64 bytes.
        let _ = write!(s, "{f:e}");
    }
    buf.extend_from_slice(&s.bytes[..s.len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut b = Vec::new();
        write_str(&mut b, s);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn special_characters_are_escaped_at_every_offset() {
        // Each special character after 0..=17 plain bytes, so escapes land at every offset.
        for special in ["\"", "\\", "\n", "\u{1}", "\u{7f}", "\u{2028}", "€"] {
            for pad in 0..18 {
                let plain = "p".repeat(pad);
                let s = format!("{plain}{special}{plain}");
                let want = format!("\"{}\"", esc_bytewise(&s));
                assert_eq!(esc(&s), want, "{special:?} after {pad} bytes");
            }
        }
    }

    proptest::proptest! {
        /// Long and short strings, specials anywhere (inside and across 16-byte chunks).
        #[test]
        fn escape_matches_the_reference(s in proptest::collection::vec(
            proptest::prop_oneof![
                20 => proptest::char::range('a', 'z'),
                1 => proptest::sample::select(vec![
                    '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}',
                    '\u{2029}', '€', '✓', 'é', '\u{8}', '\u{c}',
                ]),
            ],
            0..80,
        )) {
            let s: String = s.into_iter().collect();
            proptest::prop_assert_eq!(esc(&s), format!("\"{}\"", esc_bytewise(&s)));
        }
    }

    /// The reference: one character at a time.
    fn esc_bytewise(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '"' => "\\\"".to_owned(),
                '\\' => "\\\\".to_owned(),
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                '\u{8}' => "\\b".to_owned(),
                '\u{c}' => "\\f".to_owned(),
                '\u{2028}' => "\\u2028".to_owned(),
                '\u{2029}' => "\\u2029".to_owned(),
                c if (c as u32) < 0x20 || c == '\u{7f}' => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn escapes_everything_json_and_js_need() {
        assert_eq!(esc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(esc("\0\u{1b}[31m\u{7f}"), r#""\u0000\u001b[31m\u007f""#);
        assert_eq!(esc("x\u{2028}y\u{2029}z"), r#""x\u2028y\u2029z""#);
        // Other characters starting with E2 are left alone.
        assert_eq!(esc("€ ✓"), "\"€ ✓\"");
        for c in 0u32..0x20 {
            let s = char::from_u32(c).unwrap().to_string();
            let out = esc(&s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn truncates_on_char_boundary() {
        let mut b = Vec::new();
        write_str_value(&mut b, "héllo", 2);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            format!("\"h{TRUNCATED_MARKER}\"")
        );
        let mut b = Vec::new();
        write_str_value(&mut b, "héllo", 6);
        assert_eq!(String::from_utf8(b).unwrap(), "\"héllo\"");
    }

    #[test]
    fn floats() {
        let f = |x: f64| {
            let mut b = Vec::new();
            write_f64(&mut b, x);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(f64::NAN), "\"NaN\"");
        assert_eq!(f(f64::NEG_INFINITY), "\"-inf\"");
        for x in [
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e300,
            0.1,
            123456789.125,
        ] {
            let v: f64 = serde_json::from_str(&f(x)).unwrap();
            assert_eq!(v, x);
        }
    }

    #[test]
    fn big_integers_become_strings() {
        let mut b = Vec::new();
        write_i128(&mut b, i128::MIN);
        write_u128(&mut b, 42);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "\"-170141183460469231731687303715884105728\"42"
        );
    }
}
