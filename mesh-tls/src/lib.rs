//! Mutual TLS for the mesh: workload identities in X.509 certificates, an
//! acceptor and a connector for mesh-core's server and client, credentials
//! that rotate without dropping a request, and a small CA.
//!
//! Every connection between meshed workloads is encrypted, and each end
//! learns who the other is: the server reads the client's identity from its
//! certificate, and the client checks that the server's certificate names
//! the identity configured for the target, not merely some hostname.
//! Identities are SPIFFE IDs in URI SANs, or DNS-style names in DNS SANs
//! (see [`mesh_core::Identity`]).
//!
//! The pieces:
//!
//! - [`CredentialStore`]: the certificate chain, key and trust bundle in
//!   service, loaded from files it watches or pushed in by code, checked
//!   before use and swapped atomically. It opens a `/ready` gate once
//!   loaded and owns the [`TlsMetrics`]. Neither end presents a
//!   certificate outside its validity: once the one in service expires
//!   without a renewal, handshakes fail on both sides, with an error
//!   naming the identity and its `notAfter`, until a valid one loads.
//!   The store tells the time by an injectable clock
//!   ([`CredentialStore::with_time_provider`]).
//! - [`TlsAccept`]: the server's [`Accept`](mesh_core::serve::Accept) hook.
//!   It detects TLS, runs the handshake and reports the peer as a
//!   [`Tls`](mesh_core::Tls) status, which reaches every request as
//!   [`ConnectionInfo`](mesh_core::ConnectionInfo). Ports are `permissive`,
//!   `strict` or `disabled` ([`InboundMode`]).
//!   [`accept::client_hello::server_name`] reads the SNI from a
//!   connection's first TLS record without a handshake, for a proxy that
//!   routes TLS it does not terminate.
//! - [`TlsConnector`]: the client's connector. It opens mutual TLS to
//!   targets configured [`OutboundTls::Mtls`] with an expected identity
//!   (failing closed) and plaintext to the others (an `https` URI to one
//!   of those fails to connect,
//!   [`ConnectError::HttpsInPlaintext`],
//!   rather than go out in the clear), and, with its
//!   [`RetireLayer`], retires pooled connections before their certificates
//!   go stale ([`retire`]).
//! - [`ca`] (feature `ca`): a trust anchor, an issuer and workload
//!   certificates, as files or in memory.
//! - [`ClientIdLayer`]: tells a handler who called, in a `mesh-client-id`
//!   header set from the mutual TLS peer and never taken from the client.
//!
//! The TLS itself is fixed ([`provider`](fn@provider)): TLS 1.3 only, through rustls
//! with aws-lc-rs; key exchange X25519MLKEM768, then X25519, P-256 and P-384;
//! AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305; ALPN `h2` and
//! `http/1.1`; no session resumption.
//!
//! # Features
//!
//! - `ca` (default): the development CA ([`ca`]) and [`CredentialSource`],
//!   whose `Ca` form runs it; both need rcgen. A service whose certificates
//!   come from files does without them: `mesh-tls = { version = "0.1",
//!   default-features = false }`, with [`CredentialStore::start_files`]
//!   keeping the files in service, as a `Files` source does.
//!
#![cfg_attr(
    not(feature = "ca"),
    doc = "[`ca`]: #features",
    doc = "[`CredentialSource`]: #features",
    doc = ""
)]
//! # In process
//!
//! A server that answers with the caller's identity, and a client that
//! calls it over mutual TLS, with no sidecar (besides this crate, the
//! example uses `cargo add --git https://github.com/mesh-rs/mesh mesh-core`,
//! `cargo add tower http http-body-util bytes` and
//! `cargo add tokio --features full`; the development CA, [`ca`], issues
//! its certificates, so it needs the `ca` feature):
//!
#![cfg_attr(feature = "ca", doc = "```")]
#![cfg_attr(not(feature = "ca"), doc = "```ignore")]
//! use std::time::Duration;
//! use http_body_util::{BodyExt, Empty};
//! use mesh_core::{
//!     ConnectionInfo,
//!     client::{Client, ClientConfig},
//!     serve::{self, Server, ServerConfig},
//! };
//! use mesh_tls::{
//!     AcceptConfig, CredentialStore, InboundMode, OutboundTls, StoreConfig, TlsAccept,
//!     TlsConnector, TlsTargets, ca::CertificateAuthority,
//! };
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let ca = CertificateAuthority::generate("example.org".parse()?)?;
//! let web = "spiffe://example.org/ns/shop/sa/web".parse()?;
//! let api = "spiffe://example.org/ns/shop/sa/api".parse()?;
//! let ttl = Duration::from_secs(3600);
//! let api_store = CredentialStore::with_credentials(StoreConfig::default(), ca.issue(&api, ttl)?.credentials()?)?;
//! let web_store = CredentialStore::with_credentials(StoreConfig::default(), ca.issue(&web, ttl)?.credentials()?)?;
//!
//! // The server: strict mutual TLS; the handler reads the caller's identity.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let hello = ServiceBuilder::new().service(service_fn(|req: http::Request<_>| async move {
//!     let caller = req.extensions().get::<ConnectionInfo>().and_then(|c| c.peer_identity().cloned());
//!     let body = format!("hello {}", caller.map_or("stranger".into(), |id| id.to_string()));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full(body)))
//! }));
//! let (stop, shutdown) = serve::shutdown::channel();
//! let accept = TlsAccept::new(api_store, AcceptConfig::with_mode(InboundMode::Strict));
//! let server = Server::new(ServerConfig::default()).with_accept(accept);
//! let server = tokio::spawn(server.serve_http(listener, hello, shutdown));
//!
//! // The client: mutual TLS to `addr`, which must prove it is `api`.
//! let config = ClientConfig::default();
//! let targets = TlsTargets::new(OutboundTls::Plaintext).with_endpoint(addr, OutboundTls::Mtls(api));
//! let connector = TlsConnector::new(&config, web_store, targets)?;
//! let mut client = ServiceBuilder::new()
//!     .layer(connector.retire_layer())
//!     .service(Client::<Empty<bytes::Bytes>, _>::with_connector(&config, connector));
//!
//! let req = http::Request::get(format!("http://{addr}/")).body(Empty::new())?;
//! let res = client.ready().await?.call(req).await?;
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "hello spiffe://example.org/ns/shop/sa/web");
//!
//! stop.trigger();
//! server.await?;
//! # Ok(()) }
//! ```

pub mod accept;
#[cfg(feature = "ca")]
pub mod ca;
mod cert;
pub mod client_id;
pub mod connect;
pub mod creds;
pub mod metrics;
mod provider;
pub mod retire;
pub mod store;
mod verify;

#[cfg(feature = "ca")]
pub use self::store::CredentialSource;
pub use self::{
    accept::{AcceptConfig, InboundMode, ServerIo, TlsAccept},
    cert::{BadCertificate, NoIdentity, in_trust_domain},
    client_id::{ClientId, ClientIdLayer, L5D_CLIENT_ID, MESH_CLIENT_ID},
    connect::{
        Alpn, ClientIo, ConnectConfig, ConnectError, OutboundTls, ServerTls, TlsConnector,
        TlsTargets,
    },
    creds::{CredentialError, CredentialFiles, Credentials},
    metrics::TlsMetrics,
    provider::{ALPN_H2, ALPN_HTTP1, PROTOCOL_VERSIONS, provider},
    retire::RetireLayer,
    store::{CredentialStore, DEFAULT_WATCH_INTERVAL, ReloadHandle, StoreConfig, StoreVersion},
    verify::{IdentityMismatch, NoAnchorOfTrustDomain},
};

/// rustls, re-exported so that a service can name the types this crate's
/// API speaks (the `TimeProvider` of [`CredentialStore::with_time_provider`],
/// the connection behind [`ServerIo::tls`] and [`ClientIo::tls`], the
/// `CertificateDer`s of [`Credentials::chain`], the `CryptoProvider` of
/// [`provider`](fn@provider)) without a dependency of its own, nor keeping
/// its version in step.
///
/// ```
/// use std::sync::Arc;
/// use mesh_tls::{CredentialStore, StoreConfig, rustls::time_provider::DefaultTimeProvider};
///
/// let store = CredentialStore::with_time_provider(StoreConfig::default(), Arc::new(DefaultTimeProvider));
/// assert!(!store.is_ready());
/// ```
pub use rustls;

/// The README's examples, compiled as doctests so that they keep up with the
/// crate. They issue their certificates with the CA, so they need it.
#[cfg(all(doctest, feature = "ca"))]
#[doc = include_str!("../README.md")]
mod readme {}
