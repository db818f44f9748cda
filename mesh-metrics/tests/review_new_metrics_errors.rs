//! The `error` value of an answer the proxy made for an upstream that
//! failed, as linkerd2-proxy finds it: `i/o` when a socket failed (a
//! connection that could not be made, or that broke), `unexpected` when
//! the upstream reset the stream or sent a `GOAWAY` (an `h2::Error`, which
//! has no I/O error among its causes), or sent no HTTP.

use http::HeaderMap;
use mesh_core::error::{ProxyErrorKind, UpstreamCause};
use mesh_metrics::{Direction, errors::ProxyError};

fn of(direction: Direction, cause: Option<UpstreamCause>) -> Option<ProxyError> {
    ProxyError::of_answer(
        direction,
        ProxyErrorKind::UpstreamUnreachable,
        &HeaderMap::new(),
        cause,
    )
}

#[test]
fn a_socket_that_failed_is_io() {
    for direction in [Direction::Inbound, Direction::Outbound] {
        for cause in [
            None,
            Some(UpstreamCause::Connect),
            Some(UpstreamCause::Closed),
        ] {
            assert_eq!(of(direction, cause), Some(ProxyError::Io), "{cause:?}");
        }
    }
}

#[test]
fn a_stream_reset_or_goaway_is_unexpected_as_in_linkerd() {
    for direction in [Direction::Inbound, Direction::Outbound] {
        for cause in [
            UpstreamCause::Refused,
            UpstreamCause::EnhanceYourCalm,
            UpstreamCause::Canceled,
            UpstreamCause::Reset,
            UpstreamCause::GoAway,
            UpstreamCause::Protocol,
        ] {
            assert_eq!(
                of(direction, Some(cause)),
                Some(ProxyError::Unexpected),
                "{cause:?}"
            );
        }
    }
}
