//! Golden metrics for every request and connection, with Linkerd's names,
//! and the `stat`, `routes` and `top` views over them.
//!
//! Observability is the second reason people adopt a mesh: success rate,
//! requests per second, latency percentiles and TLS coverage for every
//! workload and route, without touching the application. Linkerd users
//! already have dashboards and alerts on the proxy's metric names, so this
//! crate emits the same families, with Linkerd's labels where the mesh
//! knows their values: inbound, linkerd2-proxy's target, TLS, server,
//! route and authorization labels in its order (not `authority`, whose
//! values come from requests); outbound, `dst_service`, `route_name` and
//! the TLS labels, counted once per logical request (linkerd2-proxy
//! counts each endpoint's attempts and labels them from its service
//! discovery, which a mesh without a control plane does not have):
//!
//! - [`MetricsLayer`] records `request_total`, `response_total` and
//!   `response_latency_ms` for HTTP, inbound or outbound ([`http`]).
//! - [`TcpAccept`] and [`TcpConnect`] count `tcp_open_total`,
//!   `tcp_open_connections`, `tcp_read_bytes_total`, `tcp_write_bytes_total`
//!   and `tcp_close_total` on the server's and the client's sockets
//!   ([`tcp`]), inbound or outbound on either side, as Linkerd writes
//!   them. `tcp_close_total`'s `errno` is the name of the socket error's
//!   Linux errno (`ECONNRESET`), `UNKNOWN_ERRNO` for a number without
//!   one, and empty for a close without an error or an error without a
//!   number, as in Linkerd.
//! - [`errors`] counts Linkerd's `inbound_http_errors_total`,
//!   `outbound_http_errors_total`, `inbound_tcp_errors_total` and
//!   `outbound_tcp_errors_total`: what the proxy failed for an error of
//!   its own.
//! - [`register_process_metrics`] adds the process families and
//!   `proxy_build_info`.
//! - [`query`] reads `/metrics` back and computes what `linkerd viz stat`
//!   shows.
//! - [`access_log`] writes a line per request, in Linkerd's Apache or
//!   JSON format, without making requests wait for the writes.
//! - [`tap`] streams live requests, one event per line, as `linkerd viz
//!   tap` does: which requests, which statuses, how long.
//! - [`dashboard`] polls a set of admin servers once per interval and
//!   serves a self-contained page (`/dashboard`) and its JSON: workloads
//!   with sparklines, who calls whom, and each route's retries and
//!   timeouts. It plugs into the admin server as its extension.
//! - [`trace`] makes the proxy a span in the traces requests carry (W3C
//!   `traceparent` or B3), and sends sampled spans to an OpenTelemetry
//!   collector over OTLP/HTTP.
//!
//! Every family is registered in a prometheus-client `Registry` the caller
//! owns (no global registry), and mesh-core's admin server serves it as
//! OpenMetrics text.
//!
//! # Bounded cardinality
//!
//! Label values come only from closed sets: directions, TLS statuses,
//! identities the trust bundle vouched for, names from configuration
//! (servers, routes, authorizations, services) and status codes, never
//! paths, authorities or addresses. Each family also has a series limit
//! ([`MetricsConfig`], 10,000 by default); past it, new label sets fold into
//! an `overflow="true"` series, which keeps only the direction, the `tls`
//! status and a response's classification, so that per-direction totals,
//! success rates and TLS shares stay right, and `*_series_overflow_total`
//! counts the folds.
//!
//! # In process
//!
//! A hyper service that records its own traffic and serves `/metrics` on a
//! second port (besides this crate, the example uses
//! `cargo add --git https://github.com/mesh-rs/mesh mesh-core`,
//! `cargo add prometheus-client tower http http-body-util bytes hyper`,
//! `cargo add hyper-util --features client-legacy,http1,tokio` and
//! `cargo add tokio --features full`):
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http_body_util::{BodyExt, Empty, Full};
//! use mesh_core::{admin::{Admin, Readiness}, serve::{Server, ServerConfig, shutdown}};
//! use mesh_metrics::{HttpMetrics, MetricsLayer};
//! use prometheus_client::registry::Registry;
//! use tower::{ServiceBuilder, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut registry = Registry::default();
//! let metrics = HttpMetrics::register(&mut registry);
//!
//! let app = ServiceBuilder::new()
//!     .layer(MetricsLayer::inbound(&metrics))
//!     .service(service_fn(|_req: http::Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(http::Response::new(Full::<bytes::Bytes>::from("hello\n")))
//!     }));
//! let (trigger, signal) = shutdown::channel();
//! let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (app_addr, admin_addr) = (app_listener.local_addr()?, admin_listener.local_addr()?);
//! tokio::spawn(Server::new(ServerConfig::default()).serve_http(app_listener, app, signal.clone()));
//! let admin = Admin::new(registry, Readiness::new());
//! tokio::spawn(Server::new(ServerConfig::default()).serve_http(admin_listener, admin, signal));
//!
//! let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<Empty<bytes::Bytes>>();
//! let res = client.get(format!("http://{app_addr}/").parse()?).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "hello\n");
//!
//! let res = client.get(format!("http://{admin_addr}/metrics").parse()?).await?;
//! let text = String::from_utf8(res.into_body().collect().await?.to_bytes().to_vec())?;
//! let port = app_addr.port();
//! assert!(text.contains(&format!(
//!     "request_total{{direction=\"inbound\",target_addr=\"127.0.0.1:{port}\",target_ip=\"127.0.0.1\",\
//!      target_port=\"{port}\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"}} 1"
//! )));
//! trigger.trigger();
//! # Ok(()) }
//! ```

pub mod access_log;
mod body_rule;
mod config;
pub mod dashboard;
pub mod errors;
mod family;
mod histogram;
pub mod http;
mod labels;
mod printable;
mod process;
pub mod query;
pub mod tap;
pub mod tcp;
pub mod trace;

pub use self::{
    config::MetricsConfig,
    histogram::LATENCY_BUCKETS_MS,
    http::{AsDynError, HttpMetrics, MetricsLayer},
    labels::Direction,
    process::{BuildInfo, register_process_metrics},
    tcp::{TcpAccept, TcpConnect, TcpMetrics},
};

/// The Prometheus client whose [`Registry`](prometheus_client::registry::Registry)
/// every family here registers in, re-exported so that a service needs no
/// dependency of its own to hold one, nor to keep its version in step.
pub use prometheus_client;

/// The README's examples, compiled as doctests so that they keep up with the
/// crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
