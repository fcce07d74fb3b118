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
}

impl Default for Redactor {
    /// Redacts [`DEFAULT_REDACTED_FIELDS`].
    fn default() -> Self {
        Redactor::none().with_fields(DEFAULT_REDACTED_FIELDS.iter().copied())
    }
}

#[inline]
fn norm(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_lowercase()
    }
}

impl Redactor {
    /// A redactor that redacts nothing.
    pub fn none() -> Self {
        Redactor { names: Vec::new() }
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
                self.names.push(n);
            }
        }
        self
    }

    /// Whether values of the field `name` must be written as [`REDACTED`].
    pub fn is_redacted(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.names
            .iter()
            .any(|n| n.len() == name.len() && n.iter().zip(name).all(|(&a, &b)| a == norm(b)))
    }
}
