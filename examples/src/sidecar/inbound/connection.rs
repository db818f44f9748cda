//! The headers a request's `Connection` names, dropped where the request
//! enters the sidecar rather than where it leaves.
//!
//! A header the `Connection` header names belongs to the hop it came on
//! (RFC 9110 §7.6.1), and mesh-core's `Forward` drops it before sending
//! the request on. But `Forward` is the last layer: by then the sidecar
//! has added headers of its own (a route's `RequestHeaderModifier`,
//! `mesh-client-id`), and a client that named one of them in `Connection`
//! had the sidecar's copy dropped. `Connection: x-env` took away the
//! `x-env` an operator's route sets; `Connection: mesh-client-id` the
//! identity of a mutual-TLS caller. [`strip_connection_listed`] drops the
//! client's copies first, so that what the sidecar adds later goes
//! through. The headers `Forward` reads or keeps whatever `Connection`
//! says (`Host`, `Transfer-Encoding`, `Upgrade`, `TE`) are left to it.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, header};
use tower::{Layer, Service};

/// The `Connection` options that `Forward` still reads (an `Upgrade`
/// asked for, `TE: trailers` kept, a `Transfer-Encoding` it must refuse
/// when it codes the body with more than `chunked`), that it keeps
/// (`Host`, end to end by definition, RFC 9110 §7.2) or that name no
/// header of their own: they stay in `Connection`, and their headers are
/// left to `Forward`.
///
/// Dropped here, `Connection: transfer-encoding` would have a body coded
/// with `gzip, chunked` sent to the application as if it were plain,
/// where `Forward` answers `501`; and `Connection: host` would have the
/// request authorized, and served, without the host it named.
const LEFT_TO_FORWARD: [&str; 6] = [
    "upgrade",
    "te",
    "keep-alive",
    "close",
    "transfer-encoding",
    "host",
];

/// Removes every header `headers`' `Connection` names, except those of
/// [`LEFT_TO_FORWARD`], and the names from `Connection` with them. A
/// message without `Connection` costs one lookup.
pub(crate) fn strip_connection_listed(headers: &mut HeaderMap) {
    let Some(first) = headers.get(header::CONNECTION) else {
        return;
    };
    let plain = |value: &HeaderValue| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|name| name.is_empty() || is_left(name))
        })
    };
    // The common `Connection: keep-alive` (or `close`, `upgrade`) alone.
    if plain(first) && headers.get_all(header::CONNECTION).iter().count() == 1 {
        return;
    }
    let listed: Vec<HeaderValue> = headers
        .get_all(header::CONNECTION)
        .iter()
        .cloned()
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    for value in &listed {
        // A value that is not text names nothing that could be removed;
        // `Forward` drops it with the rest of `Connection`.
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if is_left(name) {
                kept.push(name);
            } else if !name.eq_ignore_ascii_case(header::CONNECTION.as_str()) {
                headers.remove(name);
            }
        }
    }
    headers.remove(header::CONNECTION);
    if let Ok(value) = HeaderValue::from_str(&kept.join(", "))
        && !kept.is_empty()
    {
        headers.insert(header::CONNECTION, value);
    }
}

fn is_left(name: &str) -> bool {
    LEFT_TO_FORWARD.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Builds [`StripConnectionListed`]; it goes in front of anything that
/// adds headers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StripConnectionListedLayer;

impl<S> Layer<S> for StripConnectionListedLayer {
    type Service = StripConnectionListed<S>;

    fn layer(&self, inner: S) -> StripConnectionListed<S> {
        StripConnectionListed { inner }
    }
}

/// Drops the headers a request's `Connection` names before its inner
/// service sees it. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct StripConnectionListed<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for StripConnectionListed<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        strip_connection_listed(req.headers_mut());
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn listed_headers_go_and_forwards_options_stay() {
        let mut headers = map(&[
            ("connection", "Upgrade, X-One"),
            ("connection", "te, mesh-client-id"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-one", "1"),
            ("mesh-client-id", "forged"),
            ("x-end-to-end", "kept"),
        ]);
        strip_connection_listed(&mut headers);
        let expected = map(&[
            ("connection", "Upgrade, te"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-end-to-end", "kept"),
        ]);
        assert_eq!(headers, expected);
    }

    /// `Host` and `Transfer-Encoding` are never the hop's: `Forward` keeps
    /// the first, and reads the second to refuse a coding it cannot pass
    /// on. Named in `Connection`, both are left for it.
    #[test]
    fn host_and_transfer_encoding_are_left_to_forward() {
        let pairs = [
            ("connection", "Host, transfer-encoding, x-one"),
            ("host", "emoji"),
            ("transfer-encoding", "gzip, chunked"),
            ("x-one", "1"),
        ];
        let mut headers = map(&pairs);
        strip_connection_listed(&mut headers);
        let expected = map(&[
            ("connection", "Host, transfer-encoding"),
            ("host", "emoji"),
            ("transfer-encoding", "gzip, chunked"),
        ]);
        assert_eq!(headers, expected);
        let mut headers = expected.clone();
        strip_connection_listed(&mut headers);
        assert_eq!(headers, expected);
    }

    #[test]
    fn connection_goes_when_it_names_nothing_left() {
        let mut headers = map(&[("connection", "x-one, , connection"), ("x-one", "1")]);
        strip_connection_listed(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn plain_options_and_no_connection_are_left_alone() {
        for pairs in [
            &[("connection", "keep-alive"), ("keep-alive", "timeout=5")][..],
            &[("connection", "close")],
            &[("host", "emoji")],
        ] {
            let mut headers = map(pairs);
            strip_connection_listed(&mut headers);
            assert_eq!(headers, map(pairs));
        }
    }
}
