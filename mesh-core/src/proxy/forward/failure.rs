//! Telling a failed request's causes apart, and writing them down.

use std::{any::Any, error::Error, fmt};

use http::{Response, StatusCode};

use crate::{
    classify::Classify,
    error::{BoxError, GRPC_STATUS, is_grpc},
};

/// Whether `error` is the caller's rather than the endpoint's: hyper
/// could not send the request as given, most often because its body
/// failed (a malformed chunked body, say). Such a failure says nothing of
/// the endpoint, and counted against it, a client could have failure
/// accrual take every endpoint out.
///
/// Over HTTP/1 hyper says so with a user error. Over HTTP/2 a request
/// body that fails makes the client reset its stream, and what comes back
/// is that reset: one this side sent on the user's behalf, where a reset
/// the upstream sent is remote and one for a protocol error is the
/// library's.
pub(super) fn is_callers(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        if e.downcast_ref::<h2::Error>()
            .is_some_and(|e| e.is_reset() && !e.is_remote() && !e.is_library())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether `error` is the endpoint turning the request away unprocessed
/// over HTTP/2, by its own word: a stream it reset with `REFUSED_STREAM`
/// (RFC 9113 §8.7: one it did no processing of), or one above the last
/// stream id of a `GOAWAY` it sent with `NO_ERROR` (a graceful restart or
/// a connection it sheds). A server shedding load or draining says so;
/// a failing one does not, and one refusal counted as a failure could
/// take a healthy endpoint out.
///
/// Narrower than [`is_unprocessed`](crate::error::is_unprocessed): a
/// request hyper dropped unsent because its fresh connection closed at
/// once is unprocessed too, but says nothing good of an endpoint that
/// closes every connection it accepts, and still counts.
pub(super) fn turned_away(error: &(dyn Error + 'static)) -> bool {
    crate::error::is_turned_away(error)
}

/// Whether `res` says its endpoint failed, for failure accrual and the
/// balancer: a 5xx, or a gRPC answer whose status in its head (a
/// trailers-only answer, how a gRPC server answers a call it fails before
/// any message) is a failure by mesh-core's default classifier, Linkerd's
/// codes (`UNAVAILABLE`, `INTERNAL`...), as its metrics count it. gRPC
/// answers failures with HTTP 200, so without it a
/// server `UNAVAILABLE` on every call would never be taken out; a
/// `NOT_FOUND` describes the call, as a 404 does. A status that comes in
/// trailers is judged at the body's end instead ([`status_in_trailers`]).
///
/// A gRPC call (`grpc_call`) answered by a `2xx` that is not gRPC at all
/// (an HTML page: a web server where a gRPC server should be) failed too:
/// its client reads `UNKNOWN`, and every call to that endpoint will.
pub(super) fn endpoint_failed<B>(res: &Response<B>, grpc_call: bool) -> bool {
    let status = res.status();
    if status.is_server_error() {
        return true;
    }
    let headers = res.headers();
    if headers.contains_key(GRPC_STATUS) {
        return is_grpc(headers)
            && Classify::default()
                .classify_trailers(Some(headers))
                .is_failure();
    }
    grpc_call && status.is_success() && !is_grpc(headers)
}

/// Whether `res`, the answer to a gRPC call, leaves its status to its
/// trailers: a `200` of gRPC without `grpc-status` in its head. Whether it
/// failed is known only when its body ends ([`body`](super::body)). Any
/// other status is final at the head, as gRPC clients read it.
pub(super) fn status_in_trailers<B>(res: &Response<B>) -> bool {
    let headers = res.headers();
    res.status() == StatusCode::OK && !headers.contains_key(GRPC_STATUS) && is_grpc(headers)
}

/// [`is_callers`] for the error a response body failed with, of either
/// type a client's body fails with: hyper's, or one already boxed. An
/// error of any other type is taken for the endpoint's.
pub(super) fn is_callers_body<E: 'static>(error: &E) -> bool {
    let error: &dyn Any = error;
    if let Some(error) = error.downcast_ref::<hyper::Error>() {
        return is_callers(error);
    }
    error
        .downcast_ref::<BoxError>()
        .is_some_and(|error| is_callers(&**error))
}

/// An error and its causes, outermost first, joined by `: `, as an
/// operator reads them in a log line: `upstream connect error
/// (10.0.0.7:8080): client error (Connect): tcp connect error: Connection
/// refused (os error 111)`. The client's own error says what kind of
/// failure it was and where; the reason is in its sources.
pub(in crate::proxy) struct Chain<'a>(pub(in crate::proxy) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// A value, or `-` when there is none.
pub(in crate::proxy) struct DisplayOr<T>(pub(in crate::proxy) Option<T>);

impl<T: fmt::Display> fmt::Display for DisplayOr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("upstream connect error")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_chain_names_every_cause_outermost_first() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Outer(refused);
        assert_eq!(Chain(&error).to_string(), "upstream connect error: refused");
        assert!(!is_callers(&error));
    }
}
