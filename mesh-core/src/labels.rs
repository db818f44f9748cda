//! Names that layers attach to a request so that other layers can report it.
//!
//! Metrics label a request with the server, route and authorization that
//! admitted it, and with the service it was sent to. Those names are decided
//! by other layers (authorization, outbound routing), which the metrics crate
//! must not depend on. So the deciding layer inserts one of these request
//! extensions, and any later layer reads it. Every name comes from
//! configuration, never from the request, so label sets stay bounded.

use std::sync::Arc;

/// The API group and kind of a policy resource, as Linkerd's metrics
/// label it (`srv_group`/`srv_kind`, `route_group`/`route_kind`,
/// `authz_group`/`authz_kind`).
///
/// A name alone does not say which resource decided: a Server and the
/// default server of a port no Server covers, or an `AuthorizationPolicy`
/// and a `ServerAuthorization`, may share one. Their group and kind tell
/// them apart. Both are fixed strings, known when a policy is compiled:
/// an [`Authorized`] refers to a kind the deciding layer defines once
/// (`&'static`), so that copying one, or checking that two requests name
/// the same, is a pointer's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKind {
    /// The API group: `policy.linkerd.io`, `gateway.networking.k8s.io`,
    /// or empty for what no resource defines.
    pub group: &'static str,
    /// The kind, spelled as the deciding layer's own metrics spell it.
    pub kind: &'static str,
}

impl ResourceKind {
    /// What no resource defines, as Linkerd labels it: an empty group and
    /// kind `default` (the default server, the routes of a Server without
    /// routes, a default policy or a Server's `accessPolicy`).
    pub const DEFAULT: Self = Self {
        group: "",
        kind: "default",
    };
}

/// Which policy admitted an inbound request. Inserted by authorization on
/// every request it allows.
///
/// Each name comes with the group and kind of its resource, so that
/// metrics count resources of one name and different kinds apart, as
/// Linkerd's `request_total` and `response_total` do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authorized {
    /// The name of the `Server` resource that covers the port; for a port
    /// no Server covers, the default server, named for the default policy
    /// (`all-unauthenticated`...) with kind `default`.
    pub server: Arc<str>,
    /// The `Server`'s group and kind, [`ResourceKind::DEFAULT`] for the
    /// default server.
    pub server_kind: &'static ResourceKind,
    /// The port the `Server` covers (a named port resolved), or, for the
    /// default server, the port the request came to (the one it was
    /// authorized as): every server's series carry it as `srv_port`, as
    /// linkerd2-proxy's do. `None` when the deciding layer knew no port.
    pub server_port: Option<u16>,
    /// The route that matched (`default` when the server has no routes).
    pub route: Arc<str>,
    /// The route's group and kind; `None` when the deciding layer does
    /// not know it, and metrics then leave `route_group` and `route_kind`
    /// out.
    pub route_kind: Option<&'static ResourceKind>,
    /// The authorization that allowed the request.
    pub authz: Arc<str>,
    /// The authorization's group and kind: an `AuthorizationPolicy` or a
    /// `ServerAuthorization`, or [`ResourceKind::DEFAULT`] for a default
    /// policy, an `accessPolicy` or the probe exception.
    pub authz_kind: &'static ResourceKind,
    /// Whether the request was allowed only because the policy is in audit
    /// mode: it would have been denied.
    pub audit: bool,
}

/// The logical service an outbound request is addressed to, as configured.
/// Inserted by outbound routing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DstService(pub Arc<str>);

impl DstService {
    /// The service's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
