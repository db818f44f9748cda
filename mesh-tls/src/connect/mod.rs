//! The client side: a connector for mesh-core's pooled client that opens
//! mutual TLS to each target and checks that the server is who the target
//! should be.
//!
//! A service's endpoints come and go, and their addresses say nothing about
//! who runs there. So each target is configured with the identity its
//! server must prove ([`OutboundTls::Mtls`]), and the handshake fails unless
//! the server's certificate chains to the trust bundle *and* names that
//! identity. The hostname plays no part in the check. The ClientHello names
//! a DNS-style expected identity as its server name (SNI), as Linkerd's
//! proxy does, whose inbound side passes a ClientHello naming anything
//! else through to the application; for a SPIFFE ID, which is no DNS name,
//! it names the URI's host. The connector presents the local
//! certificate from the [`CredentialStore`], read at each handshake, so
//! rotations need no rebuild.
//!
//! An `mtls` target fails closed: when the handshake fails, or no local
//! credentials are loaded, or those loaded are outside their validity
//! ([`ConnectError::CredentialsUnusable`]), the connection fails. It never falls back to
//! plaintext. An error met in the handshake names the server: the
//! address the connection reached and the identity it was to prove
//! ([`ConnectError::server`]); a connect that failed names what it was
//! for: the authority dialled and, for an `mtls` target, the identity
//! expected ([`ConnectError::target`]). So a log line tells which
//! upstream failed. Targets outside the mesh are configured
//! [`OutboundTls::Plaintext`] explicitly. Such a target is reached by
//! `http` URIs alone: an `https` URI asks for encryption the target does
//! not get, and fails to connect ([`ConnectError::HttpsInPlaintext`]) rather
//! than be sent in the clear. Connections carry a
//! [`ServerTls`] into each response's extensions, and are retired from the
//! pool before their certificates go stale (see [`crate::retire`]).
//!
//! What a connection carries is announced through ALPN ([`Alpn`]): by
//! default `h2` and `http/1.1`, for HTTP clients. A connector whose
//! connections carry opaque bytes offers nothing, so that the server reads
//! the first bytes to tell what they are instead of taking them for HTTP.
//!
//! # What a certificate proves
//!
//! An expected SPIFFE ID matches only a certificate whose one URI SAN it
//! is. An expected DNS-style identity matches any DNS SAN of a certificate
//! that names an identity at all, as Linkerd's proxy matches it: Linkerd's
//! certificates carry their identity as a DNS SAN, and a certificate's
//! first DNS SAN need not be the one a client expects. So a certificate
//! proves to clients every DNS-style name it carries, while a server reads
//! one identity from it (the SPIFFE ID, else the first DNS identity). An
//! issuer that adds DNS names to a certificate (service hostnames beside a
//! SPIFFE ID, say) vouches for each of them as an identity; the mesh's CA,
//! like Linkerd's, adds none (only single-label names such as `localhost`,
//! which are no identities: [`IssueRequest::dns_names`]).
//!
#![cfg_attr(
    feature = "ca",
    doc = "[`IssueRequest::dns_names`]: crate::ca::IssueRequest::dns_names"
)]
#![cfg_attr(
    not(feature = "ca"),
    doc = "[`IssueRequest::dns_names`]: crate#features"
)]
//!
//! The chain is checked by webpki as for any TLS server, and on top every
//! issuer on the path must be allowed to sign certificates by its key usage
//! (`keyCertSign`, which webpki does not read). The webpki checks have two
//! consequences worth knowing. Name constraints are enforced for DNS names,
//! and a CA constrained by URI names fails closed: every certificate under
//! it that carries a URI SAN (every SVID) is refused.
//!
//! A SPIFFE ID is proved only through a trust anchor of its own trust
//! domain, on both ends of a connection. SPIFFE keeps a trust bundle per
//! trust domain and validates an SVID against the bundle of the trust
//! domain it names (go-spiffe's `x509svid.Verify` does), so that the CA of
//! one trust domain cannot name the workloads of another. The mesh's
//! bundle is one file, so an anchor's trust domain is read from the anchor
//! itself: its URI SAN `spiffe://<trust domain>`, which the SPIFFE
//! X.509-SVID spec (§3.2) recommends for signing certificates and which
//! the mesh's CA writes. A bundle holding the anchors of `example.org` and
//! `other.org` thus accepts `spiffe://example.org/...` only from a chain to
//! the first, and `spiffe://other.org/...` only from a chain to the second.
//! Two things are not scoped: an anchor whose certificate names no trust
//! domain (Linkerd's, most corporate CAs') vouches for every identity, as a
//! plain X.509 anchor does; and a DNS-style identity, which belongs to no
//! trust domain by anything the certificate proves, is vouched for by
//! every anchor. Since naming no trust domain vouches for everything, an
//! anchor must name its trust domains legibly or plainly name none: a URI
//! SAN of the `spiffe` scheme (in any case) that breaks a rule of the
//! [SPIFFE ID spec](https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md)
//! (`spiffe://Example.org`, a port, an empty path segment), or subject
//! alternative names that do not parse, make the whole bundle refused
//! ([`CredentialError::AnchorDomainUnreadable`](crate::CredentialError::AnchorDomainUnreadable),
//! naming the certificate; a reload keeps the bundle in service), rather
//! than an anchor for every identity. A URI SAN of another scheme
//! (`https://ca.example.com`) claims no trust domain and is passed over:
//! such an anchor names none. Federating with a trust domain whose anchors name none,
//! or whose workloads have DNS-style identities, still needs authorization
//! that does not take the trust domain an identity claims on trust.

mod error;
mod future;
mod io;
mod targets;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicU64},
    task::{Context, Poll},
    time::Duration,
};

use http::{Uri, uri::Authority};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use mesh_core::{BoxError, Identity, client::ClientConfig};
use rustls_pki_types::ServerName;
use tower_service::Service;

pub(crate) use self::future::Chain;
pub use self::{
    error::{ConnectError, ConnectTarget, ConnectionExpired, ExpectedServer},
    future::ConnectFuture,
    io::{ClientIo, ServerTls},
    targets::{OutboundTls, TlsTargets},
};
use crate::{
    CredentialStore,
    retire::{RetireLayer, RetireShared},
    verify::{ExpectedIdentity, StoreClientCert},
};

/// How the connector handshakes and when it retires connections.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// How long the TLS handshake may take, after TCP connects. Default 10
    /// seconds.
    pub handshake_timeout: Duration,
    /// How long before the earlier of the local and server certificate's
    /// `notAfter` a pooled connection is retired, so that requests running
    /// on it have time to finish. Default 60 seconds.
    pub retire_before_expiry: Duration,
    /// Whether a connection still open when a certificate that
    /// authenticated it expires is closed, cutting whatever still runs on
    /// it. Default true.
    pub close_at_expiry: bool,
    /// What the ClientHello offers through ALPN, which a mesh server takes
    /// as the client's word on what the connection carries. Default
    /// [`Alpn::H2AndHttp1`].
    pub alpn: Alpn,
}

/// The protocols a connector offers through ALPN.
///
/// A mesh server ([`TlsAccept`](crate::TlsAccept) in front of mesh-core's
/// server) serves a connection whose ALPN settled on `h2` or `http/1.1` as
/// HTTP at that version without reading its first bytes, even on a port
/// that detects its protocol: the client said what it speaks. A client
/// that offers nothing negotiates nothing (the handshake succeeds; ALPN is
/// optional on both sides), and the server then tells the protocol from the
/// connection's first bytes, as it does in plaintext: HTTP is served as
/// HTTP, anything else goes to the port's opaque handler. So a connector
/// whose bytes may be anything offers [`Alpn::None`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Alpn {
    /// `h2`, then `http/1.1`. Mesh servers prefer HTTP/2, so every request
    /// shares one multiplexed connection. The default.
    #[default]
    H2AndHttp1,
    /// `http/1.1` alone, for a client that carries HTTP/1.1 upgrades
    /// (WebSocket and the like), which HTTP/2 cannot.
    Http1,
    /// Nothing, for connections that carry bytes the client does not read
    /// (opaque TCP, `CONNECT` tunnels): the server detects what they are.
    /// Detection waits for the client's first bytes, so a protocol whose
    /// server speaks first is delayed by the server's detection timeout
    /// unless the server serves the port opaque.
    None,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            retire_before_expiry: Duration::from_secs(60),
            close_at_expiry: true,
            alpn: Alpn::default(),
        }
    }
}

/// A hyper-util connector that opens mutual TLS (or plaintext, per target)
/// over the connections of `C`. See the [module docs](self).
#[derive(Debug)]
pub struct TlsConnector<C = HttpConnector> {
    inner: C,
    shared: Arc<Shared>,
}

impl<C: Clone> Clone for TlsConnector<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: CredentialStore,
    pub(crate) config: ConnectConfig,
    default: Route,
    routes: HashMap<Authority, Route>,
    /// The `mtls` targets that are an address and a port, for the check
    /// on where a plaintext connection went ([`targets::mtls_endpoints`]).
    pub(crate) mtls_endpoints: HashMap<SocketAddr, Route>,
    pub(crate) retire: Arc<RetireShared>,
    pub(crate) next_id: AtomicU64,
}

/// A target's resolved TLS: the rustls connector is built once per
/// expected identity, when the connector is built.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Plaintext,
    Mtls {
        identity: Identity,
        config: Arc<rustls::ClientConfig>,
        /// The server name the ClientHello carries, when the identity
        /// gives one ([`identity_server_name`]); otherwise the URI's host.
        server_name: Option<ServerName<'static>>,
    },
}

impl TlsConnector {
    /// A connector over TCP, set up as `client` describes (connect timeout,
    /// `TCP_NODELAY`).
    ///
    /// It takes `http` and `https` URIs alike, and the target, not the
    /// scheme, decides how a connection is made: an `mtls` target gets
    /// mutual TLS whatever the scheme. An `https` URI whose target is
    /// reached in plaintext fails to connect
    /// ([`ConnectError::HttpsInPlaintext`]) rather than send in the clear
    /// a request meant to be encrypted; an `http` URI goes in plaintext.
    ///
    /// # Errors
    ///
    /// When rustls refuses the client configuration, which the fixed mesh
    /// provider makes unexpected.
    pub fn new(
        client: &ClientConfig,
        store: CredentialStore,
        targets: TlsTargets,
    ) -> Result<Self, rustls::Error> {
        let mut tcp = client.http_connector();
        tcp.enforce_http(false);
        Self::with_connector(tcp, store, targets, ConnectConfig::default())
    }
}

impl<C> TlsConnector<C> {
    /// A connector over the connections `inner` opens.
    ///
    /// # Errors
    ///
    /// When rustls refuses the client configuration.
    pub fn with_connector(
        inner: C,
        store: CredentialStore,
        targets: TlsTargets,
        config: ConnectConfig,
    ) -> Result<Self, rustls::Error> {
        let mut by_identity: HashMap<Identity, Route> = HashMap::new();
        let mut route = |tls: OutboundTls| -> Result<Route, rustls::Error> {
            let OutboundTls::Mtls(identity) = tls else {
                return Ok(Route::Plaintext);
            };
            if let Some(route) = by_identity.get(&identity) {
                return Ok(route.clone());
            }
            let verifier = ExpectedIdentity::new(store.clone(), identity.clone());
            let resolver = StoreClientCert::new(store.clone());
            let config = crate::provider::client_config(
                store.provider(),
                store.time_provider(),
                Arc::new(verifier),
                Arc::new(resolver),
                config.alpn,
            )?;
            let route = Route::Mtls {
                server_name: identity_server_name(&identity),
                identity: identity.clone(),
                config,
            };
            by_identity.insert(identity, route.clone());
            Ok(route)
        };
        let (default, targets) = targets.into_parts();
        let default = route(default)?;
        let routes = targets
            .into_iter()
            .map(|(authority, tls)| Ok((authority, route(tls)?)))
            .collect::<Result<HashMap<_, _>, rustls::Error>>()?;
        let mtls_endpoints = targets::mtls_endpoints(&routes);
        let mtls = matches!(default, Route::Mtls { .. })
            || routes.values().any(|r| matches!(r, Route::Mtls { .. }));
        let retire = Arc::new(RetireShared::new(mtls, store.metrics().clone()));
        Ok(Self {
            inner,
            shared: Arc::new(Shared {
                store,
                config,
                default,
                routes,
                mtls_endpoints,
                retire,
                next_id: AtomicU64::new(0),
            }),
        })
    }

    /// The layer to put around the client using this connector, so that its
    /// connections can be retired from the pool. See [`crate::retire`].
    pub fn retire_layer(&self) -> RetireLayer {
        RetireLayer::new(self.shared.retire.clone())
    }

    /// The store whose credentials the connector presents.
    pub fn store(&self) -> &CredentialStore {
        &self.shared.store
    }
}

/// Where the connection went decides too: a URI whose authority matches no
/// `mtls` target may still connect to one, through a host name that
/// resolves to its address or through `0.0.0.0`, which Linux dials as the
/// local host. So a connection the URI would send in plaintext is checked,
/// once connected and before a byte is written, against the targets that
/// are an address and a port; one that reached such a target gets mutual
/// TLS with that target's identity (or fails closed). This needs the
/// address the connection reached from the inner connector's
/// [`Connected`](hyper_util::client::legacy::connect::Connected) extras,
/// which hyper-util's `HttpConnector` gives; a connection that does not
/// carry it stays as its URI decided. The check only adds mutual TLS: a
/// URI that matched an `mtls` target keeps it wherever it connected.
impl<C> Service<Uri> for TlsConnector<C>
where
    C: Service<Uri>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Unpin,
{
    type Response = ClientIo<C::Response>;
    type Error = ConnectError;
    type Future = ConnectFuture<C::Future, C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| ConnectError::connect(ConnectTarget::default(), e))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let route = targets::for_uri(&self.shared.routes, &uri).unwrap_or(&self.shared.default);
        // For the error of a connect that fails, which names it: shared
        // with the URI, not copied.
        let authority = uri.authority().cloned();
        let (identity, tls, server_name) = match route {
            Route::Plaintext if self.shared.mtls_endpoints.is_empty() => {
                if is_https(&uri) {
                    let target = ConnectTarget::new(authority, None);
                    return ConnectFuture::failed(ConnectError::HttpsInPlaintext { target });
                }
                return ConnectFuture::plaintext(self.inner.call(uri), authority);
            }
            Route::Plaintext => {
                // An `https` URI may still reach an `mtls` target's
                // address, and get mutual TLS; one that reaches none is
                // refused once connected, before a byte is written.
                let https = is_https(&uri);
                return ConnectFuture::plaintext_unless_mtls(
                    self.inner.call(uri),
                    authority,
                    https,
                    &self.shared,
                );
            }
            Route::Mtls {
                identity,
                config,
                server_name,
            } => (
                identity.clone(),
                tokio_rustls::TlsConnector::from(config.clone()),
                server_name,
            ),
        };
        let ip = uri_ip(&uri);
        let server_name = match (server_name, ip) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => ServerName::IpAddress(ip.into()),
            (None, None) => match ServerName::try_from(uri.host().unwrap_or_default().to_owned()) {
                Ok(name) => name,
                Err(error) => {
                    let target = ConnectTarget::new(authority, Some(identity));
                    return ConnectFuture::failed(ConnectError::InvalidServerName {
                        target,
                        error,
                    });
                }
            },
        };
        // For the error of a handshake that fails before the connection
        // says where it went (a timeout): no DNS lookup, no allocation.
        let addr = ip.zip(targets::uri_port(&uri)).map(SocketAddr::from);
        let prepared = future::Handshake::prepare(
            &self.shared,
            identity,
            addr,
            authority.as_ref(),
            tls,
            server_name,
        );
        match prepared {
            Ok(handshake) => ConnectFuture::mtls(self.inner.call(uri), authority, handshake),
            Err(e) => ConnectFuture::failed(e),
        }
    }
}

/// Whether `uri` asks for an encrypted connection, which a target reached
/// in plaintext refuses ([`ConnectError::HttpsInPlaintext`]). The scheme
/// compares without case, as it does wherever the connector reads it.
fn is_https(uri: &Uri) -> bool {
    uri.scheme_str()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"))
}

/// The TLS server name (SNI) for a target whose expected identity is
/// `identity`: a DNS-style identity itself, as Linkerd's proxy sends the
/// server's identity. Linkerd's inbound proxy terminates only a
/// ClientHello that names its own identity and passes any other through
/// to the application, so a mesh client reaching a Linkerd-meshed
/// workload must name it; and an address, which the URI of an endpoint
/// usually is, cannot be sent as a server name at all (RFC 6066 §3), so the
/// ClientHello would name nothing. A SPIFFE ID is no DNS name: `None`, and
/// the URI's host is sent ([`uri_server_name`]).
fn identity_server_name(identity: &Identity) -> Option<ServerName<'static>> {
    if identity.is_spiffe() {
        return None;
    }
    ServerName::try_from(identity.as_str().to_owned()).ok()
}

/// The address `uri`'s host is, in any spelling that connects to one
/// ([`targets::host_ip`]: `127.1`, `[::ffff:10.0.0.7]`).
///
/// For a target whose identity is no DNS name, the TLS server name is the
/// URI's host, and a host that is an address is sent as that address, as
/// the target it matched was: otherwise a URI that reaches an `mtls`
/// target through such a spelling would fail for a server name that plays
/// no part in the check. Mesh servers ignore the name (the identity check
/// replaces the hostname check), but rustls needs one, and it gives
/// non-mesh tooling on the path something meaningful to log.
fn uri_ip(uri: &Uri) -> Option<std::net::IpAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    targets::host_ip(host)
}
