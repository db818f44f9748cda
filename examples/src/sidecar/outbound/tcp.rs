//! Opaque TCP to outbound services: the listeners of `outbound.ports`.
//!
//! Each connection the application opens to a TCP port goes to one
//! endpoint of the port's service, picked by the same balancer as its
//! HTTP requests (a balancer of its own, over the same endpoints, kept
//! current by the same DNS lookups), through the service's TCP connector:
//! mutual TLS expecting the service's identity, or plaintext, and counted
//! in the TCP metrics (`direction="outbound"`) as its HTTP connections
//! are. Then bytes are copied both ways until the connection ends
//! (mesh-core's [`ForwardTcp`]).
//!
//! The forwarder cannot know what the bytes are, so over mutual TLS the
//! connector offers no ALPN
//! ([`Alpn::None`](mesh_tls::connect::Alpn::None)): a negotiated
//! `http/1.1` would have the peer sidecar serve them as HTTP unread.
//! With none, a peer port that detects its protocol reads the client's
//! first bytes, as it does for plaintext, and carries a database
//! protocol as bytes and HTTP sent through the port as HTTP. A protocol
//! whose server speaks first sends no first bytes: the peer's detection
//! waits for them until its `detect_timeout`, then forwards the
//! connection to its application as opaque bytes, as Linkerd's proxy
//! does, so the greeting comes that much late; a service port served
//! `opaque` is connected at once.
//!
//! The listener itself does not detect: every connection to it is the
//! port's service's, whatever it carries, so it is served opaque from
//! the first byte and never waits.
//!
//! The outbound HTTP listener tunnels a `CONNECT` whose authority names a
//! service through the same forwarders (mesh-core's
//! [`ConnectTunnel`](mesh_core::proxy::ConnectTunnel)): an application
//! that uses the sidecar as its HTTP proxy reaches the service's
//! endpoints as a TCP port's connections do. Where a TCP port can only
//! close a connection it cannot forward, a `CONNECT` is answered `502`
//! or `503` before any `200`. Both wait for an endpoint when none is
//! ready, for `outbound.tcp_failfast_timeout` at most, in a queue of
//! `outbound.tcp_queue_capacity` places.

use std::{
    convert::Infallible,
    future::Ready,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response, uri::Authority};
use hyper::body::Incoming;
use mesh_core::{body::BoxBody, error::ProxyErrorKind, proxy::ForwardTcp};

use super::{Outbound, upstream::Connector};
use crate::sidecar::config::ServiceName;

/// The TCP forwarder of one service on one runtime.
pub(crate) type TcpForward = ForwardTcp<Connector>;

/// Every service's TCP forwarder on one runtime, in the order of
/// `outbound.services`, and which one each `outbound.ports` entry uses.
#[derive(Debug)]
pub(crate) struct TcpServices {
    services: Vec<(ServiceName, Option<TcpForward>)>,
    ports: Vec<Option<usize>>,
}

impl TcpServices {
    /// The forwarder of `outbound.ports[index]`; `None` when its service
    /// has no endpoint.
    pub(crate) fn port(&self, index: usize) -> Option<TcpForward> {
        let service = (*self.ports.get(index)?)?;
        self.services.get(service)?.1.clone()
    }
}

impl TcpServices {
    /// The forwarder of the service a `CONNECT` to `authority` is for, as
    /// a request's authority names its service: by host, whatever the
    /// port. None for an authority with userinfo, which a `CONNECT`
    /// target never has (RFC 9110 §9.3.6: `host:port`): it goes on to the
    /// router, which answers it `400` as it answers userinfo in any
    /// request's target, rather than tunnel to the host after the `@`.
    pub(crate) fn by_authority(&self, authority: &Authority) -> Option<TcpForward> {
        if authority.as_str().contains('@') {
            return None;
        }
        self.services
            .iter()
            .find(|(name, _)| name.matches_authority(authority.as_str()))?
            .1
            .clone()
    }
}

impl Outbound {
    /// Every service's TCP forwarder for one runtime: balancers of its
    /// own, and the connectors every runtime shares. A connect may take
    /// the TCP connect timeout and the TLS handshake timeout, each of
    /// which the connector enforces on its own.
    pub(crate) fn tcp_services(&self, connect_timeout: Duration) -> TcpServices {
        let services = self
            .services
            .iter()
            .map(|target| {
                let forward = target
                    .endpoints
                    .forward_tcp(target.connectors.tcp())
                    .map(|forward| forward.with_connect_timeout(connect_timeout));
                (target.name.clone(), forward)
            })
            .collect();
        TcpServices {
            services,
            ports: self.tcp_ports.clone(),
        }
    }
}

/// The HTTP service of a TCP port, which serves no HTTP: its server hands
/// every connection to the forwarder unread, so this is never called; were
/// it, it would answer the mesh's 404.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NoHttp;

impl tower::Service<Request<Incoming>> for NoHttp {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(ProxyErrorKind::NoRoute.response(&req)))
    }
}
