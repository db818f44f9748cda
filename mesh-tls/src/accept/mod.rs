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
//! | mode | plaintext | TLS, no client cert | mutual TLS | TLS for another server |
//! |------|-----------|---------------------|------------|------------------------|
//! | `permissive` (default) | served, `Tls::Plaintext` | served, `Tls::NoClientCert` | served, `Tls::Mutual` | bytes passed on as they are, `Tls::Passthrough` |
//! | `strict` | closed | closed | served, `Tls::Mutual` | closed |
//! | `disabled` | served, `Tls::Plaintext(Disabled)` | bytes passed on as they are | bytes passed on as they are | bytes passed on as they are |
//!
//! "TLS for another server" is a ClientHello whose server name is not
//! this workload's, on a workload whose identity is DNS-style (see
//! [server names](#server-names)); the other TLS columns are
//! ClientHellos the acceptor terminates. A strict port closes a TLS client
//! without a certificate in the handshake, with the alert
//! `certificate_required` (RFC 8446 §4.4.2.4), and reports
//! [`AcceptError::NoClientCertificate`].
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
//! A meshed port carries two kinds of TLS: the mesh's own, from clients
//! of this workload, and the application's, when it serves TLS itself
//! (HTTPS on a meshed port). Terminated with the mesh certificate, the
//! application's clients would fail to verify it. So the acceptor reads
//! the server name (SNI) of every ClientHello before it answers, and,
//! on a workload whose identity is DNS-style, terminates only one that
//! asks for this workload:
//!
//! - no server name: terminated (tools that dial an address send none);
//! - a name the certificate in service carries as a DNS SAN, compared
//!   ASCII case-insensitively: the identity itself, which the mesh's
//!   connector sends for a DNS-style expected identity
//!   ([`connect`](crate::connect)), or another name issued beside it:
//!   terminated;
//! - any other name: the application's TLS. In `permissive` mode its
//!   bytes, the ClientHello included, are passed on untouched, as
//!   [`Tls::Passthrough`](mesh_core::Tls::Passthrough) with the name
//!   asked for, and counted in `tls_passthrough_connections_total`, not
//!   as a handshake failure. The mesh authenticated nothing:
//!   authorization grants such a connection only what needs no
//!   authentication, and a server serves it as opaque bytes, never as
//!   HTTP. In `strict` mode, which admits mutual TLS with the mesh
//!   alone, it is closed ([`AcceptError::PassthroughRefused`], counted as
//!   `passthrough_refused`). In `disabled` mode every connection is
//!   passed on already.
//!
//! A workload whose identity is a SPIFFE ID terminates every ClientHello,
//! whatever it names: a SPIFFE ID is no DNS name, so the mesh's connector
//! sends a SPIFFE target the host it dialled as the server name, and a
//! name the certificate does not carry may be a mesh client's. Such a
//! workload's application serving its own TLS needs its port `disabled`.
//!
//! This is Linkerd's rule (`ServerTls::Passthru` in linkerd2-proxy's
//! `linkerd/tls/src/server.rs`), whose identities are DNS-style, with two
//! differences. Linkerd terminates only the name of its one identity;
//! here any DNS name of the certificate counts, since a certificate
//! proves each of them to clients. And Linkerd passes a ClientHello
//! without a server name through as if it were not TLS, where here it is
//! terminated: it is no name of another server.
//!
//! The name is read from the ClientHello's first record, which the
//! acceptor reads whole (up to the 16 KiB TLS allows; rustls needs it
//! before it answers anyway). A ClientHello that continues past its first
//! record, or names something that is no host name, is terminated, and
//! rustls decides. Before any credentials load no name is known to be
//! this workload's, and every ClientHello is refused, as before. A
//! wildcard DNS SAN names no server a client can ask for, and matches
//! none.
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
//! The drain before expiry and the close at `notAfter` fall due by the
//! store's clock: their timers look at that clock again at least every
//! minute, so a machine resumed from sleep, or a wall clock stepped
//! forward, drains and closes the connection within a minute rather than
//! when tokio's clock, which stood still meanwhile, gets there. The
//! server waits on the close through
//! [`Retirement::close_when`](mesh_core::serve::Retirement::close_when),
//! one timer per connection.
//!
//! The client should be the one to move. A server that drains races the
//! client's next request: an HTTP/2 client may already have sent a stream
//! the GOAWAY refuses, and an HTTP/1.1 client may write to a connection as
//! it closes, and clients do not all retry those requests. The mesh's own
//! connector retires its pooled connections a minute before expiry, and
//! at once when its local identity changes or a new bundle no longer
//! vouches for the server (not on a renewal), without racing anything
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

pub mod client_hello;
mod error;
mod future;
mod io;
mod names;
mod retirement;

use std::{sync::Arc, time::Duration};

use mesh_core::{
    io::Io,
    serve::{Accept, Protocol},
};
use serde::Deserialize;

use self::names::LocalNames;
pub use self::{error::AcceptError, future::AcceptFuture, io::ServerIo};
use crate::CredentialStore;

/// What an inbound port accepts. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundMode {
    /// Plaintext, TLS without a client certificate, and mutual TLS; TLS
    /// for another server is passed through (see [server
    /// names](self#server-names)).
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
    /// The server names the certificate in service answers to.
    names: Arc<LocalNames>,
}

impl TlsAccept {
    /// An acceptor serving the store's credentials as `config` says.
    pub fn new(store: CredentialStore, config: AcceptConfig) -> Self {
        Self {
            store,
            config,
            opaque_port: false,
            names: Arc::default(),
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
        AcceptFuture::new(io, self)
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
