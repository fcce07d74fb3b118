//! OpenTelemetry semantic-convention attributes for HTTP spans, and the redaction applied to
//! the opt-in ones. Only sampled requests build attributes, so allocating here is acceptable.
//!
//! Never recorded unless configured: request headers, the query string. When configured,
//! credential-bearing headers and secret-looking query parameters are redacted.

use http::{HeaderName, Request, Version};
use opentelemetry::KeyValue;

use crate::metrics::{ErrorType, HttpMethod, Route, UrlScheme};

/// `http.request.method`
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.request.method_original` (set when the method is not a known one)
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// `http.response.status_code`
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `http.route`
pub const HTTP_ROUTE: &str = "http.route";
/// `url.path`
pub const URL_PATH: &str = "url.path";
/// `url.scheme`
pub const URL_SCHEME: &str = "url.scheme";
/// `url.query` (opt-in, redacted)
pub const URL_QUERY: &str = "url.query";
/// `url.full` (client spans; without query unless configured)
pub const URL_FULL: &str = "url.full";
/// `server.address`
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`
pub const SERVER_PORT: &str = "server.port";
/// `user_agent.original`
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// `network.protocol.version`
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// `error.type`
pub const ERROR_TYPE: &str = "error.type";

/// The value that replaces a redacted header or query value.
pub const REDACTED: &str = "[REDACTED]";

/// `true` for header names whose values are credentials and must never be recorded.
///
/// ```
/// use observe_core::http::attributes::is_sensitive_header;
/// assert!(is_sensitive_header("Authorization"));
/// assert!(is_sensitive_header("x-auth-token"));
/// assert!(!is_sensitive_header("x-request-id"));
/// ```
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || [
        "token", "secret", "password", "passwd", "session", "auth", "api-key", "apikey",
    ]
    .iter()
    .any(|needle| name.contains(needle))
}

/// `true` for query parameter names whose values look like secrets.
fn is_sensitive_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "key",
        "sig",
        "auth",
        "session",
        "credential",
        "code",
    ]
    .iter()
    .any(|needle| name.contains(needle))
}

/// The query string with the values of secret-looking parameters replaced by `REDACTED`.
///
/// ```
/// use observe_core::http::attributes::redact_query;
/// assert_eq!(redact_query("q=rust&api_key=abc&page=2"), "q=rust&api_key=REDACTED&page=2");
/// assert_eq!(redact_query("access_token=x"), "access_token=REDACTED");
/// ```
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_sensitive_param(name) => {
                out.push_str(name);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// `network.protocol.version` for an HTTP version.
pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

fn push_method<B>(attrs: &mut Vec<KeyValue>, request: &Request<B>, method: HttpMethod) {
    attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, method.as_str()));
    if method.as_str() != request.method().as_str() {
        attrs.push(KeyValue::new(
            HTTP_REQUEST_METHOD_ORIGINAL,
            request.method().as_str().to_owned(),
        ));
    }
}

fn push_user_agent<B>(attrs: &mut Vec<KeyValue>, request: &Request<B>) {
    if let Some(ua) = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attrs.push(KeyValue::new(USER_AGENT_ORIGINAL, ua.to_owned()));
    }
}

/// Attributes of a server span at its start.
pub(crate) fn server_request<B>(
    request: &Request<B>,
    method: HttpMethod,
    scheme: UrlScheme,
    route: Option<Route>,
    headers: &[HeaderName],
    record_query: bool,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(10);
    push_method(&mut attrs, request, method);
    attrs.push(KeyValue::new(URL_PATH, request.uri().path().to_owned()));
    attrs.push(KeyValue::new(URL_SCHEME, scheme.as_str()));
    if let Some(route) = route {
        attrs.push(KeyValue::new(HTTP_ROUTE, route.as_str()));
    }
    if let Some(v) = protocol_version(request.version()) {
        attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
    }
    // server.address: the authority the client addressed (HTTP/2 :authority, else Host).
    let host = request.uri().host().map(str::to_owned).or_else(|| {
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
    });
    if let Some(host) = host {
        attrs.push(KeyValue::new(SERVER_ADDRESS, host));
    }
    push_user_agent(&mut attrs, request);
    if record_query {
        if let Some(q) = request.uri().query() {
            attrs.push(KeyValue::new(URL_QUERY, redact_query(q)));
        }
    }
    for name in headers {
        let values: Vec<String> = request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| {
                if is_sensitive_header(name.as_str()) {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                }
            })
            .collect();
        if !values.is_empty() {
            attrs.push(KeyValue::new(
                format!("http.request.header.{}", name.as_str()),
                opentelemetry::Value::Array(
                    values
                        .into_iter()
                        .map(Into::into)
                        .collect::<Vec<opentelemetry::StringValue>>()
                        .into(),
                ),
            ));
        }
    }
    attrs
}

/// Attributes of a client span at its start.
pub(crate) fn client_request<B>(request: &Request<B>, method: HttpMethod) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(8);
    push_method(&mut attrs, request, method);
    let uri = request.uri();
    if let Some(host) = uri.host() {
        attrs.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
    }
    if let Some(port) = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    }) {
        attrs.push(KeyValue::new(SERVER_PORT, i64::from(port)));
    }
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        // The query string is left out: it often carries credentials.
        attrs.push(KeyValue::new(
            URL_FULL,
            format!("{scheme}://{}{}", authority.as_str(), uri.path()),
        ));
    }
    if let Some(v) = protocol_version(request.version()) {
        attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
    }
    push_user_agent(&mut attrs, request);
    attrs
}

/// Ends a sampled request's span (server or client) with its outcome: the status code when a
/// response exists (`status != 0`), and `error.type` plus an error status when it failed.
pub(crate) fn end_span(cx: &opentelemetry::Context, status: u16, error: Option<ErrorType>) {
    use opentelemetry::trace::{Status, TraceContextExt};
    let span = cx.span();
    if status != 0 {
        span.set_attribute(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status)));
    }
    if let Some(error) = error {
        let error = error.to_string();
        span.set_attribute(KeyValue::new(ERROR_TYPE, error.clone()));
        span.set_status(Status::error(error));
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers_are_recognised_case_insensitively() {
        for name in [
            "authorization",
            "COOKIE",
            "Set-Cookie",
            "x-csrf-token",
            "X-Session-Id",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in ["accept", "x-request-id", "content-type"] {
            assert!(!is_sensitive_header(name), "{name}");
        }
    }

    #[test]
    fn query_redaction_keeps_shape_and_hides_secrets() {
        assert_eq!(redact_query(""), "");
        assert_eq!(redact_query("a=1&b"), "a=1&b");
        assert_eq!(
            redact_query("password=hunter2&user=bob&SIG=abc"),
            "password=REDACTED&user=bob&SIG=REDACTED"
        );
    }
}
