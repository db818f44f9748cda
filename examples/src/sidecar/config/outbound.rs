//! The outbound side: the services the application calls through the sidecar.

use std::error::Error as StdError;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;
use std::time::Duration;

use mesh_core::proxy::{FailureAccrual, Queue, authority_host, resolve::EndpointAddr};
use mesh_retry::{BudgetConfig, RetryPolicy, Timeouts};
use mesh_tls::OutboundTls;

/// The default outbound listener, `127.0.0.1:4140` (Linkerd's outbound
/// port). It listens on loopback only: it is for the local application.
pub const DEFAULT_OUTBOUND_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4140));

/// The outbound section: where the application sends its requests, and the
/// services they are routed to.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundConfig {
    /// The address the outbound listener binds. Default
    /// [`DEFAULT_OUTBOUND_LISTEN`].
    pub listen: SocketAddr,
    /// The known services, in file order. Names are unique. Default: none.
    pub services: Vec<ServiceConfig>,
    /// Whether the listener is in front of an ingress controller (NGINX,
    /// Traefik): a request's `mesh-dst-override` header (or Linkerd's
    /// `l5d-dst-override`) then names its service, in place of its
    /// authority, which is the public name the ingress was asked for.
    /// Requests without the header are routed by authority. Outside
    /// ingress mode the header is ignored, so that an application cannot
    /// steer its requests with it; in either mode it is removed before a
    /// request leaves the sidecar. Default false, as Linkerd's
    /// `linkerd.io/inject: ingress` is something a workload asks for;
    /// [`SidecarConfig::load`](super::SidecarConfig::load) lets
    /// [`INGRESS_MODE_ENV`](super::INGRESS_MODE_ENV) decide instead. See
    /// "Ingress mode" in `examples/CONFIG.md` for the details.
    pub ingress_mode: bool,
    /// Listeners whose connections are forwarded as opaque bytes to an
    /// outbound service's endpoints, in file order. Default: none.
    pub ports: Vec<OutboundPort>,
    /// How many requests to a service may wait for one of its endpoints
    /// to be ready, and for how long before the service fails fast
    /// (`http_queue_capacity`, `http_failfast_timeout`). Default
    /// Linkerd's: 10,000 requests, 3 s.
    pub http_queue: Queue,
    /// The same for the connections of `ports` and the tunnels of
    /// `CONNECT` (`tcp_queue_capacity`, `tcp_failfast_timeout`), which
    /// Linkerd sets apart from HTTP's. Default Linkerd's: 10,000
    /// connections, 3 s.
    pub tcp_queue: Queue,
}

/// A listener for the application's TCP connections to one outbound
/// service (a database, a cache): each connection is forwarded, bytes
/// unread, to one of the service's endpoints, balanced as its HTTP
/// requests are, over mutual TLS when the service has an identity.
///
/// Only the service's `endpoints`, `identity` (its TLS) and
/// `failure_accrual` apply: its `retry`, `timeouts`, `budget`, routes and
/// `http2_upgrade` are about HTTP requests, which a byte stream does not
/// have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPort {
    /// The address the listener binds: loopback, usually, as it is for
    /// the local application.
    pub listen: SocketAddr,
    /// The outbound service its connections go to: one of
    /// [`OutboundConfig::services`].
    pub service: ServiceName,
    /// The service port the listener stands for, which the service's
    /// `TLSRoute`s and `TCPRoute`s are matched against (their
    /// `parentRefs` port); `None` for the port the listener is bound to.
    pub port: Option<u16>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            listen: DEFAULT_OUTBOUND_LISTEN,
            services: Vec::new(),
            ingress_mode: false,
            ports: Vec::new(),
            http_queue: Queue::default(),
            tcp_queue: Queue::default(),
        }
    }
}

impl OutboundConfig {
    /// The service a request with this `Host` header or `:authority` goes
    /// to (see [`ServiceName::matches_authority`]).
    pub fn service_for(&self, authority: &str) -> Option<&ServiceConfig> {
        self.services
            .iter()
            .find(|service| service.name.matches_authority(authority))
    }
}

/// A service and the endpoints that serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The name requests are routed by.
    pub name: ServiceName,
    /// The service's instances, in file order: addresses, and DNS names
    /// whose every address is one (a Kubernetes headless Service's name
    /// answers with each ready pod's). Never empty when loaded from a
    /// file.
    pub endpoints: Vec<EndpointAddr>,
    /// How often the names among `endpoints` are looked up again.
    /// Addresses are never looked up. Default 5 s
    /// ([`DEFAULT_INTERVAL`](mesh_core::proxy::resolve::DEFAULT_INTERVAL)).
    pub resolve_interval: Duration,
    /// How the sidecar reaches them: mutual TLS, where the server must
    /// prove the identity given (failing closed, never falling back to
    /// plaintext), or plaintext for services outside the mesh.
    pub tls: OutboundTls,
    /// How requests that no `HTTPRoute` rule or `ServiceProfile` route of
    /// the service matches are retried: not at all (`None`, the default),
    /// or by this policy.
    pub retry: Option<RetryPolicy>,
    /// The timeouts of those requests. Default: none.
    pub timeouts: Timeouts,
    /// The retry budget every route of the service shares. Default: the
    /// `ServiceProfile`'s `retryBudget`, else [`BudgetConfig::default`].
    pub budget: Option<BudgetConfig>,
    /// When endpoints whose responses keep failing are taken out of the
    /// balancer, and for how long. Default: never, as in Linkerd.
    pub failure_accrual: Option<FailureAccrual>,
    /// Whether HTTP/1.1 requests travel to the service's sidecars as
    /// HTTP/2 streams on one connection, turned back into HTTP/1.1 by the
    /// sidecar in front of the application (see
    /// [`mesh_core::proxy::orig_proto`]). Default: on for a service
    /// reached over mutual TLS, whose servers are meshed, as in Linkerd;
    /// off for plaintext ones.
    pub http2_upgrade: bool,
}

/// A service's name: a lowercase DNS name such as `emoji` or
/// `emoji.default.svc.cluster.local`.
///
/// It is 1 to 253 characters of dot-separated labels. Each label is 1 to 63
/// lowercase letters, digits or `-`, and neither starts nor ends with `-`
/// (RFC 1123, as Kubernetes names are).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request with this `Host` header or `:authority` is for this
    /// service: the host part equals the name, ignoring ASCII case,
    /// userinfo, any `:port` and one trailing dot. The host is read as
    /// the outbound router reads it ([`authority_host`]), so that a
    /// `CONNECT` and a request with one authority find one service.
    ///
    /// ```
    /// use mesh_examples::sidecar::config::ServiceName;
    ///
    /// let name: ServiceName = "emoji".parse().unwrap();
    /// assert!(name.matches_authority("Emoji:8080"));
    /// assert!(name.matches_authority("user@emoji:8080"));
    /// assert!(!name.matches_authority("emoji.default"));
    /// ```
    pub fn matches_authority(&self, authority: &str) -> bool {
        authority_host(authority).eq_ignore_ascii_case(&self.0)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = InvalidServiceName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        validate(text)?;
        Ok(ServiceName(text.to_owned()))
    }
}

impl TryFrom<String> for ServiceName {
    type Error = InvalidServiceName;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        validate(&text)?;
        Ok(ServiceName(text))
    }
}

impl TryFrom<&str> for ServiceName {
    type Error = InvalidServiceName;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

fn validate(text: &str) -> Result<(), InvalidServiceName> {
    let fail = |reason| Err(InvalidServiceName { reason });
    if text.is_empty() {
        return fail(NameReason::Empty);
    }
    if text.len() > 253 {
        return fail(NameReason::TooLong);
    }
    for label in text.split('.') {
        if label.is_empty() {
            return fail(NameReason::EmptyLabel);
        }
        if label.len() > 63 {
            return fail(NameReason::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail(NameReason::Hyphen);
        }
        for byte in label.bytes() {
            if byte.is_ascii_uppercase() {
                return fail(NameReason::Uppercase);
            }
            if !(byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
                return fail(NameReason::Character);
            }
        }
    }
    Ok(())
}

/// A service name that is not a lowercase DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidServiceName {
    reason: NameReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameReason {
    Empty,
    TooLong,
    EmptyLabel,
    LabelTooLong,
    Hyphen,
    Uppercase,
    Character,
}

impl fmt::Display for InvalidServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.reason {
            NameReason::Empty => "a service name cannot be empty",
            NameReason::TooLong => "a service name has at most 253 characters",
            NameReason::EmptyLabel => "a service name cannot start or end with '.' or hold '..'",
            NameReason::LabelTooLong => {
                "each dot-separated part of a service name has at most 63 characters"
            }
            NameReason::Hyphen => "a part of a service name cannot start or end with '-'",
            NameReason::Uppercase => "service names are lowercase",
            NameReason::Character => {
                "a service name holds only lowercase letters, digits, '-' and '.'"
            }
        })
    }
}

impl StdError for InvalidServiceName {}
