//! Where each listen address came from: the file, an environment
//! variable, or a default.
//!
//! Three addresses can be set by the environment as well as the file
//! ([`INBOUND_LISTEN_ENV`], [`OUTBOUND_LISTEN_ENV`], [`ADMIN_LISTEN_ENV`]),
//! which `sidecar inject` sets on a pod while the file is a ConfigMap that
//! several pods share. An operator who finds the sidecar on another port
//! than the file says needs to see why without turning on the sidecar's
//! logs, so `check` says it under the config check, a line per listener.
//! The configuration reader knows where each address came from
//! ([`SidecarConfig::load_with_sources`]); this only words it.
//!
//! [`INBOUND_LISTEN_ENV`]: crate::sidecar::config::INBOUND_LISTEN_ENV
//! [`OUTBOUND_LISTEN_ENV`]: crate::sidecar::config::OUTBOUND_LISTEN_ENV
//! [`ADMIN_LISTEN_ENV`]: crate::sidecar::config::ADMIN_LISTEN_ENV
//! [`SidecarConfig::load_with_sources`]: crate::sidecar::config::SidecarConfig::load_with_sources

use crate::sidecar::config::{ListenAddress, ListenSource};

/// A line per listen address, of a configuration loaded from the file
/// `origin`: `inbound.listen 0.0.0.0:4143 (from MESH_INBOUND_LISTEN_ADDR)`.
/// A variable that replaced another address of the file names it: `(from
/// MESH_INBOUND_LISTEN_ADDR, over 0.0.0.0:4143 in sidecar.yaml)`.
pub(super) fn lines(addresses: &[ListenAddress], origin: &str) -> Vec<String> {
    addresses
        .iter()
        .map(|address| {
            let source = match address.source {
                ListenSource::File => format!("from {origin}"),
                ListenSource::Env {
                    variable,
                    over: Some(written),
                } if written != address.addr => {
                    format!("from {variable}, over {written} in {origin}")
                }
                ListenSource::Env { variable, .. } => format!("from {variable}"),
                ListenSource::Default => "default".to_owned(),
                ListenSource::Configured => "configured".to_owned(),
            };
            format!("{} {} ({source})", address.field, address.addr)
        })
        .collect()
}
