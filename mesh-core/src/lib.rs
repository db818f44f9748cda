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
