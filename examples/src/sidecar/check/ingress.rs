//! Ingress mode has somewhere to route: an ingress's sidecar with no
//! outbound services answers every request it routes with 404.

use super::Check;
use crate::sidecar::config::OutboundConfig;

/// What holds when the check passes.
const TITLE: &str = "ingress mode has outbound services to route to";

/// Nothing outside ingress mode. In it, a warning when no outbound
/// service is configured: the sidecar starts, but every destination
/// override and every authority names an unknown service. Not a failure,
/// as an empty list is a valid configuration that services are added to.
pub(super) fn check(outbound: &OutboundConfig) -> Vec<Check> {
    if !outbound.ingress_mode {
        return Vec::new();
    }
    let check = match outbound.services.len() {
        0 => Check::warn(
            TITLE,
            "outbound.ingress_mode is on and outbound.services is empty: every request \
             gets 404 (mesh-error: no route)",
        )
        .with_hint(
            "list the services the ingress names in mesh-dst-override (or l5d-dst-override)",
        ),
        1 => Check::pass(TITLE).with_detail("1 service"),
        count => Check::pass(TITLE).with_detail(format!("{count} services")),
    };
    vec![check]
}
