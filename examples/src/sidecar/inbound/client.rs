//! The client the inbound side sends requests to the application with.
//!
//! Connections to the application are pooled: opening one for every
//! request would cost a handshake each, and the application's sockets.
//! But a pooled connection is kept for whoever comes next, and two kinds
//! of request have no business leaving one behind:
//!
//! - an HTTP/1 request that names no host (no `Host`, or an empty one):
//!   it belongs to no authority whose connections could be kept for it;
//! - an HTTP/1.0 request, whose connection, in HTTP/1.0, ends with the
//!   response unless both ends agree otherwise; an application that
//!   answers it in HTTP/1.1 and keeps the connection open would otherwise
//!   have the next caller's request sent on it.
//!
//! Linkerd's proxy sends both over a one-off client with no pool, inbound
//! as outbound (linkerd2-proxy, `linkerd/proxy/http/src/h1.rs`: an HTTP/1.0
//! request, or one whose `Host` is missing or empty, takes a client built
//! with `pool_max_idle_per_host(0)`). [`AppClient`] does the same: beside
//! the pooled client it holds one that keeps no idle connection, so each
//! such request opens a connection of its own, closed once it is
//! answered. Both are built once, with the stack; a request that names
//! its host goes to the pooled one after one look at its version and its
//! `Host`. HTTP/2 requests are always pooled: they name their authority
//! in `:authority`, and `Forward` sends them without `Host`.
//!
//! Every connection either client opens is counted in the transport
//! families as the inbound side's connection to the application
//! (`direction="inbound",peer="dst"`): without them, the bytes the
//! application received and the connections it holds would show nowhere.
//! Linkerd's proxy counts them too, labelled `tls="no_identity"`,
//! `no_tls_reason="loopback"` (linkerd2-proxy,
//! `linkerd/app/core/src/transport/labels.rs`, `Key::InboundClient`). The
//! counting connector is made once, with the clients, and wraps each
//! connection as it opens, never a request.

use std::{
    fmt,
    net::SocketAddr,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Request, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use mesh_core::{
    client::{Client, ClientConfig, ForEndpoint},
    conn::{NoTlsReason, Tls},
};
use mesh_metrics::{TcpConnect, TcpMetrics};
use tower::Service;

/// The connector of both clients: plaintext TCP to the application,
/// counted in the transport families (see the [module docs](self)).
type AppConnector = TcpConnect<HttpConnector>;

/// The pooled client to the application, and the one-off one for the
/// requests the [module docs](self) name.
pub(crate) struct AppClient<B> {
    pooled: Client<B, AppConnector>,
    /// No idle connections: a connection per request, closed after it.
    one_off: Client<B, AppConnector>,
}

impl<B> Clone for AppClient<B> {
    fn clone(&self) -> Self {
        Self {
            pooled: self.pooled.clone(),
            one_off: self.one_off.clone(),
        }
    }
}

impl<B> fmt::Debug for AppClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppClient").finish_non_exhaustive()
    }
}

impl AppClient<Incoming> {
    /// The two clients `config` describes: the pooled one as configured,
    /// the one-off one with no idle connection kept. Both count the
    /// connections they open in `metrics`.
    pub(crate) fn new(config: &ClientConfig, metrics: &TcpMetrics) -> Self {
        let one_off = ClientConfig {
            pool_max_idle_per_host: 0,
            ..config.clone()
        };
        let connector = TcpConnect::inbound(
            metrics,
            &Tls::Plaintext(NoTlsReason::Loopback),
            config.http_connector(),
        );
        Self {
            pooled: Client::with_connector(config, connector.clone()),
            one_off: Client::with_connector(&one_off, connector),
        }
    }
}

impl<B> ForEndpoint for AppClient<B>
where
    Client<B, AppConnector>: ForEndpoint,
{
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self {
        Self {
            pooled: self.pooled.for_endpoint(endpoint),
            one_off: self.one_off.for_endpoint(endpoint),
        }
    }
}

impl<B> Service<Request<B>> for AppClient<B>
where
    Client<B, AppConnector>: Service<Request<B>>,
{
    type Response = <Client<B, AppConnector> as Service<Request<B>>>::Response;
    type Error = <Client<B, AppConnector> as Service<Request<B>>>::Error;
    type Future = <Client<B, AppConnector> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both connect on demand, and are always ready.
        ready!(self.pooled.poll_ready(cx))?;
        self.one_off.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_one_off(&req) {
            self.one_off.call(req)
        } else {
            self.pooled.call(req)
        }
    }
}

/// Whether `req` goes over a connection of its own: HTTP/1.0 (or 0.9),
/// or HTTP/1.1 with no `Host` or an empty one.
fn is_one_off<B>(req: &Request<B>) -> bool {
    match req.version() {
        Version::HTTP_10 | Version::HTTP_09 => true,
        Version::HTTP_11 => req
            .headers()
            .get(header::HOST)
            .is_none_or(HeaderValue::is_empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, host: Option<&'static str>) -> Request<()> {
        let mut req = Request::get("http://127.0.0.1:8080/").version(version);
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn only_http_1_requests_without_a_host_and_http_1_0_ones_are_one_off() {
        for (version, host, one_off) in [
            (Version::HTTP_11, Some("emoji"), false),
            (Version::HTTP_11, None, true),
            (Version::HTTP_11, Some(""), true),
            (Version::HTTP_10, Some("emoji"), true),
            (Version::HTTP_10, None, true),
            (Version::HTTP_2, None, false),
            (Version::HTTP_2, Some("emoji"), false),
        ] {
            let req = request(version, host);
            assert_eq!(is_one_off(&req), one_off, "{version:?} {host:?}");
        }
    }
}
