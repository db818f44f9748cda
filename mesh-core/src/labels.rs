//! Names that layers attach to a request so that other layers can report it.
//!
//! Metrics label a request with the server, route and authorization that
//! admitted it, and with the service it was sent to. Those names are decided
//! by other layers (authorization, outbound routing), which the metrics crate
//! must not depend on. So the deciding layer inserts one of these request
//! extensions, and any later layer reads it. Every name comes from
//! configuration, never from the request, so label sets stay bounded.

use std::sync::Arc;

/// Which policy admitted an inbound request. Inserted by authorization on
/// every request it allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authorized {
    /// The `Server` resource that covers the port (`default:<policy>` when
    /// none does).
    pub server: Arc<str>,
    /// The route that matched (`default` when the server has no routes).
    pub route: Arc<str>,
    /// The authorization that allowed the request.
    pub authz: Arc<str>,
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
