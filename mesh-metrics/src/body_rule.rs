//! Whether a response has a body a server will read to its end, and how
//! much of its declared length is still to come: what the layers that
//! wait for a body's end need to know so as not to read a body the server
//! drops unread as a cancelled one, nor one that ends short as complete.
//!
//! hyper's HTTP/1 server never reads the body of a response to `HEAD`, of
//! a 1xx, 204 or 304, or of a 2xx to `CONNECT`, and stops reading a body
//! once it has written its declared length, dropping it without asking
//! for its end.

use http::{Method, Response, StatusCode, header::CONTENT_LENGTH};
use http_body::Body;
use mesh_core::classify::ErrorKind;

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

/// The bytes of a response body's declared length not yet sent, as the
/// layers that wait for a body's end count them down: what tells a body
/// that ended from one cut short.
///
/// A server stops reading a body once it has sent its declared length
/// (hyper drops it without asking for its end), so a body dropped with
/// nothing left [`is_sent`](Self::is_sent): it ended, and was not
/// cancelled. A stream that ends with bytes left
/// [`ends_short`](Self::ends_short): its client reads an incomplete
/// message (RFC 9112, 6.3; RFC 9113, 8.1.1), whatever its status said.
/// hyper's HTTP/1 server aborts such a response, and its HTTP/2 client
/// ends a body at an upstream's `RST_STREAM(NO_ERROR)` as if it were
/// complete, so the layers say so themselves: as [`CUT_SHORT`], the kind
/// hyper's `IncompleteMessage` is.
///
/// A `u64` with a value for "not declared", not an `Option`: it is held
/// by every response a layer waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Remaining(u64);

/// The kind of failure of a body that ends short of its declared length:
/// a reset, as mesh-core's `ErrorKind::of` reads hyper's error for a
/// message cut short.
pub(crate) const CUT_SHORT: ErrorKind = ErrorKind::Reset;

impl Remaining {
    /// [`Remaining::of`] a response that declares no length.
    const UNKNOWN: u64 = u64::MAX;

    /// Nothing more to send: a response over with its head.
    pub(crate) const NONE: Self = Self(0);

    /// What is left of `res`'s body before its first byte: its
    /// [`expected_length`], or unknown.
    pub(crate) fn of<B: Body>(res: &Response<B>) -> Self {
        Self(expected_length(res).unwrap_or(Self::UNKNOWN))
    }

    /// `n` more bytes of the body were sent.
    pub(crate) fn sent(&mut self, n: u64) {
        if self.0 != Self::UNKNOWN {
            self.0 = self.0.saturating_sub(n);
        }
    }

    /// Whether the body has sent the whole of its declared length: a
    /// server that drops it now needs no more.
    pub(crate) fn is_sent(self) -> bool {
        self.0 == 0
    }

    /// Whether a stream that ends now ends short of its declared length.
    pub(crate) fn ends_short(self) -> bool {
        self.0 != 0 && self.0 != Self::UNKNOWN
    }
}
