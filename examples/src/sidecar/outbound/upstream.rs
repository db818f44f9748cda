//! One service's connections: mutual TLS or plaintext, pooled per runtime.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use mesh_core::{
    BoxError,
    client::{Client, ClientConfig, ClientError, ForEndpoint, authority_from_host},
    conn::{NoTlsReason, Tls},
    proxy::{balance::EndpointConnects, orig_proto},
};
use mesh_metrics::{TcpConnect, TcpMetrics};
use mesh_tls::{
    ConnectConfig, CredentialStore, OutboundTls, TlsConnector, TlsTargets,
    connect::Alpn,
    retire::{Retire, RetireLayer},
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::sidecar::inbound::is_host_and_port;

/// The connectors of one outbound service, built once in `start` (the
/// rustls configuration for the service's expected identity is made here)
/// and shared by every runtime.
///
/// There are two because ALPN has to agree with the request's version. An
/// HTTP/1 request goes over a connection that offers only `http/1.1`, so
/// that upgrades (WebSocket) work and the peer sidecar hands the request on
/// as HTTP/1 to an application that may speak nothing else; an HTTP/2
/// request goes over one that offers `h2`.
///
/// A third carries the connections of the service's TCP ports and of
/// `CONNECT` tunnels to it. Their bytes may be anything, so it offers no
/// ALPN: a negotiated protocol would have the peer sidecar serve them as
/// HTTP unread, and with none it reads their first bytes to tell. Its
/// connections are never pooled.
#[derive(Clone, Debug)]
pub(crate) struct ServiceConnectors {
    http1: Connector,
    http2: Connector,
    tcp: Connector,
    /// Whether HTTP/1.1 requests travel to the service's sidecars as
    /// HTTP/2 ([`orig_proto`]).
    http2_upgrade: bool,
}

/// TLS (or plaintext) over TCP connections whose transport metrics are
/// counted: the bytes on the wire, under TLS.
pub(crate) type Connector = TlsConnector<TcpConnect<HttpConnector>>;

/// The TLS status a service's connections are labelled with: the identity
/// the server must prove, or why they are plaintext.
///
/// A service that names no identity is plaintext for one of two reasons,
/// which dashboards and alerts written for Linkerd tell apart. With a
/// `local_identity` of its own, the sidecar could have spoken mutual TLS
/// but was given no identity to expect: Linkerd's proxy labels that
/// `tls="no_identity",no_tls_reason="not_provided_by_service_discovery"`
/// (`NoClientTls::NotProvidedByServiceDiscovery` in linkerd2-proxy's
/// `linkerd/tls/src/client.rs`). Without one, TLS is off for everything it
/// sends: `tls="disabled"`, as Linkerd writes it when identity is disabled.
pub(crate) fn tls_label(tls: &OutboundTls, local_identity: bool) -> Tls {
    match tls {
        OutboundTls::Mtls(identity) => Tls::Mutual {
            peer: identity.clone(),
        },
        OutboundTls::Plaintext if local_identity => {
            Tls::Plaintext(NoTlsReason::NotProvidedByServiceDiscovery)
        }
        OutboundTls::Plaintext => Tls::Plaintext(NoTlsReason::Disabled),
    }
}

impl ServiceConnectors {
    /// Connectors that reach every endpoint as `tls` says, counting their
    /// connections in `metrics` under [`tls_label`] (`local_identity`:
    /// whether the sidecar has an identity of its own). `store` holds the
    /// sidecar's own certificate; plaintext services never read it.
    ///
    /// # Errors
    ///
    /// When rustls refuses the client configuration.
    pub(crate) fn new(
        client: &ClientConfig,
        store: &CredentialStore,
        tls: &OutboundTls,
        local_identity: bool,
        http2_upgrade: bool,
        metrics: &TcpMetrics,
    ) -> Result<Self, BoxError> {
        let label = tls_label(tls, local_identity);
        let connector = |alpn: Alpn| -> Result<Connector, BoxError> {
            let mut http = client.http_connector();
            http.enforce_http(false);
            let tcp = TcpConnect::outbound(metrics, &label, http);
            let config = ConnectConfig {
                alpn,
                ..ConnectConfig::default()
            };
            let targets = TlsTargets::new(tls.clone());
            Ok(TlsConnector::with_connector(
                tcp,
                store.clone(),
                targets,
                config,
            )?)
        };
        Ok(Self {
            http1: connector(Alpn::Http1)?,
            http2: connector(Alpn::H2AndHttp1)?,
            tcp: connector(Alpn::None)?,
            http2_upgrade,
        })
    }

    /// The connector of opaque TCP connections to the service. Over
    /// mutual TLS it offers no ALPN, so a peer sidecar whose port detects
    /// its protocol serves what the client sends first: HTTP as HTTP,
    /// anything else as opaque bytes. A protocol whose server speaks first
    /// still needs the peer's port served opaque (see `TCP ports` in
    /// `examples/CONFIG.md`).
    pub(crate) fn tcp(&self) -> Connector {
        self.tcp.clone()
    }

    /// A client for one runtime, with its own connection pools: those of
    /// each endpoint are made from it ([`ForEndpoint`]).
    pub(crate) fn client<B>(&self, config: &ClientConfig) -> Upstream<B>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let unpooled = ClientConfig {
            pool_max_idle_per_host: 0,
            ..config.clone()
        };
        let source = Arc::new(Source {
            http1: Client::with_connector(config, self.http1.clone()),
            http2: Client::with_connector(config, self.http2.clone()),
            one_off: Client::with_connector(&unpooled, self.http1.clone()),
            retire1: self.http1.retire_layer(),
            retire2: self.http2.retire_layer(),
        });
        Upstream {
            http1: source.retire1.layer(source.http1.clone()),
            http2: source.retire2.layer(source.http2.clone()),
            one_off: source.retire1.layer(source.one_off.clone()),
            http2_upgrade: self.http2_upgrade,
            source,
        }
    }
}

/// A service's pooled client on one runtime: HTTP/1 requests over the
/// `http/1.1` connector, HTTP/2 requests over the `h2` one, and, to a
/// service whose sidecars take them, HTTP/1.1 requests as HTTP/2 too.
/// Connections are retired from the pools when the credentials rotate.
///
/// An HTTP/1.1 request carried as HTTP/2 is sent for the authority in its
/// `Host`, as an HTTP/2 one is sent for its own: the peer sidecar, and
/// the application behind it, see the host the caller asked for in
/// `:authority`, not this sidecar's endpoint address.
///
/// A request that names no host (no `Host`, or one that is not an
/// authority; only ingress mode routes such a request, by its destination
/// override) is not carried as HTTP/2: it goes as HTTP/1.1, without
/// `Host`, as it came. Over HTTP/2 it would need an `:authority`, and
/// the only one at hand is the endpoint's address, which RFC 9113 §8.3.1
/// forbids an intermediary to make up for a request that had none (and
/// which the application behind the peer would then read). Linkerd does
/// carry it as HTTP/2, with the name of the service it was routed to as
/// `:authority` (its `NormalizeUri` default authority); the peer's
/// HTTP/1 client still writes no `Host` from it. Sending it as it came
/// keeps the caller's request unchanged without relying on what the peer
/// does with an authority nobody asked for. The per-endpoint HTTP/1
/// client writes no `Host` of its own (see `mesh_core::client`).
///
/// Such a request goes over a connection of its own, closed once it is
/// answered, never a pooled one, as Linkerd's HTTP/1 client sends a
/// request whose `Host` is missing or empty (its one-off client): a
/// pooled connection to the peer is shared by every caller of the
/// endpoint, and a request that names no host belongs to no authority
/// whose connections could be kept for it. An HTTP/1.0 request goes
/// that way too, host or not, as Linkerd sends it: HTTP/1.0 keeps a
/// connection only when both ends say so.
pub(crate) struct Upstream<B> {
    http1: Retire<Client<B, Connector>>,
    http2: Retire<Client<B, Connector>>,
    /// HTTP/1 without a pool: a connection per request, closed after it.
    one_off: Retire<Client<B, Connector>>,
    http2_upgrade: bool,
    /// What the clients of one endpoint are made from.
    source: Arc<Source<B>>,
}

/// The clients of a runtime's [`Upstream`], and the layers that retire
/// their connections, to make those of each endpoint from.
struct Source<B> {
    http1: Client<B, Connector>,
    http2: Client<B, Connector>,
    one_off: Client<B, Connector>,
    retire1: RetireLayer,
    retire2: RetireLayer,
}

impl<B> Clone for Upstream<B> {
    fn clone(&self) -> Self {
        Self {
            http1: self.http1.clone(),
            http2: self.http2.clone(),
            one_off: self.one_off.clone(),
            http2_upgrade: self.http2_upgrade,
            source: self.source.clone(),
        }
    }
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl<B> ForEndpoint for Upstream<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Clients of their own for `endpoint`, over the same connectors, so
    /// the same TLS, whose connections are retired as the runtime's are.
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self {
        let source = &self.source;
        Self {
            http1: source.retire1.layer(source.http1.for_endpoint(endpoint)),
            http2: source.retire2.layer(source.http2.for_endpoint(endpoint)),
            one_off: source.retire1.layer(source.one_off.for_endpoint(endpoint)),
            http2_upgrade: self.http2_upgrade,
            source: source.clone(),
        }
    }

    /// As [`for_endpoint`](Self::for_endpoint), and the HTTP/2 client,
    /// which HTTP/2 requests and those carried as HTTP/2 go through,
    /// finishes a connect whose request was given up on and reports how
    /// it ended, to back the endpoint off (see
    /// [`ForEndpoint::for_endpoint_reporting`]).
    fn for_endpoint_reporting(&self, connects: &EndpointConnects) -> Self {
        let source = &self.source;
        Self {
            http2: source
                .retire2
                .layer(source.http2.for_endpoint_reporting(connects)),
            ..self.for_endpoint(connects.addr())
        }
    }

    /// An HTTP/2 request, or one [`upgrades`](Self::upgrades) carries as
    /// HTTP/2: a failed connect of either backs its endpoint off, as
    /// Linkerd's proxy reconnects a meshed peer its HTTP/1 requests
    /// travel to over HTTP/2 (linkerd2-proxy `Params::OrigProtoUpgrade`).
    fn sends_http2<R>(&self, req: &Request<R>) -> bool {
        req.version() == Version::HTTP_2 || self.upgrades(req)
    }
}

impl<B> Upstream<B> {
    /// Whether [`call`](Service::call) carries `req` as HTTP/2 in place of
    /// HTTP/1.1: the one test it makes, and what `Forward` asks before
    /// handing the request over ([`ForEndpoint::sends_http2`]), so the two
    /// cannot disagree. `Host` is looked at last, only for a request that
    /// could otherwise be upgraded.
    fn upgrades<R>(&self, req: &Request<R>) -> bool {
        self.http2_upgrade && orig_proto::upgradable(req) && names_host(req)
    }
}

impl<B> Service<Request<B>> for Upstream<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = ClientError;
    type Future = UpstreamFuture<<Retire<Client<B, Connector>> as Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pools open connections on demand; there is nothing to wait for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The mark is this sidecar's to write. One the application wrote
        // goes either way: `upgrade` removes it, and without the upgrade
        // it is removed here, or a peer sidecar would turn the
        // application's own HTTP/2 request into HTTP/1.1.
        let upgraded = self.upgrades(&req);
        if upgraded {
            orig_proto::upgrade(&mut req);
            // The URI names the endpoint, for the HTTP/1 pool; over
            // HTTP/2 it is the request's authority.
            authority_from_host(&mut req);
        } else {
            req.headers_mut().remove(orig_proto::ORIG_PROTO);
        }
        let inner = if req.version() == Version::HTTP_2 {
            self.http2.call(req)
        } else if req.version() == Version::HTTP_10 || names_no_host(&req) {
            // As Linkerd's HTTP/1 client: an HTTP/1.0 request keeps its
            // connection only when both ends say so, and a request without
            // a host has no authority to pool by.
            self.one_off.call(req)
        } else {
            self.http1.call(req)
        };
        UpstreamFuture { inner, upgraded }
    }
}

/// Whether `req`'s `Host` is a host and an optional port, without
/// userinfo: one [`authority_from_host`] can make an upgraded request's
/// URI of. A request without one is not upgraded (see [`Upstream`]). The
/// check reads the value where it lies (the inbound side's `Host`
/// grammar, narrower than what an `Authority` accepts), so asking it
/// twice, for `Forward` and for `call`, copies nothing.
fn names_host<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::HOST)
        .is_some_and(|host| is_host_and_port(host.as_bytes()))
}

/// Whether `req` has no `Host`, or an empty one: it goes over HTTP/1 on
/// a connection of its own ([`Upstream`]), as an HTTP/1.0 request does.
fn names_no_host<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::HOST)
        .is_none_or(http::HeaderValue::is_empty)
}

pin_project! {
    /// The response of an upstream request; that of a request carried as
    /// HTTP/2 in place of HTTP/1.1 is given its version back.
    pub(crate) struct UpstreamFuture<F> {
        #[pin]
        inner: F,
        upgraded: bool,
    }
}

impl<F, B> Future for UpstreamFuture<F>
where
    F: Future<Output = Result<Response<B>, ClientError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if *this.upgraded {
            orig_proto::restore(&mut res);
        }
        Poll::Ready(Ok(res))
    }
}
