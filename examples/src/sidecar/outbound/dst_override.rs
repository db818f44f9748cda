//! Ingress mode's destination override: the request header an ingress
//! controller sets to name the service a request is for, since its
//! authority is the public name the ingress was asked for
//! (`shop.example.com`), which no outbound service has.
//!
//! Two spellings are read: the mesh's own, [`MESH_DST_OVERRIDE`], and
//! Linkerd's, [`L5D_DST_OVERRIDE`], so that ingress configurations written
//! for Linkerd keep working. Each holds an authority, `host` or
//! `host:port`, read the way the router reads a request's authority:
//! without port or a trailing dot, in any case. The port is not part of a
//! service's name, so `emoji:8080` and `emoji` name the same one. As in a
//! request's `Host` or target, userinfo (`voting@emoji`) names no one
//! service: it hides the host the request goes to.
//!
//! The header is a way to steer requests, so it is only read where the
//! operator asked for it (`outbound.ingress_mode`), and it never leaves
//! the sidecar ([`strip`]): not upstream, where a meshed server or another
//! ingress behind it could read it, and in either mode.

use http::{HeaderMap, HeaderName};
use mesh_core::proxy::authority_host;

/// The mesh's destination-override header.
pub(crate) const MESH_DST_OVERRIDE: HeaderName = HeaderName::from_static("mesh-dst-override");

/// Linkerd's destination-override header, read as [`MESH_DST_OVERRIDE`].
pub(crate) const L5D_DST_OVERRIDE: HeaderName = HeaderName::from_static("l5d-dst-override");

/// What a request's override headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DstOverride<'a> {
    /// Neither header: the request goes by its authority.
    Absent,
    /// Every copy of both headers names this host (as written: its case
    /// is not changed here).
    Host(&'a str),
    /// The headers name no one host: a value that is not visible ASCII,
    /// an empty one, one with userinfo, or two that name different hosts.
    /// The request goes nowhere: routing it by authority instead would
    /// hide a mistake in the ingress's configuration, and picking one of
    /// two would let a client add the header its ingress does not set
    /// and choose the service itself.
    Conflict,
}

/// The override of a request with these `headers`.
pub(super) fn dst_override(headers: &HeaderMap) -> DstOverride<'_> {
    let mut found = DstOverride::Absent;
    let values = headers
        .get_all(MESH_DST_OVERRIDE)
        .iter()
        .chain(headers.get_all(L5D_DST_OVERRIDE).iter());
    for value in values {
        let host = match value.to_str() {
            Ok(text) if !text.contains('@') => authority_host(text.trim()),
            _ => return DstOverride::Conflict,
        };
        if host.is_empty() {
            return DstOverride::Conflict;
        }
        found = match found {
            DstOverride::Absent => DstOverride::Host(host),
            DstOverride::Host(first) if first.eq_ignore_ascii_case(host) => found,
            _ => return DstOverride::Conflict,
        };
    }
    found
}

/// Removes both override headers. Most requests carry neither, so one
/// pass over the names, which compares them without hashing, decides
/// whether there is anything to remove.
pub(super) fn strip(headers: &mut HeaderMap) {
    let is_override = |name: &HeaderName| *name == MESH_DST_OVERRIDE || *name == L5D_DST_OVERRIDE;
    if headers.keys().any(is_override) {
        headers.remove(MESH_DST_OVERRIDE);
        headers.remove(L5D_DST_OVERRIDE);
    }
}

#[cfg(test)]
mod tests;
