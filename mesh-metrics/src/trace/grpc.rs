//! gRPC's status, as a span reports it.
//!
//! A gRPC call that fails is still an HTTP 200: its outcome is the
//! `grpc-status` it ends with, in the trailers after the last message, or
//! in the response head when the server answers with no message at all (a
//! "trailers-only" response). OpenTelemetry's gRPC conventions
//! (semantic-conventions, `docs/rpc/grpc.md`, "gRPC Status") have a span
//! carry the code as `rpc.grpc.status_code`, and set its status to Error:
//!
//! - for a client span, on any code but `OK`;
//! - for a server span, only on `UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS`: the other
//!   codes (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) say the caller asked for
//!   something wrong, as an HTTP 4xx does, not that the server failed.

use http::{HeaderMap, HeaderName, header};
use mesh_core::classify::GrpcCode;

use super::span::SpanKind;

/// `grpc-status`.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Whether `headers` are those of a gRPC response: `content-type` is
/// `application/grpc`, alone or with a `+format` or parameters. gRPC-Web
/// (`application/grpc-web`) is not: it sends its trailers in the body.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Some(rest) = value.as_bytes().strip_prefix(b"application/grpc") else {
        return false;
    };
    matches!(rest.first(), None | Some(b'+' | b';'))
}

/// A `grpc-status` code: a number, of which gRPC names 0 to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrpcStatus(pub(crate) u32);

/// `UNIMPLEMENTED`: the server does not serve the method called.
pub(crate) const UNIMPLEMENTED: u32 = 12;

/// The codes that are a server's failure, not its caller's.
const SERVER_ERRORS: [u32; 6] = [2, 4, 12, 13, 14, 15];

impl GrpcStatus {
    /// The `grpc-status` in `headers`: decimal digits, as gRPC sends it.
    /// `None` when there is none or it is not a number.
    pub(crate) fn read(headers: &HeaderMap) -> Option<Self> {
        let digits = headers.get(GRPC_STATUS)?.as_bytes();
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = digits
            .iter()
            .fold(0, |code, d| code * 10 + u32::from(d - b'0'));
        Some(Self(code))
    }

    /// Its name (`UNAVAILABLE`), a closed set: `_OTHER` for a number gRPC
    /// does not name, as OpenTelemetry names what it does not know.
    pub(crate) fn name(self) -> &'static str {
        u16::try_from(self.0)
            .ok()
            .and_then(|code| GrpcCode::from_u16(code).upper_name())
            .unwrap_or("_OTHER")
    }

    /// Whether a span of `kind` that ended with this code failed.
    pub(crate) fn is_error(self, kind: SpanKind) -> bool {
        match kind {
            SpanKind::Client => self.0 != 0,
            SpanKind::Server => SERVER_ERRORS.contains(&self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/grpcx", false),
            ("application/json", false),
        ] {
            let h = headers(&[("content-type", content_type)]);
            assert_eq!(is_grpc(&h), grpc, "{content_type}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn the_status_is_a_decimal_number() {
        let read = |v| GrpcStatus::read(&headers(&[("grpc-status", v)]));
        assert_eq!(read("0"), Some(GrpcStatus(0)));
        assert_eq!(read("14"), Some(GrpcStatus(14)));
        assert_eq!(read("99"), Some(GrpcStatus(99)));
        assert_eq!(read(""), None);
        assert_eq!(read("-1"), None);
        assert_eq!(read("x"), None);
        assert_eq!(read("9999999999"), None);
        assert_eq!(GrpcStatus::read(&HeaderMap::new()), None);
        assert_eq!(GrpcStatus(14).name(), "UNAVAILABLE");
        assert_eq!(GrpcStatus(16).name(), "UNAUTHENTICATED");
        assert_eq!(GrpcStatus(17).name(), "_OTHER");
    }

    #[test]
    fn clients_fail_on_every_code_but_ok_servers_on_their_own_failures() {
        let server: Vec<u32> = (0..=17)
            .filter(|&c| GrpcStatus(c).is_error(SpanKind::Server))
            .collect();
        assert_eq!(server, [2, 4, 12, 13, 14, 15]);
        let client: Vec<u32> = (0..=17)
            .filter(|&c| GrpcStatus(c).is_error(SpanKind::Client))
            .collect();
        assert_eq!(client, (1..=17).collect::<Vec<_>>());
    }
}
