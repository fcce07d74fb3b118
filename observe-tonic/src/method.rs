//! The `rpc.method` of a call, read from its request path.
//!
//! gRPC calls `POST /{package.Service}/{Method}`; `rpc.method` is that path without the leading
//! slash. A path that is not of this shape is not a gRPC method and collapses to `_OTHER`.

/// `pkg.Service/Method` from `/pkg.Service/Method`, or `None` when the path is not a gRPC
/// method path: exactly two non-empty segments of printable ASCII without spaces, and no
/// longer than [`MAX_LEN`] (a method name never is; an attacker's might be).
pub(crate) fn parse(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest.len() > MAX_LEN {
        return None;
    }
    let (service, method) = rest.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    (ok(service) && ok(method)).then_some(rest)
}

/// Like [`parse`], for a configured name given with or without the leading slash.
pub(crate) fn parse_name(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('/').unwrap_or(name);
    let (service, method) = rest.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    (rest.len() <= MAX_LEN && ok(service) && ok(method)).then_some(rest)
}

/// A method name that passed [`parse`], copied inline.
///
/// A call keeps its method name until the response says whether the server routed it; the
/// copy lives inside the call's future (no heap), where cloning the request's path could
/// allocate (a `Bytes` made from a `Vec` allocates its shared header on first clone).
#[derive(Clone, Copy)]
pub(crate) struct InlineName {
    len: u16,
    buf: [u8; MAX_LEN],
}

impl InlineName {
    /// `name` must be one [`parse`] returned (at most [`MAX_LEN`] bytes of ASCII).
    pub(crate) fn new(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        let mut buf = [0u8; MAX_LEN];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(InlineName {
            len: bytes.len() as u16,
            buf,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII goes in, so this never fails; `_OTHER` keeps it total anyway.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("_OTHER")
    }
}

/// The longest `rpc.method` value accepted; longer paths are `_OTHER`.
pub(crate) const MAX_LEN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths() {
        assert_eq!(
            parse("/helloworld.Greeter/SayHello"),
            Some("helloworld.Greeter/SayHello")
        );
        assert_eq!(parse("/EchoService/Echo"), Some("EchoService/Echo"));
        for bad in [
            "",
            "/",
            "//",
            "/a/",
            "/a//b",
            "/a/b/c",
            "a/b",
            "/a b/c",
            "/svc",
            "/svc/m\u{e9}",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse_name("pkg.S/M"), Some("pkg.S/M"));
        assert_eq!(parse_name("/pkg.S/M"), Some("pkg.S/M"));
        assert_eq!(parse_name("pkg.S"), None);
        let inline = InlineName::new("pkg.S/M").unwrap();
        assert_eq!(inline.as_str(), "pkg.S/M");
        assert!(InlineName::new(&"x".repeat(MAX_LEN + 1)).is_none());
        let long = format!("/{}/M", "s".repeat(MAX_LEN));
        assert_eq!(parse(&long), None);
    }
}
