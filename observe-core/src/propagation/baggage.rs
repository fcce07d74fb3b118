//! The W3C `baggage` header: a borrowed parser with lazy percent-decoding, and an owned
//! builder that percent-encodes on write.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// The spec's list-member limit: at most this many members are propagated.
pub const MAX_MEMBERS: usize = 64;
/// The spec's size limit: at most this many bytes of `baggage-string` are propagated.
pub const MAX_BYTES: usize = 8192;

/// Bytes that must be percent-encoded in a value: everything outside `baggage-octet`
/// (controls, space, `"`, `,`, `;`, `\`, non-ASCII) and `%` itself.
const VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Why a `baggage` value or a builder input was rejected. Borrows the offending text.
///
/// ```
/// use observe_core::propagation::{Baggage, BaggageError};
/// assert_eq!(Baggage::parse("k=a b"), Err(BaggageError::InvalidValue("a b")));
/// assert_eq!(Baggage::parse("a=1,,b=2"), Err(BaggageError::EmptyMember));
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BaggageError<'a> {
    /// A list-member without `key=value`.
    #[error("baggage list-member {0:?} has no '='")]
    MissingEquals(&'a str),
    /// An empty list-member (e.g. `a=1,,b=2` or a trailing comma).
    #[error("baggage has an empty list-member")]
    EmptyMember,
    /// A key that is not an RFC 7230 token.
    #[error("baggage key {0:?} is not a token")]
    InvalidKey(&'a str),
    /// A value with bytes outside `baggage-octet` (it must be percent-encoded).
    #[error("baggage value {0:?} has characters that must be percent-encoded")]
    InvalidValue(&'a str),
    /// A property that is neither `key` nor `key=value`.
    #[error("baggage property {0:?} is invalid")]
    InvalidProperty(&'a str),
    /// More than [`MAX_MEMBERS`] list-members.
    #[error("baggage has more than {MAX_MEMBERS} list-members")]
    TooManyMembers,
    /// More than [`MAX_BYTES`] bytes.
    #[error("baggage is {len} bytes, more than {MAX_BYTES}")]
    TooLong {
        /// The length it would have.
        len: usize,
    },
}

/// RFC 7230 `tchar`.
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
const fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_tchar)
}

fn valid_value(value: &str) -> bool {
    value.bytes().all(is_baggage_octet)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `property = key OWS "=" OWS value / key OWS`, on text already trimmed of outer OWS.
fn parse_property(p: &str) -> Option<Property<'_>> {
    match p.split_once('=') {
        Some((k, v)) => {
            let (k, v) = (trim_ows(k), trim_ows(v));
            (valid_key(k) && valid_value(v)).then_some(Property {
                key: k,
                raw_value: Some(v),
            })
        }
        None => valid_key(p).then_some(Property {
            key: p,
            raw_value: None,
        }),
    }
}

fn valid_properties(props: &str) -> bool {
    props
        .split(';')
        .all(|p| parse_property(trim_ows(p)).is_some())
}

/// Parses one list-member already trimmed of surrounding OWS.
fn parse_member(m: &str) -> Result<Member<'_>, BaggageError<'_>> {
    if m.is_empty() {
        return Err(BaggageError::EmptyMember);
    }
    let (head, properties) = match m.split_once(';') {
        Some((head, props)) => (head, Some(props)),
        None => (m, None),
    };
    let (key, value) = head.split_once('=').ok_or(BaggageError::MissingEquals(m))?;
    let (key, value) = (trim_ows(key), trim_ows(value));
    if !valid_key(key) {
        return Err(BaggageError::InvalidKey(key));
    }
    if !valid_value(value) {
        return Err(BaggageError::InvalidValue(value));
    }
    let properties = match properties {
        Some(props) => {
            let props = trim_ows(props);
            if !valid_properties(props) {
                return Err(BaggageError::InvalidProperty(props));
            }
            props
        }
        None => "",
    };
    Ok(Member {
        key,
        raw_value: value,
        properties,
    })
}

/// A validated `baggage` value borrowed from the header: no allocation until a value with
/// percent-escapes is read.
///
/// ```
/// use observe_core::propagation::Baggage;
///
/// let b = Baggage::parse("userId=alice,serverNode=DF%2028,isProduction=false").unwrap();
/// assert_eq!(b.len(), 3);
/// assert_eq!(b.get("serverNode").unwrap().value(), "DF 28");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Baggage<'a> {
    raw: &'a str,
    len: usize,
}

impl<'a> Baggage<'a> {
    /// Validates a (combined) `baggage` value strictly: every list-member must match the
    /// grammar and the whole must be within [`MAX_MEMBERS`] and [`MAX_BYTES`]. An empty or
    /// whitespace-only value is an empty baggage. ([`extract`](super::extract) is lenient
    /// instead: it drops bad or excess members and keeps the rest.)
    ///
    /// ```
    /// use observe_core::propagation::{Baggage, BaggageError};
    /// assert_eq!(Baggage::parse("a=1,b c=2"), Err(BaggageError::InvalidKey("b c")));
    /// assert!(Baggage::parse("  ").unwrap().is_empty());
    /// ```
    pub fn parse(raw: &'a str) -> Result<Baggage<'a>, BaggageError<'a>> {
        if trim_ows(raw).is_empty() {
            return Ok(Baggage { raw, len: 0 });
        }
        let mut len = 0;
        let mut bytes = 0;
        for member in raw.split(',') {
            let m = trim_ows(member);
            parse_member(m)?;
            len += 1;
            bytes += m.len() + usize::from(len > 1);
            if len > MAX_MEMBERS {
                return Err(BaggageError::TooManyMembers);
            }
            if bytes > MAX_BYTES {
                return Err(BaggageError::TooLong { len: bytes });
            }
        }
        Ok(Baggage { raw, len })
    }

    /// The value as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The number of list-members (duplicates counted: the spec allows them).
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when there are no list-members.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The list-members in order.
    pub fn iter(&self) -> Members<'a> {
        Members {
            inner: if self.len == 0 { "" } else { self.raw }.split(','),
        }
    }

    /// The first list-member with this key.
    pub fn get(&self, key: &str) -> Option<Member<'a>> {
        self.iter().find(|m| m.key == key)
    }
}

impl<'a> IntoIterator for &Baggage<'a> {
    type Item = Member<'a>;
    type IntoIter = Members<'a>;
    fn into_iter(self) -> Members<'a> {
        self.iter()
    }
}

/// Iterator over the members of a [`Baggage`]; borrows, never allocates.
///
/// ```
/// # use observe_core::propagation::Baggage;
/// let b = Baggage::parse("a=1, b=2").unwrap();
/// assert_eq!(b.iter().map(|m| m.key()).collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Clone, Debug)]
pub struct Members<'a> {
    inner: std::str::Split<'a, char>,
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            let raw = self.inner.next()?;
            // Members of a validated Baggage always parse; skipping is only a safety net.
            if let Ok(m) = parse_member(trim_ows(raw)) {
                return Some(m);
            }
        }
    }
}

/// One baggage list-member: key, value (percent-decoded on demand) and properties.
///
/// ```
/// # use observe_core::propagation::Baggage;
/// let b = Baggage::parse("userId = alice%21 ;ttl=30").unwrap();
/// let m = b.get("userId").unwrap();
/// assert_eq!((m.raw_value(), &*m.value(), m.properties_str()), ("alice%21", "alice!", "ttl=30"));
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Member<'a> {
    key: &'a str,
    raw_value: &'a str,
    properties: &'a str,
}

impl<'a> Member<'a> {
    /// The key, OWS trimmed.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The value exactly as on the wire (still percent-encoded).
    pub fn raw_value(&self) -> &'a str {
        self.raw_value
    }

    /// The percent-decoded value. Invalid UTF-8 sequences become U+FFFD as the spec
    /// requires; borrows when the value has no escapes.
    ///
    /// ```
    /// # use observe_core::propagation::Baggage;
    /// let b = Baggage::parse("k=%E2%9C%93%FF,plain=v").unwrap();
    /// let m = b.get("k").unwrap();
    /// assert_eq!(m.value(), "\u{2713}\u{fffd}");
    /// assert!(matches!(b.get("plain").unwrap().value(), std::borrow::Cow::Borrowed("v")));
    /// ```
    pub fn value(&self) -> Cow<'a, str> {
        percent_decode_str(self.raw_value).decode_utf8_lossy()
    }

    /// The properties as on the wire (`k1=v1;k2`), OWS around the list trimmed; `""` if none.
    pub fn properties_str(&self) -> &'a str {
        self.properties
    }

    /// The properties, in order.
    ///
    /// ```
    /// # use observe_core::propagation::Baggage;
    /// let b = Baggage::parse("key1=value1;property1;property2").unwrap();
    /// let keys: Vec<_> = b.get("key1").unwrap().properties().map(|p| p.key()).collect();
    /// assert_eq!(keys, ["property1", "property2"]);
    /// ```
    pub fn properties(&self) -> impl Iterator<Item = Property<'a>> + 'a {
        let props = self.properties;
        props
            .split(';')
            .filter(move |_| !props.is_empty())
            .filter_map(|p| parse_property(trim_ows(p)))
    }
}

/// A property of a baggage member: `key` or `key=value`.
///
/// ```
/// # use observe_core::propagation::Baggage;
/// let b = Baggage::parse("k=v;flag;ttl=3%30").unwrap();
/// let props: Vec<_> = b.get("k").unwrap().properties().collect();
/// assert_eq!((props[0].key(), props[0].value()), ("flag", None));
/// assert_eq!(props[1].value().as_deref(), Some("30"));
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Property<'a> {
    key: &'a str,
    raw_value: Option<&'a str>,
}

impl<'a> Property<'a> {
    /// The property key.
    pub fn key(&self) -> &'a str {
        self.key
    }
    /// The value as on the wire, if the property has one.
    pub fn raw_value(&self) -> Option<&'a str> {
        self.raw_value
    }
    /// The percent-decoded value, if the property has one.
    pub fn value(&self) -> Option<Cow<'a, str>> {
        self.raw_value
            .map(|v| percent_decode_str(v).decode_utf8_lossy())
    }
}

/// What [`sanitize`] made of received `baggage` header lines.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sanitized {
    /// Nothing to forward.
    Empty,
    /// The single received line is valid and within limits: forward it as is.
    Unchanged,
    /// Lines were combined and/or members dropped: forward this.
    Rebuilt(String),
}

/// Walks the members of all lines, deciding which to keep: valid members, in order, while
/// within [`MAX_MEMBERS`] and [`MAX_BYTES`]. Calls `keep` for each kept member; returns
/// `(kept, non_empty_lines, dropped_something)`.
fn walk<'a>(lines: &[&'a [u8]], mut keep: impl FnMut(&'a str)) -> (usize, usize, bool) {
    let (mut kept, mut bytes, mut non_empty_lines, mut dropped) = (0usize, 0usize, 0usize, false);
    'lines: for line in lines {
        let Ok(s) = std::str::from_utf8(line) else {
            dropped = true;
            continue;
        };
        if trim_ows(s).is_empty() {
            continue;
        }
        non_empty_lines += 1;
        for member in s.split(',') {
            let m = trim_ows(member);
            if parse_member(m).is_err() {
                dropped = true;
                continue;
            }
            if kept == MAX_MEMBERS {
                // Nothing after this can be kept; stop scanning a hostile header early.
                dropped = true;
                break 'lines;
            }
            let add = m.len() + usize::from(kept > 0);
            if bytes + add > MAX_BYTES {
                dropped = true;
                continue;
            }
            kept += 1;
            bytes += add;
            keep(m);
        }
    }
    (kept, non_empty_lines, dropped)
}

/// Validates received `baggage` lines (RFC 7230 combination), dropping invalid members and
/// members beyond the limits, as the spec allows. The second return is `true` when
/// something was dropped. Linear in the input; allocates only when lines must be combined
/// or members were dropped.
pub(crate) fn sanitize(lines: &[&[u8]]) -> (Sanitized, bool) {
    let (kept, non_empty_lines, dropped) = walk(lines, |_| {});
    if kept == 0 {
        return (Sanitized::Empty, dropped);
    }
    if !dropped && non_empty_lines == 1 && lines.len() == 1 {
        return (Sanitized::Unchanged, false);
    }
    let mut out = String::new();
    walk(lines, |m| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(m);
    });
    (Sanitized::Rebuilt(out), dropped)
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct OwnedMember {
    key: String,
    /// Percent-encoded, as on the wire.
    value: String,
    /// Wire form, without the leading `;`.
    properties: String,
}

impl OwnedMember {
    fn encoded_len(&self) -> usize {
        self.key.len()
            + 1
            + self.value.len()
            + if self.properties.is_empty() {
                0
            } else {
                1 + self.properties.len()
            }
    }
}

/// An owned baggage for writing: values are percent-encoded, limits are enforced on insert.
///
/// ```
/// use observe_core::propagation::{Baggage, BaggageBuilder};
///
/// let mut b = BaggageBuilder::new();
/// b.insert("userId", "alice").unwrap();
/// b.insert("serverNode", "DF 28").unwrap();
/// b.insert_with_properties("isProduction", "false", "ttl=30").unwrap();
/// let header = b.to_string();
/// assert_eq!(header, "userId=alice,serverNode=DF%2028,isProduction=false;ttl=30");
/// assert_eq!(Baggage::parse(&header).unwrap().get("serverNode").unwrap().value(), "DF 28");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct BaggageBuilder {
    members: Vec<OwnedMember>,
}

impl BaggageBuilder {
    /// An empty baggage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (any text; it is percent-encoded on write). Replaces an existing
    /// member with that key in place. Fails, changing nothing, if the key is not a token or
    /// the result would exceed [`MAX_MEMBERS`] or [`MAX_BYTES`].
    pub fn insert<'k>(&mut self, key: &'k str, value: &str) -> Result<(), BaggageError<'k>> {
        self.insert_with_properties(key, value, "")
    }

    /// Like [`Self::insert`], with properties given in wire form (`k1=v1;k2`, `""` for none).
    ///
    /// ```
    /// # use observe_core::propagation::{BaggageBuilder, BaggageError};
    /// let mut b = BaggageBuilder::new();
    /// assert_eq!(b.insert_with_properties("k", "v", "p q"), Err(BaggageError::InvalidProperty("p q")));
    /// ```
    pub fn insert_with_properties<'k>(
        &mut self,
        key: &'k str,
        value: &str,
        properties: &'k str,
    ) -> Result<(), BaggageError<'k>> {
        if !valid_key(key) {
            return Err(BaggageError::InvalidKey(key));
        }
        let properties = trim_ows(properties);
        if !properties.is_empty() && !valid_properties(properties) {
            return Err(BaggageError::InvalidProperty(properties));
        }
        let member = OwnedMember {
            key: key.to_owned(),
            value: utf8_percent_encode(value, VALUE_ENCODE).to_string(),
            properties: properties.to_owned(),
        };
        self.put(member)
    }

    fn put<'k>(&mut self, member: OwnedMember) -> Result<(), BaggageError<'k>> {
        let existing = self.members.iter().position(|m| m.key == member.key);
        let count = self.members.len() + usize::from(existing.is_none());
        if count > MAX_MEMBERS {
            return Err(BaggageError::TooManyMembers);
        }
        let others: usize = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != existing)
            .map(|(_, m)| m.encoded_len())
            .sum();
        let len = others + member.encoded_len() + (count - 1);
        if len > MAX_BYTES {
            return Err(BaggageError::TooLong { len });
        }
        match existing {
            Some(i) => self.members[i] = member,
            None => self.members.push(member),
        }
        Ok(())
    }

    /// Removes the member with `key`; `true` if there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.key != key);
        before != self.members.len()
    }

    /// The decoded value for `key`.
    pub fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map(|m| percent_decode_str(&m.value).decode_utf8_lossy())
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Length of the header form in bytes.
    pub fn encoded_len(&self) -> usize {
        self.members
            .iter()
            .map(OwnedMember::encoded_len)
            .sum::<usize>()
            + self.members.len().saturating_sub(1)
    }

    /// The header value, or `None` when empty.
    ///
    /// ```
    /// # use observe_core::propagation::BaggageBuilder;
    /// let mut b = BaggageBuilder::new();
    /// assert!(b.to_header_value().is_none());
    /// b.insert("k", "a,b").unwrap();
    /// assert_eq!(b.to_header_value().unwrap(), "k=a%2Cb");
    /// ```
    pub fn to_header_value(&self) -> Option<http::HeaderValue> {
        if self.is_empty() {
            return None;
        }
        // Keys are tokens, values are encoded to baggage-octets: always a valid header value.
        http::HeaderValue::from_str(&self.to_string()).ok()
    }
}

impl fmt::Display for BaggageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", m.key, m.value)?;
            if !m.properties.is_empty() {
                write!(f, ";{}", m.properties)?;
            }
        }
        Ok(())
    }
}

impl From<Baggage<'_>> for BaggageBuilder {
    /// Copies the members as on the wire (values stay encoded; duplicate keys: first wins).
    fn from(b: Baggage<'_>) -> Self {
        let mut out = BaggageBuilder::new();
        for m in b.iter() {
            if out.members.iter().any(|o| o.key == m.key) {
                continue;
            }
            out.members.push(OwnedMember {
                key: m.key.to_owned(),
                value: m.raw_value.to_owned(),
                properties: m.properties.to_owned(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_a_token() {
        assert!(valid_key("userId"));
        assert!(valid_key("!#$%&'*+-.^_`|~09azAZ"));
        for bad in ["", "a b", "a=b", "a,b", "a;b", "a\"b", "a(b)", "a/b", "é"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn value_octets() {
        assert!(valid_value(""));
        assert!(valid_value("a=b=c"), "values may contain '='");
        assert!(valid_value("%20"));
        for bad in ["a b", "a,b", "a;b", "a\"b", "a\\b", "a\tb", "é"] {
            assert!(!valid_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn member_whitespace_is_trimmed() {
        let m = parse_member("key2 = value2").unwrap();
        assert_eq!((m.key(), m.raw_value()), ("key2", "value2"));
        let m = parse_member("key3=value3; propertyKey=propertyValue").unwrap();
        assert_eq!(m.properties_str(), "propertyKey=propertyValue");
        let p: Vec<_> = m.properties().collect();
        assert_eq!(p[0].key(), "propertyKey");
        assert_eq!(p[0].value().as_deref(), Some("propertyValue"));
    }

    #[test]
    fn member_errors() {
        assert_eq!(parse_member(""), Err(BaggageError::EmptyMember));
        assert_eq!(
            parse_member("novalue"),
            Err(BaggageError::MissingEquals("novalue"))
        );
        assert_eq!(parse_member("k=v;"), Err(BaggageError::InvalidProperty("")));
        assert_eq!(
            parse_member("k=v;a b"),
            Err(BaggageError::InvalidProperty("a b"))
        );
        assert_eq!(
            parse_member("k=v w"),
            Err(BaggageError::InvalidValue("v w"))
        );
    }

    #[test]
    fn limits_on_parse() {
        let members: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        assert_eq!(Baggage::parse(&members[..64].join(",")).unwrap().len(), 64);
        assert_eq!(
            Baggage::parse(&members.join(",")),
            Err(BaggageError::TooManyMembers)
        );
        let exact = format!("k={}", "v".repeat(MAX_BYTES - 2));
        assert!(Baggage::parse(&exact).is_ok());
        let over = format!("k={}", "v".repeat(MAX_BYTES - 1));
        assert_eq!(
            Baggage::parse(&over),
            Err(BaggageError::TooLong { len: MAX_BYTES + 1 })
        );
    }

    #[test]
    fn sanitize_keeps_valid_members() {
        assert_eq!(sanitize(&[b"a=1,b=2"]), (Sanitized::Unchanged, false));
        assert_eq!(sanitize(&[b""]), (Sanitized::Empty, false));
        assert_eq!(
            sanitize(&[b"a=1", b"b=2"]),
            (Sanitized::Rebuilt("a=1,b=2".into()), false)
        );
        assert_eq!(
            sanitize(&[b"a=1,bad key=2, c = 3 "]),
            (Sanitized::Rebuilt("a=1,c = 3".into()), true)
        );
        assert_eq!(sanitize(&[b"\xff=1"]), (Sanitized::Empty, true));
    }

    #[test]
    fn sanitize_enforces_limits_by_dropping_whole_members() {
        let members: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        let (out, dropped) = sanitize(&[members.join(",").as_bytes()]);
        assert!(dropped);
        let Sanitized::Rebuilt(s) = out else {
            panic!("{out:?}")
        };
        assert_eq!(Baggage::parse(&s).unwrap().len(), MAX_MEMBERS);
        assert!(s.ends_with("k63=v"));

        let big = format!("big={},small=1", "x".repeat(MAX_BYTES));
        let (out, dropped) = sanitize(&[big.as_bytes()]);
        assert!(dropped);
        assert_eq!(out, Sanitized::Rebuilt("small=1".into()));
    }

    #[test]
    fn builder_limits() {
        let mut b = BaggageBuilder::new();
        for i in 0..MAX_MEMBERS {
            b.insert(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(b.insert("one-more", "v"), Err(BaggageError::TooManyMembers));
        b.insert("k0", "replaced").unwrap();
        assert_eq!(b.len(), MAX_MEMBERS);
        assert_eq!(b.get("k0").as_deref(), Some("replaced"));

        let mut b = BaggageBuilder::new();
        b.insert("k", &"v".repeat(MAX_BYTES - 2)).unwrap();
        assert_eq!(b.encoded_len(), MAX_BYTES);
        assert!(matches!(
            b.insert("x", ""),
            Err(BaggageError::TooLong { .. })
        ));
        assert_eq!(b.len(), 1);
        assert_eq!(
            b.insert("bad key", "v"),
            Err(BaggageError::InvalidKey("bad key"))
        );
    }

    #[test]
    fn builder_encodes_what_must_be_encoded() {
        let mut b = BaggageBuilder::new();
        b.insert("k", "100% ;,\"\\ é").unwrap();
        let s = b.to_string();
        assert_eq!(s, "k=100%25%20%3B%2C%22%5C%20%C3%A9");
        assert_eq!(
            Baggage::parse(&s).unwrap().get("k").unwrap().value(),
            "100% ;,\"\\ é"
        );
    }
}
