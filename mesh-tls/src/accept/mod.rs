//! The server side: an [`Accept`] hook that detects TLS on a connection,
//! runs the handshake and records who the peer is.
//!
//! A meshed port serves clients at different stages of adoption: meshed
//! workloads speaking mutual TLS, workloads not yet meshed speaking
//! plaintext, and tools speaking TLS without a certificate. The acceptor
//! reads a connection's first bytes to tell a TLS ClientHello from
//! anything else (works over any stream, not just a socket, since the
//! bytes are replayed with [`PrefixedIo`](mesh_core::io::PrefixedIo)), then applies the port's
//! [`InboundMode`]:
//!
//! | mode | plaintext | TLS, no client cert | mutual TLS |
//! |------|-----------|---------------------|------------|
//! | `permissive` (default) | served, `Tls::Plaintext` | served, `Tls::NoClientCert` | served, `Tls::Mutual` |
//! | `strict` | closed | closed | served, `Tls::Mutual` |
//! | `disabled` | served, `Tls::Plaintext(Disabled)` | bytes passed on as they are | bytes passed on as they are |
//!
//! A client certificate, when presented, must chain to the trust bundle
//! (through issuers whose key usage allows certificate signing), be valid
//! now and name an identity (a workload's SPIFFE ID as its only
//! URI SAN, or a DNS-style name in a DNS SAN) with a leaf's key usage, as
//! the X.509-SVID spec requires; otherwise the handshake fails in every
//! mode. What the peer may do once it is known is authorization's business,
//! which reads the status from [`ConnectionInfo`](mesh_core::ConnectionInfo).
//! A client's SPIFFE ID is taken only through a trust anchor of its own
//! trust domain, when the anchors name theirs (see
//! [what a certificate proves](crate::connect#what-a-certificate-proves)):
//! a chain that leads only to anchors of other trust domains is refused
//! in the handshake, in every mode
//! ([`AcceptError::NoAnchorOfTrustDomain`]). The check runs inside the one
//! path search that verifies the chain, which passes over paths ending at
//! anchors of other trust domains, so a bundle federating several costs no
//! second search; and the client receives a fatal alert,
//! `certificate_unknown`, rather than a handshake that succeeds and a
//! connection closed right after. (`unknown_ca` would fit as well, but
//! rustls sends it only for an error that cannot name the identity
//! refused; the refusal is still counted as `unknown_issuer`.) Beyond
//! that, authorization compares whole identities.
//!
//! The acceptor presents the store's certificate only while it is valid,
//! by the store's clock ([`Credentials::usable_at`](crate::Credentials::usable_at)),
//! as the connector does. A ClientHello that arrives once the certificate
//! in service has expired (its renewal failed), or before it is valid (the
//! clock stepped back), is answered with the fatal alert `access_denied`,
//! the one rustls sends for a server with no certificate to present, and
//! refused with [`AcceptError::CredentialsUnusable`], naming the identity
//! and the `notAfter` (or `notBefore`). Served, the certificate would fail
//! a careful client with an error about its own verification of it, and
//! pass a lax one. The first such refusal is logged as an error; each is
//! counted in `tls_handshake_failures_total{direction="inbound"}` as
//! `credentials_expired` (or `credentials_not_yet_valid`, for a
//! certificate not valid yet). Plaintext is served as before in `permissive` mode. A
//! ClientHello that arrives before any credentials load is answered with
//! the same alert ([`AcceptError::NoCredentials`]).
//!
//! Detection and the handshake share one timeout
//! ([`AcceptConfig::handshake_timeout`], 10 seconds by default); a peer
//! that exceeds it is disconnected, with one exception below.
//!
//! # A client that waits for the server
//!
//! In some protocols the server speaks first: a MySQL or SMTP client
//! connects and waits for the server's greeting. A plaintext client of one
//! sends nothing, so detection has nothing to read, and closing it at the
//! timeout would leave such a client unable to reach its server at all.
//! Linkerd's proxy avoids this by not detecting TLS on an opaque port:
//! meshed clients reach opaque ports through a separate port that carries
//! opaque traffic, and the application's port forwards plaintext untouched
//! (`NoServerTls::PortSkipped` in linkerd2-proxy's
//! `linkerd/app/inbound/src/detect.rs`). Here meshed clients connect to
//! the application's port itself, with mutual TLS, so detection cannot be
//! skipped; what comes nearest is this:
//!
//! - on a port the server serves opaque ([`Protocol::Opaque`], which the
//!   server tells the acceptor through [`Accept::for_protocol`]) in
//!   `permissive` mode, a connection that has sent no byte when the
//!   timeout passes is served as plaintext: `Tls::Plaintext`, labelled
//!   `no_tls_from_remote`, authorized as any plaintext client is (so a
//!   server that requires an identity still refuses it). Its greeting
//!   comes late, by the timeout, but it comes; a client that speaks
//!   first is served at once, and a meshed client's handshake is not
//!   delayed;
//! - in `strict` mode that connection is closed at the timeout, as any
//!   connection without mutual TLS is;
//! - on a port that detects its protocol, or serves HTTP only, it is
//!   closed at the timeout, as Linkerd's proxy closes one whose TLS
//!   detection times out there (`ServerTlsTimeoutError` in
//!   `linkerd/tls/src/server.rs`): a server-speaks-first protocol belongs
//!   on an opaque port;
//! - a connection that sent the first bytes of a TLS record header
//!   (`0x16`, `0x16 0x03`) and then stopped is a TLS client that stalled,
//!   and is closed at the timeout on every port.
//!
//! The wait is the price of sharing the port with meshed clients. To
//! avoid it, mesh the client (its sidecar speaks first, the ClientHello),
//! shorten the timeout, or turn TLS off for the port (`disabled`), which
//! serves every connection as plaintext at once.
//!
//! # Server names
//!
//! The acceptor terminates every TLS ClientHello with the mesh
//! certificate, whatever server name (SNI) it carries, or none. The
//! certificate check, not the name, is what authenticates a peer, and the
//! mode table above serves TLS clients without a certificate in
//! `permissive` mode: a client that names another server is one of them.
//! The mesh's connector names a DNS-style expected identity as the server
//! name, and otherwise the host it dialled
//! ([`connect`](crate::connect)), which the acceptor does not compare with
//! its own identity.
//!
//! Linkerd's proxy differs here: it terminates only a ClientHello that
//! names its own identity, and passes any other TLS connection through to
//! the application untouched (`ServerTls::Passthru` in linkerd2-proxy's
//! `linkerd/tls/src/server.rs`), so that an application serving its own
//! TLS keeps working behind it. Behind this acceptor such an application's
//! clients are answered with the mesh certificate instead, and fail to
//! verify it; its port should be `disabled`, which passes TLS bytes on as
//! they are.
//!
//! # ALPN
//!
//! The acceptor offers `h2`, then `http/1.1`. A negotiated protocol tells
//! the server how to serve the connection without reading it; a client
//! that offers no ALPN negotiates none, and the server detects what it
//! speaks ([`Alpn`](crate::connect::Alpn)). A client that offers only
//! protocols outside these two is refused in the handshake with the alert
//! `no_application_protocol`, as RFC 7301 §3.2 requires of a server that
//! supports none of them. That includes Linkerd's transport header
//! protocol (`transport.l5d.io/v1`), which a Linkerd proxy offers only to
//! peers it was told read the header; the acceptor does not.
//!
//! # Retirement
//!
//! A TLS connection is authenticated once, at its handshake, and can then
//! stay open for hours. The acceptor hands the server a
//! [`Retirement`](mesh_core::serve::Retirement) for every TLS connection,
//! so none outlives what authenticated it:
//!
//! - [`AcceptConfig::retire_before_expiry`] before the earliest `notAfter`
//!   of the server's and the client's chains (a workload certificate, or an
//!   intermediate that expires before it, after which the chain no longer
//!   verifies), the connection is
//!   drained: requests in flight finish, then it closes (HTTP/2 sends
//!   GOAWAY, HTTP/1.1 closes after the current response), and the client's
//!   next request makes a new handshake;
//! - at that `notAfter` it is closed, whatever it is doing (unless
//!   [`AcceptConfig::close_at_expiry`] is off). Opaque byte pipes cannot
//!   be drained, so this is the only retirement that reaches them;
//! - when the store's credentials rotate to a trust bundle that no longer
//!   verifies the client's chain (an anchor was dropped, say after its key
//!   leaked), at once: the connection was authenticated by trust the
//!   workload has withdrawn. A rotation that keeps the bundle, or one that
//!   still verifies the chain, leaves mutual TLS connections alone;
//! - with [`AcceptConfig::drain_on_rotation`], also as soon as the store's
//!   credentials rotate at all.
//!
//! The client should be the one to move. A server that drains races the
//! client's next request: an HTTP/2 client may already have sent a stream
//! the GOAWAY refuses, and an HTTP/1.1 client may write to a connection as
//! it closes, and clients do not all retry those requests. The mesh's own
//! connector retires its pooled connections a minute before expiry and at
//! once when its own credentials rotate, without racing anything
//! ([`retire`](crate::retire)). So the server drains only the clients that
//! did not leave by then: 30 seconds before expiry by default, after the
//! connector's minute, and on rotation only when asked to. Rotation does
//! not make the old certificate invalid; expiry, or a bundle that no longer
//! trusts the peer, does.
//!
//! Draining is the only retirement that can happen at a moment not known at
//! the handshake, and opaque byte pipes cannot be drained: a withdrawn
//! anchor ends their connections at the certificate's `notAfter`, not at
//! the rotation.
//!
//! Each drained connection counts in
//! `tls_connections_retired_total{direction="inbound"}`.

mod error;
mod future;
mod io;
mod retirement;

use std::time::Duration;

use mesh_core::{
    io::Io,
    serve::{Accept, Protocol},
};
use serde::Deserialize;

pub use self::{error::AcceptError, future::AcceptFuture, io::ServerIo};
use crate::CredentialStore;

/// What an inbound port accepts. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundMode {
    /// Plaintext, TLS without a client certificate, and mutual TLS.
    #[default]
    Permissive,
    /// Mutual TLS only.
    Strict,
    /// Plaintext only: no detection, no handshake.
    Disabled,
}

/// How the acceptor treats connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptConfig {
    /// What the port accepts. Default [`InboundMode::Permissive`].
    pub mode: InboundMode,
    /// How long TLS detection and the handshake may take together. Default
    /// 10 seconds.
    pub handshake_timeout: Duration,
    /// How long before the earlier `notAfter` of the two certificates a TLS
    /// connection is drained. Default 30 seconds: less than the connector's
    /// 60, so mesh clients have left first.
    pub retire_before_expiry: Duration,
    /// Whether a TLS connection still open at that `notAfter` is closed.
    /// Default true.
    pub close_at_expiry: bool,
    /// Whether TLS connections are drained as soon as the store's
    /// credentials rotate. Default false: see the
    /// [module docs](self#retirement) for the race this invites.
    pub drain_on_rotation: bool,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        Self {
            mode: InboundMode::default(),
            handshake_timeout: Duration::from_secs(10),
            retire_before_expiry: Duration::from_secs(30),
            close_at_expiry: true,
            drain_on_rotation: false,
        }
    }
}

impl AcceptConfig {
    /// The default configuration with `mode`.
    pub fn with_mode(mode: InboundMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }
}

/// The mesh's [`Accept`] hook: TLS detection, the handshake and the peer's
/// identity, with the credentials of a [`CredentialStore`].
#[derive(Clone, Debug)]
pub struct TlsAccept {
    store: CredentialStore,
    config: AcceptConfig,
    /// Whether the port is opaque, as the server said through
    /// [`Accept::for_protocol`].
    opaque_port: bool,
}

impl TlsAccept {
    /// An acceptor serving the store's credentials as `config` says.
    pub fn new(store: CredentialStore, config: AcceptConfig) -> Self {
        Self {
            store,
            config,
            opaque_port: false,
        }
    }

    /// The acceptor's configuration.
    pub fn config(&self) -> &AcceptConfig {
        &self.config
    }
}

impl<I: Io> Accept<I> for TlsAccept {
    type Io = ServerIo<I>;
    type Future = AcceptFuture<I>;

    fn accept(&self, io: I) -> Self::Future {
        AcceptFuture::new(io, &self.store, &self.config, self.opaque_port)
    }

    /// On an opaque port, a permissive acceptor serves a client that sent
    /// nothing by the handshake timeout as plaintext: see
    /// [a client that waits for the server](self#a-client-that-waits-for-the-server).
    fn for_protocol(&self, protocol: Protocol) -> Self {
        Self {
            opaque_port: protocol == Protocol::Opaque,
            ..self.clone()
        }
    }
}
