//! The `tracestate` header: validation and borrowed iteration, plus an owned form for mutation.

use std::fmt;

/// At most this many list-members (the spec's limit; more makes the header invalid).
pub const MAX_MEMBERS: usize = 32;
/// The combined length (members and separating commas, without optional whitespace) the
/// spec asks vendors to propagate at least; longer values are truncated by whole entries.
pub const MAX_PROPAGATED_LEN: usize = 512;
/// When truncating, entries longer than this are removed first (the spec's recommendation).
pub const LARGE_MEMBER_LEN: usize = 128;

const MAX_KEY_LEN: usize = 256;
const MAX_TENANT_LEN: usize = 241;
const MAX_SYSTEM_LEN: usize = 14;
const MAX_VALUE_LEN: usize = 256;

/// Why a `tracestate` value, key or value was rejected. Borrows the offending text, so
/// rejecting a hostile header allocates nothing.
///
/// ```
/// use observe_core::propagation::{TraceState, TraceStateError};
/// assert_eq!(TraceState::parse("FOO=1"), Err(TraceStateError::InvalidKey("FOO")));
/// assert_eq!(
///     TraceState::parse("foo=1,foo=2").unwrap_err().to_string(),
///     "tracestate key \"foo\" appears more than once"
/// );
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TraceStateError<'a> {
    /// More than [`MAX_MEMBERS`] list-members.
    #[error("tracestate has more than {MAX_MEMBERS} list-members")]
    TooManyMembers,
    /// A non-empty list-member without `=`.
    #[error("tracestate list-member {0:?} has no '='")]
    MissingEquals(&'a str),
    /// A key outside the spec's grammar (`simple-key` or `tenant@system`).
    #[error("tracestate key {0:?} is invalid")]
    InvalidKey(&'a str),
    /// A value outside the spec's grammar (1–256 printable ASCII, no `,` or `=`, no trailing space).
    #[error("tracestate value {0:?} is invalid")]
    InvalidValue(&'a str),
    /// The same key appears twice.
    #[error("tracestate key {0:?} appears more than once")]
    DuplicateKey(&'a str),
}

const fn is_key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `key = simple-key / multi-tenant-key` (Trace Context Level 1 and 2):
/// `simple-key = lcalpha 0*255(keychar)`, `tenant-id = (lcalpha / DIGIT) 0*240(keychar)`,
/// `system-id = lcalpha 0*13(keychar)`.
pub(crate) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.find('@') {
        None => {
            !b.is_empty()
                && b.len() <= MAX_KEY_LEN
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| is_key_char(c))
        }
        Some(at) => {
            let (tenant, system) = (&b[..at], &b[at + 1..]);
            !tenant.is_empty()
                && tenant.len() <= MAX_TENANT_LEN
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|&c| is_key_char(c))
                && !system.is_empty()
                && system.len() <= MAX_SYSTEM_LEN
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&c| is_key_char(c))
        }
    }
}

/// `value = 0*255(chr) nblk-chr`; `chr` is printable ASCII except `,` and `=`.
pub(crate) fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_VALUE_LEN
        && b[b.len() - 1] != b' '
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

const fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A validated `tracestate` borrowed from the header value: no allocation.
///
/// ```
/// use observe_core::propagation::TraceState;
///
/// let ts = TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").unwrap();
/// assert_eq!(ts.len(), 2);
/// assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
/// let members: Vec<_> = ts.iter().collect();
/// assert_eq!(members, [("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]);
/// assert!(TraceState::parse("foo=1,foo=2").is_err());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct TraceState<'a> {
    raw: &'a str,
    len: usize,
    encoded_len: usize,
}

impl<'a> TraceState<'a> {
    /// Validates a (combined) `tracestate` value. Empty and whitespace-only list-members are
    /// allowed and skipped; more than 32 members, a malformed key or value, or a duplicate
    /// key make the whole value invalid. Stops at the 33rd member, so the work is bounded
    /// by the input length however many members a hostile header carries.
    ///
    /// ```
    /// use observe_core::propagation::{TraceState, TraceStateError};
    /// assert_eq!(TraceState::parse("foo=bar=baz"), Err(TraceStateError::InvalidValue("bar=baz")));
    /// assert!(TraceState::parse(" , ,").unwrap().is_empty());
    /// ```
    pub fn parse(raw: &'a str) -> Result<TraceState<'a>, TraceStateError<'a>> {
        let mut keys: [&str; MAX_MEMBERS] = [""; MAX_MEMBERS];
        let mut len = 0;
        let mut encoded_len = 0;
        for member in raw.split(',') {
            let member = member.trim_matches(is_ows);
            if member.is_empty() {
                continue;
            }
            if len == MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let (key, value) = member
                .split_once('=')
                .ok_or(TraceStateError::MissingEquals(member))?;
            if !valid_key(key) {
                return Err(TraceStateError::InvalidKey(key));
            }
            if !valid_value(value) {
                return Err(TraceStateError::InvalidValue(value));
            }
            if keys[..len].contains(&key) {
                return Err(TraceStateError::DuplicateKey(key));
            }
            keys[len] = key;
            len += 1;
            encoded_len += member.len() + usize::from(len > 1);
        }
        Ok(TraceState {
            raw,
            len,
            encoded_len,
        })
    }

    /// The value as received (possibly with optional whitespace and empty members).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The number of list-members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when there are no list-members (an empty header is valid but should not be sent).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length of the normalized form: members joined by `,`, without optional whitespace.
    /// This is the length the spec's 512-character guidance counts.
    ///
    /// ```
    /// # use observe_core::propagation::TraceState;
    /// assert_eq!(TraceState::parse("a=1 , b=2").unwrap().encoded_len(), 7);
    /// ```
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// The `(key, value)` list-members in order.
    pub fn iter(&self) -> Members<'a> {
        Members {
            inner: self.raw.split(','),
        }
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// An owned copy for mutation (the sampled path only).
    ///
    /// ```
    /// # use observe_core::propagation::TraceState;
    /// let mut owned = TraceState::parse("congo=t61rcWkgMzE").unwrap().to_buf();
    /// owned.insert("rojo", "00f067aa0ba902b7").unwrap();
    /// assert_eq!(owned.to_string(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /// ```
    pub fn to_buf(&self) -> TraceStateBuf {
        TraceStateBuf {
            members: self
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl<'a> IntoIterator for &TraceState<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = Members<'a>;
    fn into_iter(self) -> Members<'a> {
        self.iter()
    }
}

/// Iterator over the `(key, value)` members of a [`TraceState`]; borrows, never allocates.
///
/// ```
/// # use observe_core::propagation::TraceState;
/// let ts = TraceState::parse(" a=1 ,, b=2 ").unwrap();
/// assert_eq!(ts.iter().map(|(k, _)| k).collect::<String>(), "ab");
/// ```
#[derive(Clone, Debug)]
pub struct Members<'a> {
    inner: std::str::Split<'a, char>,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let member = self.inner.next()?.trim_matches(is_ows);
            if member.is_empty() {
                continue;
            }
            // Only reachable through a validated TraceState, so '=' is present.
            return member.split_once('=');
        }
    }
}

/// An owned, mutable `tracestate`: used only when this service adds or updates its own
/// entry (the sampled path). Keeps at most [`MAX_MEMBERS`] members, unique keys.
///
/// ```
/// use observe_core::propagation::TraceStateBuf;
/// let mut ts = TraceStateBuf::new();
/// ts.insert("congo", "t61rcWkgMzE").unwrap();
/// ts.insert("rojo", "00f067aa0ba902b7").unwrap();
/// ts.insert("congo", "ucfJifl5GOE").unwrap(); // updated entries move to the front
/// assert_eq!(ts.to_string(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
/// assert!(ts.insert("Bad", "x").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct TraceStateBuf {
    members: Vec<(String, String)>,
}

impl TraceStateBuf {
    /// An empty tracestate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or updates `key`, placing it at the front as the spec requires for modified
    /// entries. If that makes 33 members, the right-most one is dropped.
    pub fn insert<'k>(&mut self, key: &'k str, value: &'k str) -> Result<(), TraceStateError<'k>> {
        if !valid_key(key) {
            return Err(TraceStateError::InvalidKey(key));
        }
        if !valid_value(value) {
            return Err(TraceStateError::InvalidValue(value));
        }
        self.remove(key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_MEMBERS);
        Ok(())
    }

    /// Removes `key`, returning its value.
    ///
    /// ```
    /// # use observe_core::propagation::TraceStateBuf;
    /// let mut ts = TraceStateBuf::new();
    /// ts.insert("a", "1").unwrap();
    /// assert_eq!(ts.remove("a").as_deref(), Some("1"));
    /// assert!(ts.is_empty());
    /// ```
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(at).1)
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The `(key, value)` members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Length of the header form (members joined by `,`).
    pub fn encoded_len(&self) -> usize {
        self.members
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum::<usize>()
            + self.members.len().saturating_sub(1)
    }

    /// Removes whole entries until the header form is at most `max_len` characters, the way
    /// the spec recommends: entries longer than 128 characters first (right-most first), then
    /// entries from the end. Returns how many entries were removed.
    ///
    /// ```
    /// # use observe_core::propagation::TraceStateBuf;
    /// let mut ts = TraceStateBuf::new();
    /// ts.insert("big", &"x".repeat(200)).unwrap();
    /// ts.insert("small", "1").unwrap();
    /// assert_eq!(ts.truncate_to(100), 1);
    /// assert_eq!(ts.to_string(), "small=1");
    /// ```
    pub fn truncate_to(&mut self, max_len: usize) -> usize {
        let mut removed = 0;
        let mut len = self.encoded_len();
        while len > max_len && !self.members.is_empty() {
            let at = self
                .members
                .iter()
                .rposition(|(k, v)| k.len() + 1 + v.len() > LARGE_MEMBER_LEN)
                .unwrap_or(self.members.len() - 1);
            let (k, v) = self.members.remove(at);
            len -= k.len() + 1 + v.len() + usize::from(!self.members.is_empty());
            removed += 1;
        }
        removed
    }

    /// The header value, or `None` when empty (the spec says not to send empty headers).
    ///
    /// ```
    /// # use observe_core::propagation::TraceStateBuf;
    /// assert!(TraceStateBuf::new().to_header_value().is_none());
    /// ```
    pub fn to_header_value(&self) -> Option<http::HeaderValue> {
        if self.is_empty() {
            return None;
        }
        // Validated keys and values are printable ASCII, so this cannot fail.
        http::HeaderValue::from_str(&self.to_string()).ok()
    }
}

impl fmt::Display for TraceStateBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl From<TraceState<'_>> for TraceStateBuf {
    fn from(ts: TraceState<'_>) -> Self {
        ts.to_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_grammar() {
        assert!(valid_key("foo"));
        assert!(valid_key("a0_-*/"));
        assert!(!valid_key("0foo"), "simple keys start with a letter");
        assert!(
            valid_key("0tenant@sys"),
            "tenant ids may start with a digit"
        );
        assert!(!valid_key("Foo"));
        assert!(!valid_key("foo.bar"));
        assert!(!valid_key(""));
        assert!(valid_key(&"z".repeat(256)));
        assert!(!valid_key(&"z".repeat(257)));
        assert!(valid_key(&format!(
            "{}@{}",
            "t".repeat(241),
            "v".repeat(14)
        )));
        assert!(!valid_key(&format!("{}@v", "t".repeat(242))));
        assert!(!valid_key(&format!("t@{}", "v".repeat(15))));
        for bad in ["foo@", "@foo", "foo@@bar", "foo@bar@baz", "foo@0bar"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn value_grammar() {
        assert!(valid_value("1"));
        assert!(valid_value(" leading spaces are kept"));
        assert!(!valid_value(""));
        assert!(!valid_value("trailing "));
        assert!(!valid_value("a,b"));
        assert!(!valid_value("a=b"));
        assert!(!valid_value("tab\there"));
        assert!(!valid_value("é"));
        assert!(valid_value(&"v".repeat(256)));
        assert!(!valid_value(&"v".repeat(257)));
    }

    #[test]
    fn member_limit_is_32() {
        let members: Vec<String> = (1..=33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            TraceState::parse(&members[..32].join(",")).unwrap().len(),
            32
        );
        assert_eq!(
            TraceState::parse(&members.join(",")),
            Err(TraceStateError::TooManyMembers)
        );
    }

    #[test]
    fn insert_caps_at_32_dropping_the_rightmost() {
        let mut ts = TraceStateBuf::new();
        for i in 0..32 {
            ts.insert(&format!("k{i}"), "v").unwrap();
        }
        ts.insert("new", "v").unwrap();
        assert_eq!(ts.len(), 32);
        assert_eq!(ts.iter().next(), Some(("new", "v")));
        assert!(ts.get("k0").is_none(), "the oldest, right-most entry goes");
    }

    #[test]
    fn truncation_removes_large_then_rightmost() {
        let mut ts = TraceStateBuf::new();
        ts.insert("z", "1").unwrap();
        ts.insert("large", &"l".repeat(130)).unwrap();
        ts.insert("y", &"m".repeat(100)).unwrap();
        ts.insert("x", &"m".repeat(100)).unwrap();
        // x(102),y(102),large(136),z(3) + 3 commas = 346
        assert_eq!(ts.encoded_len(), 346);
        assert_eq!(ts.truncate_to(250), 1);
        assert!(ts.get("large").is_none());
        assert_eq!(ts.encoded_len(), 209);
        assert_eq!(ts.truncate_to(206), 1, "then from the end");
        assert!(ts.get("z").is_none());
        assert_eq!(ts.truncate_to(0), 2);
        assert!(ts.is_empty());
        assert_eq!(ts.encoded_len(), ts.to_string().len());
    }
}
