//! The network checks: the application accepts connections, the outbound
//! endpoints given by name resolve, the running sidecar's admin server
//! answers, or, before it starts, its listen addresses are free.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use mesh_core::proxy::resolve::{EndpointAddr, lookup_host};
use tokio::net::{TcpListener, TcpStream};

use super::time::Span;
use super::{Check, own_endpoints, with_causes};
use crate::sidecar::config::{ServiceConfig, SidecarConfig};

/// The most of an admin answer that is read: `/live` and `/ready` answer
/// a word or a list of gates.
const MAX_ADMIN_BODY: usize = 4096;

/// Each application address the inbound listeners forward to accepts a
/// TCP connection within `timeout`. Addresses are checked at once, and
/// listed once each. One that does not names the listeners that forward
/// to it, and the two ways out: the application is not running, or the
/// configuration has its address wrong.
pub(super) async fn reachable(config: &SidecarConfig, timeout: Duration) -> Vec<Check> {
    let mut apps: Vec<(SocketAddr, Vec<SocketAddr>)> = Vec::new();
    for port in config.inbound.ports() {
        match apps.iter_mut().find(|(app, _)| *app == port.app) {
            Some((_, listeners)) => listeners.push(port.listen),
            None => apps.push((port.app, vec![port.listen])),
        }
    }
    join_all(apps.into_iter().map(|(app, listeners)| async move {
        let title = format!("app at {app} accepts connections");
        let problem = match tokio::time::timeout(timeout, TcpStream::connect(dialable(app))).await {
            Ok(Ok(_)) => return Check::pass(title),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {}", Span(timeout)),
        };
        let listeners: Vec<String> = listeners.iter().map(ToString::to_string).collect();
        let (noun, verb) = match listeners.len() {
            1 => ("listener", "forwards"),
            _ => ("listeners", "forward"),
        };
        Check::fail(
            title,
            format!(
                "{problem}\nthe inbound {noun} {} {verb} the requests it accepts here",
                listeners.join(", ")
            ),
        )
        .with_hint(
            "start the application, or set the app address (inbound.app, or the listener's \
             entry in inbound.ports) to where it listens",
        )
    }))
    .await
}

/// Each DNS name among the outbound services' endpoints resolves within
/// `timeout`. One that does not is a warning, not a failure: the sidecar
/// starts anyway, looks it up again every `resolve_interval`, and answers
/// the service's requests with 503 until it resolves. Names are looked up
/// at once, and listed once each per service.
///
/// A name that resolves to one of the sidecar's own outbound listeners
/// (`localhost:4140`) warns as such an address does: the sidecar leaves
/// what it resolves to out, as a request sent there would loop. It fails
/// when the service has no other endpoint, and would answer every request
/// with 503.
pub(super) async fn resolvable(config: &SidecarConfig, timeout: Duration) -> Vec<Check> {
    let listeners = own_endpoints::listeners(&config.outbound);
    let mut names: Vec<(&ServiceConfig, &str, u16)> = Vec::new();
    for service in &config.outbound.services {
        for endpoint in &service.endpoints {
            if let EndpointAddr::Name { host, port } = endpoint
                && !names
                    .iter()
                    .any(|(s, h, p)| s.name == service.name && *h == host && p == port)
            {
                names.push((service, host.as_str(), *port));
            }
        }
    }
    let listeners = &listeners;
    join_all(names.into_iter().map(|(service, host, port)| async move {
        let name = service.name.as_str();
        let title = format!("endpoint {host}:{port} of service {name} resolves");
        let lookup = lookup_host(host.to_owned(), port);
        let problem = match tokio::time::timeout(timeout, lookup).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                let count = addrs.len();
                let plural = if count == 1 { "" } else { "es" };
                let found = format!("{count} address{plural}");
                let own: Vec<String> = addrs
                    .iter()
                    .filter_map(|addr| own_endpoints::own(*addr, listeners))
                    .collect();
                if own.is_empty() {
                    return Check::pass(title).with_detail(found);
                }
                let why = format!("{found}\n{}\n{}", own.join("\n"), own_endpoints::LEFT_OUT);
                // Another endpoint may be left: an address that is no
                // listener, another name, or another of this name's.
                let others = own.len() < count
                    || service.endpoints.iter().any(|endpoint| match endpoint {
                        EndpointAddr::Socket(addr) => {
                            own_endpoints::own(*addr, listeners).is_none()
                        }
                        EndpointAddr::Name { host: h, port: p } => h != host || *p != port,
                    });
                return if others {
                    Check::warn(title, why)
                } else {
                    Check::fail(title, format!("{why}\n{}", own_endpoints::none_left(name)))
                };
            }
            Ok(Ok(_)) => "no address".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {}", Span(timeout)),
        };
        Check::warn(
            title,
            format!(
                "{problem}\nthe sidecar starts anyway and looks it up again; until it resolves, \
                 requests to {name} get 503"
            ),
        )
    }))
    .await
}

/// Every address the sidecar listens on can be bound now: what `--pre`
/// checks instead of asking a running sidecar.
pub(super) async fn bindable(config: &SidecarConfig) -> Vec<Check> {
    let inbound = config
        .inbound
        .ports()
        .iter()
        .map(|port| ("inbound", port.listen));
    let tcp_ports = config
        .outbound
        .ports
        .iter()
        .map(|port| ("outbound tcp", port.listen));
    let listeners = inbound
        .chain([("outbound", config.outbound.listen)])
        .chain(tcp_ports)
        .chain([("admin", config.admin.listen)]);
    let mut checks = Vec::new();
    for (side, addr) in listeners {
        let title = format!("{side} listener {addr} can be bound");
        checks.push(match TcpListener::bind(addr).await {
            Ok(_) => Check::pass(title),
            Err(error) => Check::fail(title, error.to_string()),
        });
    }
    checks
}

/// The admin server answers `/live` and `/ready` with 200. One on port 0
/// cannot be found, and the checks say so.
pub(super) async fn admin(config: &SidecarConfig, timeout: Duration) -> Vec<Check> {
    let addr = dialable(config.admin.listen);
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut checks = Vec::new();
    for (state, path) in [("live", "/live"), ("ready", "/ready")] {
        let title = format!("sidecar is {state} ({addr}{path})");
        if addr.port() == 0 {
            // The system chose the port at start; the file cannot say it.
            checks.push(
                Check::fail(
                    title,
                    "admin.listen has port 0, so the running sidecar's admin port is the one \
                     the system chose at start, which the file does not say",
                )
                .with_hint(
                    "give admin.listen a port to check a running sidecar, or check one not \
                     started with --pre",
                ),
            );
            continue;
        }
        checks.push(match get(&client, addr, path, timeout).await {
            Ok((StatusCode::OK, _)) => Check::pass(title),
            Ok((status, body)) => Check::fail(title, format!("{status}: {}", body.trim_end())),
            Err(detail) => Check::fail(title, detail).with_hint(
                "is the sidecar running? `sidecar check --pre` checks one that has not started",
            ),
        });
    }
    checks
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(StatusCode, String), String> {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .map_err(|error| with_causes(&error))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|error| {
            if error.is_connect() {
                // The client's layers add nothing to the operating
                // system's reason.
                format!("cannot connect: {}", crate::root_cause(&error))
            } else {
                with_causes(&error)
            }
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ADMIN_BODY)
            .collect()
            .await
            .map_err(|e| with_causes(&*e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}", Span(timeout))))
}

/// The address to connect to for one the sidecar binds or forwards to: an
/// unspecified address (`0.0.0.0`, `[::]`) means this host, reached on
/// loopback.
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}
