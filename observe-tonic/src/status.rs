//! Where a call's gRPC status comes from, and which statuses count as errors.
//!
//! A gRPC response carries its status in the `grpc-status` trailer at the end of the body, or,
//! for a "trailers-only" response (an error before any message), in the response headers.
//! When neither is present the HTTP status stands in, mapped the way gRPC's own
//! `http-grpc-status-mapping.md` maps it.

use std::error::Error as StdError;

use http::{HeaderMap, StatusCode};
use tonic::Code;

/// The `grpc-status` value in `headers`, if the header is there. A value that is not one of the
/// 17 codes reads as `Unknown`, as the gRPC spec asks.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The status a response ends with when its trailers (or end of stream) carry no
/// `grpc-status`: derived from the HTTP status as gRPC specifies. An HTTP 200 without a status
/// is a protocol violation, which gRPC reads as `Unknown`.
pub(crate) fn from_http_status(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The status of a call that failed with `err` instead of a response or a body frame: a
/// `tonic::Status` anywhere in the error's source chain wins; otherwise `fallback` (servers use
/// `Unknown`, as tonic does for handler errors; clients use `Unavailable`, as tonic does for
/// transport errors).
pub(crate) fn from_error(err: &(dyn StdError + 'static), fallback: Code) -> Code {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        source = e.source();
    }
    fallback
}

/// Whether a server reports `code` as an error (span status, `error.type`): only the codes the
/// gRPC semantic conventions list as server errors. `NOT_FOUND` or `INVALID_ARGUMENT` are the
/// caller's problem, not the server's, so they do not page anyone.
pub(crate) fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Whether a client reports `code` as an error: every code but `OK`.
pub(crate) fn is_client_error(code: Code) -> bool {
    code != Code::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn header_codes_parse_and_garbage_is_unknown() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), None);
        h.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(from_headers(&h), Some(Code::NotFound));
        h.insert("grpc-status", HeaderValue::from_static("16"));
        assert_eq!(from_headers(&h), Some(Code::Unauthenticated));
        for bad in ["17", "-1", "", "ok", "0001", "99999999999999999999"] {
            h.insert("grpc-status", HeaderValue::from_str(bad).unwrap());
            assert_eq!(from_headers(&h), Some(Code::Unknown), "{bad:?}");
        }
    }

    #[test]
    fn http_status_mapping_follows_grpc() {
        assert_eq!(from_http_status(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(
            from_http_status(StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(from_http_status(StatusCode::OK), Code::Unknown);
        assert_eq!(from_http_status(StatusCode::IM_A_TEAPOT), Code::Unknown);
    }

    #[test]
    fn status_in_error_chain_wins() {
        #[derive(Debug)]
        struct Wrap(tonic::Status);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(tonic::Status::not_found("x"));
        assert_eq!(from_error(&e, Code::Unknown), Code::NotFound);
        let io = std::io::Error::other("boom");
        assert_eq!(from_error(&io, Code::Unavailable), Code::Unavailable);
    }

    #[test]
    fn server_errors_are_the_semconv_list() {
        let errors: Vec<_> = (0..=16)
            .map(Code::from_i32)
            .filter(|c| is_server_error(*c))
            .map(|c| observe_core::metrics::GrpcCode::from_i32(c as i32).as_str())
            .collect();
        assert_eq!(
            errors,
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        assert!(!is_client_error(Code::Ok) && is_client_error(Code::NotFound));
    }
}
