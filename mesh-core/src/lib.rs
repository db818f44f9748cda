//! The vocabulary every mesh layer shares, and the proxy engine under them.
//!
//! A mesh is a set of small tower layers (mTLS, authorization, retries,
//! metrics) that agree on a few words: who the peer is ([`Identity`]), how the
//! connection arrived ([`ConnectionInfo`]), whether a response failed
//! ([`Classify`]), which route a request took ([`RouteId`]) and which failures
//! the mesh answers itself ([`ProxyErrorKind`]). Those words live here, so that
//! the layer crates never depend on each other.
//!
//! The engine is here too: a [`serve::Server`] that accepts TCP, hands each
//! connection to an [`serve::Accept`] hook (where TLS plugs in), detects the
//! protocol and serves HTTP/1.1 and HTTP/2; an upstream [`client::Client`]
//! with a pluggable connector; [`proxy::Forward`], which forwards requests and
//! streams bodies; and the [`admin`] server.
//!
//! The failures the mesh answers itself look the same from every layer: a
//! status (or a `grpc-status` for gRPC requests) and a `mesh-error` header
//! that says which failure it was.
//!
//! ```
//! use mesh_core::{body::BoxBody, error::{MESH_ERROR, ProxyErrorKind}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A service that answers every request with the mesh's 404.
//! let svc = ServiceBuilder::new().service(service_fn(|req: http::Request<BoxBody>| async move {
//!     Ok::<_, std::convert::Infallible>(ProxyErrorKind::NoRoute.response::<BoxBody>(&req))
//! }));
//!
//! let res = svc.oneshot(http::Request::get("/nowhere").body(BoxBody::default())?).await?;
//! assert_eq!(res.status(), http::StatusCode::NOT_FOUND);
//! assert_eq!(res.headers()[MESH_ERROR], "no route");
//! # Ok(()) }
//! ```
//!
//! (Besides this crate, the example uses `cargo add tower http` and
//! `cargo add tokio --features macros,rt`.)
//!
//! # In an axum or hyper service
//!
//! The layers read the connection from each request's [`ConnectionInfo`],
//! which [`serve::Server`] inserts (with the peer's identity, when an
//! [`serve::Accept`] hook such as mesh-tls's ran the handshake). Serve an
//! axum `Router` with [`Server::serve_http`](serve::Server::serve_http)
//! rather than `axum::serve`, which inserts none: without it, metrics have
//! no `tls` or target labels and authorization sees a client with no
//! address and no identity. A handler reads the caller with axum's
//! `Extension<ConnectionInfo>` and [`ConnectionInfo::peer_identity`].
//!
//! Layers that answer a request themselves (a timeout's 504, a refusal's
//! 403) answer in the response body type of the service they wrap, so they
//! need that type to have an empty value (`Default`). hyper's `Incoming`
//! has none: wrap it in [`body::Proxied`], which has:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use mesh_core::body::Proxied;
//! use tower::ServiceBuilder;
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! // Put mesh-retry's or mesh-policy's layers here, over a body with a `Default`.
//! let client = ServiceBuilder::new()
//!     .map_response(|res: http::Response<hyper::body::Incoming>| res.map(Proxied::from))
//!     .service(client);
//! # let _ = client;
//! ```
//!
//! A handler of axum's that calls a service whose request body is
//! [`body::BoxBody`] does not compile ("implementation of `Service` is not
//! general enough"): rustc cannot prove its future `Send` for every
//! lifetime of the `dyn Error` the type names. Give such a client a
//! concrete request body (`Full<Bytes>`, `axum::body::Body`) instead.

pub mod admin;
pub mod body;
pub mod classify;
pub mod client;
pub mod conn;
pub mod detect;
pub mod error;
pub mod identity;
pub mod io;
pub mod labels;
pub mod proxy;
pub mod resource;
pub mod route;
pub mod serve;

pub use classify::{Classify, ResponseClass};
pub use conn::{ConnectionInfo, Tls};
pub use error::{BoxError, ProxyErrorKind};
pub use identity::{Identity, TrustDomain};
pub use route::{RouteId, RouteMatch};

/// The Prometheus client whose
/// [`Registry`](prometheus_client::registry::Registry) [`admin::Admin`] serves, re-exported
/// so that a service needs no dependency of its own to hold one, nor to
/// keep its version in step.
///
/// ```
/// use mesh_core::{admin::{Admin, Readiness}, prometheus_client::registry::Registry};
///
/// let admin = Admin::new(Registry::default(), Readiness::new());
/// # let _ = admin;
/// ```
pub use prometheus_client;

/// The README's examples, compiled as doctests so that they keep up with the
/// crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
