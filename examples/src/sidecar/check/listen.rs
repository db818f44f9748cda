//! Where each listen address came from: the file, an environment
//! variable, or a default.
//!
//! Three addresses can be set by the environment as well as the file
//! ([`INBOUND_LISTEN_ENV`], [`OUTBOUND_LISTEN_ENV`], [`ADMIN_LISTEN_ENV`]),
//! which `sidecar inject` sets on a pod while the file is a ConfigMap that
//! several pods share. An operator who finds the sidecar on another port
//! than the file says needs to see why without turning on the sidecar's
//! logs, so `check` says it under the config check, a line per listener.

use std::ffi::OsString;
use std::net::SocketAddr;

use serde_yaml_ng::Value;

use crate::sidecar::config::{
    ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, OUTBOUND_LISTEN_ENV, SidecarConfig,
};

/// A line per listener of `config`, loaded from the file `origin` whose
/// text is `text` with the environment `env`: `inbound.listen
/// 0.0.0.0:4143 (from MESH_INBOUND_LISTEN_ADDR)`.
///
/// The variables are read as the configuration reads them (set and not
/// empty); the configuration loaded, so each one set is the address in
/// force. The file is read for which fields it writes, with its merge
/// keys applied as the configuration applies them. `None` for a text that
/// cannot be read that way (which a configuration that loaded never is).
pub(super) fn sources(
    config: &SidecarConfig,
    origin: &str,
    text: &str,
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut file: Value = serde_yaml_ng::from_str(text).ok()?;
    file.apply_merge().ok()?;
    // A field written `~` is one left out, as the configuration reads it.
    let field = |section: &str, name: &str| {
        file.get(section)
            .and_then(|s| s.get(name))
            .filter(|value| !value.is_null())
    };
    let set = |variable: &str| env(variable).is_some_and(|value| !value.is_empty());
    // Where a field the environment may set came from, and what the file
    // writes there when the environment overrides another address.
    let source = |section: &str, variable: &str, addr: SocketAddr| {
        let written = field(section, "listen");
        if set(variable) {
            match written.and_then(address) {
                Some(written) if written != addr => {
                    format!("from {variable}, over {written} in {origin}")
                }
                _ => format!("from {variable}"),
            }
        } else if written.is_some() {
            format!("from {origin}")
        } else {
            "default".to_owned()
        }
    };
    let mut lines = Vec::new();
    // The section's own listener is the first inbound one, when the file
    // gives it an application to forward to (the environment's address
    // needs one too).
    let own_inbound = field("inbound", "app").is_some();
    let mut inbound = config.inbound.ports().iter();
    if own_inbound && let Some(port) = inbound.next() {
        lines.push(format!(
            "inbound.listen {} ({})",
            port.listen,
            source("inbound", INBOUND_LISTEN_ENV, port.listen)
        ));
    }
    for (i, port) in inbound.enumerate() {
        lines.push(format!(
            "inbound.ports[{i}].listen {} (from {origin})",
            port.listen
        ));
    }
    lines.push(format!(
        "outbound.listen {} ({})",
        config.outbound.listen,
        source("outbound", OUTBOUND_LISTEN_ENV, config.outbound.listen)
    ));
    for (i, port) in config.outbound.ports.iter().enumerate() {
        lines.push(format!(
            "outbound.ports[{i}].listen {} (from {origin})",
            port.listen
        ));
    }
    lines.push(format!(
        "admin.listen {} ({})",
        config.admin.listen,
        source("admin", ADMIN_LISTEN_ENV, config.admin.listen)
    ));
    Some(lines)
}

/// A listen address as the file writes it.
fn address(value: &Value) -> Option<SocketAddr> {
    value.as_str()?.parse().ok()
}
