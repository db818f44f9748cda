//! Whether a response has a body a server will read to its end: what the
//! layers that wait for a body's end need to know so as not to read a
//! body the server drops unread as a cancelled one.
//!
//! hyper's HTTP/1 server never reads the body of a response to `HEAD`, of
//! a 1xx, 204 or 304, or of a 2xx to `CONNECT`, and stops reading a body
//! once it has written its declared length, dropping it without asking
//! for its end.

use http::{Method, Response, StatusCode, header::CONTENT_LENGTH};
use http_body::Body;

/// What the request's method says of the response body (RFC 9110, 6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyRule {
    /// The status decides.
    ByStatus,
    /// `HEAD`: a response never has a body.
    Head,
    /// `CONNECT`: a 2xx response has no body; a tunnel follows it.
    Connect,
}

impl BodyRule {
    /// The rule of a request with `method`.
    pub(crate) fn of(method: &Method) -> Self {
        if method == Method::HEAD {
            Self::Head
        } else if method == Method::CONNECT {
            Self::Connect
        } else {
            Self::ByStatus
        }
    }

    /// Whether a response with `status` carries a body at all. One that
    /// does not is over with its head, and a server never reads its body.
    pub(crate) fn has_body(self, status: StatusCode) -> bool {
        match self {
            Self::Head => false,
            Self::Connect if status.is_success() => false,
            _ => {
                !(status.is_informational()
                    || status == StatusCode::NO_CONTENT
                    || status == StatusCode::NOT_MODIFIED)
            }
        }
    }
}

/// The length a server sends of `res`'s body before it stops reading it:
/// the body's exact size hint (hyper writes it as the `content-length`
/// when there is none) or, failing one, the `content-length` header.
/// `None` when neither says.
///
/// The hint is read first: most bodies (hyper's, full ones) know their
/// length, and a header lookup costs more.
pub(crate) fn expected_length<B: Body>(res: &Response<B>) -> Option<u64> {
    res.body().size_hint().exact().or_else(|| {
        res.headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    })
}
