//! Redaction of secret values by field name.

/// What a redacted value is written as.
///
/// ```
/// assert_eq!(observe_core::logs::REDACTED, "[REDACTED]");
/// ```
pub const REDACTED: &str = "[REDACTED]";

/// Field names redacted by default (compared case-insensitively, `-` and `_` alike).
///
/// ```
/// use observe_core::logs::{Redactor, DEFAULT_REDACTED_FIELDS};
/// assert!(DEFAULT_REDACTED_FIELDS.iter().all(|f| Redactor::default().is_redacted(f)));
/// ```
pub const DEFAULT_REDACTED_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "api_key",
    "apikey",
    "x-api-key",
    "private_key",
    "credentials",
    "session",
];

/// Decides which field names hold secrets.
///
/// Names match whole (not by substring), ignoring ASCII case and treating `-` and `_` as the
/// same character, so `Set-Cookie`, `set_cookie` and `SET-COOKIE` are one name. Matching
/// allocates nothing.
///
/// ```
/// use observe_core::logs::Redactor;
/// let r = Redactor::default().with_fields(["card_number"]);
/// assert!(r.is_redacted("Authorization"));
/// assert!(r.is_redacted("X_API_KEY"));
/// assert!(r.is_redacted("card-number"));
/// assert!(!r.is_redacted("password_hint_shown"));
/// assert!(!Redactor::none().is_redacted("password"));
/// ```
#[derive(Clone, Debug)]
pub struct Redactor {
    /// Normalised names: ASCII lowercase, `-` replaced by `_`.
    names: Vec<Box<[u8]>>,
    /// Summary of `names`: most field names are ruled out by one test, not a list walk.
    filter: NameFilter,
}

/// A two-word summary of a set of names by each name's length and first and last byte: a name
/// whose bit is clear is surely not in the set. It is asked for every field of every log
/// line, and most field names are in no set.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NameFilter(u128);

impl NameFilter {
    /// The bit of a name of `len` bytes from `first` to `last`: the three mixed by a
    /// multiplicative hash, whose top 7 bits pick one of 128.
    const fn bit_of(len: usize, first: u8, last: u8) -> u128 {
        let key = (len as u32) | (last as u32) << 8 | (first as u32) << 16;
        1 << (key.wrapping_mul(0x9E37_79B1) >> 25)
    }

    /// The bit of `name`, normalised first when `normalise` (for the redactor's names).
    const fn bit(name: &[u8], normalise: bool) -> u128 {
        let ([first, .., last] | [first @ last]) = name else {
            return Self::bit_of(0, 0, 0);
        };
        let (first, last) = if normalise {
            (norm(*first), norm(*last))
        } else {
            (*first, *last)
        };
        Self::bit_of(name.len(), first, last)
    }

    /// The filter of `names`, compared exactly (for observe's own keys).
    pub(crate) const fn of(names: &[&str]) -> Self {
        let mut filter = 0;
        let mut i = 0;
        while i < names.len() {
            filter |= Self::bit(names[i].as_bytes(), false);
            i += 1;
        }
        NameFilter(filter)
    }

    /// Whether `name` may be in the set (`false`: surely not).
    #[inline]
    pub(crate) fn may_contain(self, name: &[u8]) -> bool {
        self.0 & Self::bit(name, false) != 0
    }

    /// The same for a set of normalised names, `name` as given (normalised here).
    #[inline]
    fn may_contain_normalised(self, name: &[u8]) -> bool {
        self.0 & Self::bit(name, true) != 0
    }
}

impl Default for Redactor {
    /// Redacts [`DEFAULT_REDACTED_FIELDS`].
    fn default() -> Self {
        Redactor::none().with_fields(DEFAULT_REDACTED_FIELDS.iter().copied())
    }
}

#[inline]
const fn norm(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_lowercase()
    }
}

impl Redactor {
    /// A redactor that redacts nothing.
    pub fn none() -> Self {
        Redactor {
            names: Vec::new(),
            filter: NameFilter::default(),
        }
    }

    /// These names redacted as well.
    pub fn with_fields<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        for name in names {
            let n: Box<[u8]> = name.as_ref().bytes().map(norm).collect();
            if !n.is_empty() && !self.names.contains(&n) {
                self.filter.0 |= NameFilter::bit(&n, false);
                self.names.push(n);
            }
        }
        self
    }

    /// Whether values of the field `name` must be written as [`REDACTED`].
    pub fn is_redacted(&self, name: &str) -> bool {
        let name = name.as_bytes();
        if !self.filter.may_contain_normalised(name) {
            return false;
        }
        self.names
            .iter()
            .any(|n| n.len() == name.len() && n.iter().zip(name).all(|(&a, &b)| a == norm(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter never rules out a name of its set: every default name, in any case and with
    /// `-` or `_`, is still redacted.
    #[test]
    fn the_filter_keeps_every_name_of_the_set() {
        let r = Redactor::default();
        for name in DEFAULT_REDACTED_FIELDS {
            let upper = name.to_ascii_uppercase();
            let dashed = name.replace('_', "-");
            let underscored = name.replace('-', "_");
            for variant in [*name, &upper, &dashed, &underscored] {
                assert!(r.is_redacted(variant), "{variant}");
            }
        }
        let one = Redactor::none().with_fields(["x", "ab"]);
        assert!(one.is_redacted("X") && one.is_redacted("ab") && !one.is_redacted("a"));
        let keys = ["timestamp", "level", "span_id", "service.name", "a"];
        let filter = NameFilter::of(&keys);
        assert!(keys.iter().all(|k| filter.may_contain(k.as_bytes())));
    }

    /// It rules out common field names, which then skip the list entirely.
    #[test]
    fn the_filter_rules_out_common_names() {
        let r = Redactor::default();
        let common = [
            "user_id", "order_id", "amount", "status", "method", "path", "count",
        ];
        let passed: Vec<_> = common
            .iter()
            .filter(|n| r.filter.may_contain_normalised(n.as_bytes()))
            .collect();
        assert!(passed.len() <= 1, "{passed:?} pass the filter");
        assert!(common.iter().all(|n| !r.is_redacted(n)));
    }
}
