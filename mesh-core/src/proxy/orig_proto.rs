//! HTTP/2 between meshed proxies, whatever HTTP the application speaks.
//!
//! HTTP/1.1 carries one request at a time per connection, so a busy client
//! keeps many connections open, and each new one costs a TCP and a TLS
//! handshake. Between two mesh proxies that is waste: Linkerd's proxies
//! carry HTTP/1.1 requests to each other over HTTP/2, where every request
//! is a stream on one multiplexed connection, and turn them back into
//! HTTP/1.1 before the application sees them. This module is both halves:
//!
//! - the client side, [`upgrade`], turns an HTTP/1.1 request into an
//!   HTTP/2 one and marks it with [`ORIG_PROTO`] (`mesh-orig-proto:
//!   HTTP/1.1`, as Linkerd's `l5d-orig-proto`), and [`restore`] gives the
//!   response its HTTP/1.1 version back;
//! - the server side, [`DowngradeLayer`], turns a marked HTTP/2 request
//!   back into the HTTP/1.1 request it was, before anything else sees it.
//!
//! A request that cannot travel as an HTTP/2 stream keeps HTTP/1.1: an
//! `Upgrade` (a WebSocket) or a `CONNECT` needs the connection to itself,
//! and HTTP/1.0 has semantics (no persistent connections, no chunked
//! bodies) that are not worth carrying across. The `Host` header travels
//! as it is, and the HTTP/2 `:authority` is the same host: the authority
//! the request was sent for, never the endpoint's address (the connection
//! goes to the endpoint whatever the URI names; see
//! [`ForEndpoint`](crate::client::ForEndpoint)). A request that arrives
//! with an `:authority` and no `Host` is given its `:authority` as `Host`
//! when it is turned back, as RFC 9113 §8.3.1 asks of a converter to
//! HTTP/1.1.
//!
//! Only a server that runs the downgrade may be sent upgraded requests; a
//! client decides per destination, typically for peers it reaches over
//! mutual TLS, which are meshed. A mark an application wrote must not
//! reach a peer that runs the downgrade, upgraded or not: [`upgrade`]
//! removes it from every request it is given, and a client that sends a
//! request on without calling it removes [`ORIG_PROTO`] itself (the
//! sidecar does, for services it does not upgrade); else the peer would
//! turn the application's own HTTP/2 request into HTTP/1.1.
//!
//! The server side reads the mark on HTTP/2 requests only, and removes it
//! from them: an HTTP/1 request (the most common, so it is not searched
//! for a mark) cannot be turned into anything else, and a mark on one
//! reaches the application as an unknown header that changes nothing.

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Method, Request, Response, Version, header};
use tower::{Layer, Service};

/// The header that marks an HTTP/2 request as an HTTP/1.1 one carried
/// between proxies.
pub const ORIG_PROTO: HeaderName = HeaderName::from_static("mesh-orig-proto");

/// The only value [`ORIG_PROTO`] takes.
const HTTP_11: &str = "HTTP/1.1";

/// Client side: whether [`upgrade`] carries `req` as HTTP/2, without
/// changing it: it is an HTTP/1.1 request that can travel as a stream (no
/// `Upgrade`, not `CONNECT`).
///
/// A client that upgrades requests inside its `call` says with this which
/// of them it sends as HTTP/2
/// ([`ForEndpoint::sends_http2`](crate::client::ForEndpoint::sends_http2)),
/// before sending them; [`upgrade`] decides by it too, so the two never
/// disagree. A version, a method and one header lookup.
pub fn upgradable<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.method() != Method::CONNECT
        && !req.headers().contains_key(header::UPGRADE)
}

/// Client side: carries `req` as HTTP/2 if it is an HTTP/1.1 request that
/// can travel as a stream ([`upgradable`]), marking it with
/// [`ORIG_PROTO`]. Returns whether it did; the response of a request it
/// upgraded goes through [`restore`]. Any [`ORIG_PROTO`] a request
/// arrives with is removed first.
pub fn upgrade<B>(req: &mut Request<B>) -> bool {
    req.headers_mut().remove(ORIG_PROTO);
    let can = upgradable(req);
    if can {
        *req.version_mut() = Version::HTTP_2;
        req.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static(HTTP_11));
    }
    can
}

/// Client side: the response to a request [`upgrade`] carried as HTTP/2,
/// as the HTTP/1.1 response the caller expects.
pub fn restore<B>(res: &mut Response<B>) {
    *res.version_mut() = Version::HTTP_11;
    res.headers_mut().remove(ORIG_PROTO);
}

/// Server side: turns requests [`upgrade`] marked back into HTTP/1.1. See
/// the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DowngradeLayer;

impl DowngradeLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for DowngradeLayer {
    type Service = Downgrade<S>;

    fn layer(&self, inner: S) -> Downgrade<S> {
        Downgrade { inner }
    }
}

/// A service whose marked HTTP/2 requests arrive as HTTP/1.1. See
/// [`DowngradeLayer`].
#[derive(Clone, Debug)]
pub struct Downgrade<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Downgrade<S>
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
        downgrade(&mut req);
        self.inner.call(req)
    }
}

/// Turns `req` back into HTTP/1.1 if it is an HTTP/2 request marked with
/// [`ORIG_PROTO`]; removes the mark from any other HTTP/2 request.
fn downgrade<B>(req: &mut Request<B>) {
    if req.version() != Version::HTTP_2 {
        return;
    }
    let Some(mark) = req.headers_mut().remove(ORIG_PROTO) else {
        return;
    };
    if mark == HTTP_11 {
        *req.version_mut() = Version::HTTP_11;
        // Over HTTP/1.1 the request would have come in origin form, its
        // authority in `Host`. The `Host` it carries is the client's,
        // and wins; one that carries none (a caller in the process names
        // its host in the URI alone) gets the `:authority`, which RFC
        // 9113 §8.3.1 has a converter to HTTP/1.1 copy into a `Host` it
        // creates. Without it the application, and every layer that
        // routes by host, would see none.
        if !req.headers().contains_key(header::HOST)
            && let Some(host) = req
                .uri()
                .authority()
                .map(|a| a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h))
                .and_then(|host| HeaderValue::from_str(host).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        if let Some(path) = req.uri().path_and_query().cloned() {
            *req.uri_mut() = http::Uri::from(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use tower::{ServiceExt, service_fn};

    use super::*;

    fn request(version: Version) -> Request<()> {
        Request::get("http://10.0.0.9:4143/api")
            .version(version)
            .header(header::HOST, "web")
            .body(())
            .unwrap()
    }

    #[test]
    fn an_http_11_request_travels_as_http_2_with_its_host() {
        let mut req = request(Version::HTTP_11);
        assert!(upgrade(&mut req));
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()[ORIG_PROTO], "HTTP/1.1");
        assert_eq!(req.headers()[header::HOST], "web");
    }

    #[test]
    fn upgrades_connect_http_10_and_http_2_keep_their_version() {
        let mut websocket = request(Version::HTTP_11);
        websocket
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let mut connect = request(Version::HTTP_11);
        *connect.method_mut() = Method::CONNECT;
        let mut old = request(Version::HTTP_10);
        let mut h2 = request(Version::HTTP_2);
        // A mark the application wrote itself is removed.
        h2.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static("HTTP/1.1"));
        for (req, version) in [
            (&mut websocket, Version::HTTP_11),
            (&mut connect, Version::HTTP_11),
            (&mut old, Version::HTTP_10),
            (&mut h2, Version::HTTP_2),
        ] {
            assert!(!upgrade(req));
            assert_eq!(req.version(), version);
            assert!(!req.headers().contains_key(ORIG_PROTO));
        }
    }

    #[test]
    fn upgradable_says_what_upgrade_does_without_changing_the_request() {
        let with = |version: Version, method: Method, headers: &[(&str, &str)]| {
            let mut req = Request::builder().method(method).version(version);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req.uri("/api").body(()).unwrap()
        };
        let host = [("host", "web")];
        let mut cases = vec![
            ("HTTP/1.1", with(Version::HTTP_11, Method::GET, &host), true),
            ("POST", with(Version::HTTP_11, Method::POST, &host), true),
            ("no Host", with(Version::HTTP_11, Method::GET, &[]), true),
            (
                "a mark of its own",
                with(
                    Version::HTTP_11,
                    Method::GET,
                    &[("host", "web"), ("mesh-orig-proto", "HTTP/1.1")],
                ),
                true,
            ),
            (
                "HTTP/1.0",
                with(Version::HTTP_10, Method::GET, &host),
                false,
            ),
            ("HTTP/0.9", with(Version::HTTP_09, Method::GET, &[]), false),
            ("HTTP/2", with(Version::HTTP_2, Method::GET, &[]), false),
            (
                "CONNECT",
                with(Version::HTTP_11, Method::CONNECT, &host),
                false,
            ),
            (
                "Upgrade",
                with(
                    Version::HTTP_11,
                    Method::GET,
                    &[
                        ("host", "web"),
                        ("connection", "upgrade"),
                        ("upgrade", "websocket"),
                    ],
                ),
                false,
            ),
            (
                "Upgrade, HTTP/1.0",
                with(Version::HTTP_10, Method::GET, &[("upgrade", "websocket")]),
                false,
            ),
        ];
        let mut absolute = Request::get("http://web:8080/api").body(()).unwrap();
        *absolute.version_mut() = Version::HTTP_11;
        cases.push(("absolute form", absolute, true));
        for (case, mut req, expected) in cases {
            let before = (req.version(), req.headers().clone());
            assert_eq!(upgradable(&req), expected, "{case}");
            assert_eq!((req.version(), req.headers().clone()), before, "{case}");
            assert_eq!(upgrade(&mut req), expected, "{case}");
            assert_eq!(
                req.version() == Version::HTTP_2,
                expected || case == "HTTP/2",
                "{case}"
            );
        }
    }

    #[tokio::test]
    async fn the_server_side_sees_the_http_11_request_that_was_sent() {
        let seen = service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>((req.version(), req.headers().contains_key(ORIG_PROTO)))
        });
        let svc = DowngradeLayer::new().layer(seen);

        let mut upgraded = request(Version::HTTP_11);
        upgrade(&mut upgraded);
        let got = svc.clone().oneshot(upgraded).await.unwrap();
        assert_eq!(got, (Version::HTTP_11, false));

        // A real HTTP/2 request stays one.
        let got = svc.clone().oneshot(request(Version::HTTP_2)).await.unwrap();
        assert_eq!(got, (Version::HTTP_2, false));

        // A mark on HTTP/1.1 changes nothing and is not searched for; one
        // with another value on HTTP/2 is dropped and changes nothing.
        let mut forged = request(Version::HTTP_11);
        forged
            .headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static("HTTP/1.1"));
        assert_eq!(
            svc.clone().oneshot(forged).await.unwrap(),
            (Version::HTTP_11, true)
        );
        let mut odd = request(Version::HTTP_2);
        odd.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static("HTTP/1.0"));
        assert_eq!(svc.oneshot(odd).await.unwrap(), (Version::HTTP_2, false));
    }

    #[test]
    fn a_marked_request_without_host_gets_its_authority_as_host() {
        for (uri, host) in [
            ("http://web.example:8080/list", "web.example:8080"),
            ("http://user@web/list", "web"),
        ] {
            let mut req = Request::get(uri).body(()).unwrap();
            assert!(upgrade(&mut req));
            downgrade(&mut req);
            assert_eq!(req.version(), Version::HTTP_11);
            assert_eq!(req.headers()[header::HOST], host, "{uri}");
            assert_eq!(req.uri(), "/list");
        }
        // The client's own `Host` wins over the `:authority`.
        let mut req = request(Version::HTTP_11);
        assert!(upgrade(&mut req));
        downgrade(&mut req);
        assert_eq!(req.headers()[header::HOST], "web");
    }

    #[test]
    fn the_response_is_given_back_its_http_11_version() {
        let mut res = Response::builder()
            .version(Version::HTTP_2)
            .header(ORIG_PROTO, "HTTP/1.1")
            .body(())
            .unwrap();
        restore(&mut res);
        assert_eq!(res.version(), Version::HTTP_11);
        assert!(!res.headers().contains_key(ORIG_PROTO));
    }
}
