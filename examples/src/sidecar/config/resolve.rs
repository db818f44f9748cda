//! From the file as read to a [`SidecarConfig`]: defaults are applied, and
//! the checks that span several fields run here, with the locator finding
//! the line to report.

use std::net::SocketAddr;

use mesh_core::proxy::resolve::DEFAULT_INTERVAL;

use super::SidecarConfig;
use super::error::{ConfigError, ConfigErrorKind, Location};
use super::file::{Document, InboundSection, OutboundSection, ServerSection, ServiceEntry};
use super::identity::{OutboundTls, TlsKind, resolve_identity};
use super::inbound::{DEFAULT_INBOUND_LISTEN, InboundConfig, InboundPort};
use super::locate::locate;
use super::outbound::{OutboundConfig, ServiceConfig};
use super::outbound_ports::resolve_outbound_ports;
use super::policy::resolve_policy;
use super::retry::{resolve_accrual, resolve_budget, resolve_retry, resolve_timeouts};
use super::server::{AdminConfig, DEFAULT_ADMIN_LISTEN, ServerTuning, resolve_dashboard};
use super::trace::resolve_tracing;

/// The text a configuration came from, to point at places in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
}

impl Source<'_> {
    /// An error about `path`, at the place `locate_at` is written.
    pub(super) fn error(
        &self,
        kind: ConfigErrorKind,
        path: &str,
        locate_at: &str,
        message: String,
    ) -> ConfigError {
        ConfigError::new(kind, self.origin, path, message).at(locate(self.text, locate_at))
    }
}

impl Document {
    pub(super) fn resolve(self, source: Source<'_>) -> Result<SidecarConfig, ConfigError> {
        let mut listeners = Vec::new();
        let mut apps = Vec::new();
        let identity = self
            .identity
            .map(|section| resolve_identity(section, source))
            .transpose()?;
        let has_identity = identity.is_some();
        let policy = resolve_policy(self.policy.unwrap_or_default(), identity.as_ref(), source)?;
        let tracing = self
            .tracing
            .map(|section| resolve_tracing(section, &policy, source))
            .transpose()?;
        let inbound = resolve_inbound(
            self.inbound.unwrap_or_default(),
            has_identity,
            source,
            &mut listeners,
            &mut apps,
        )?;
        let outbound = resolve_outbound(
            self.outbound.unwrap_or_default(),
            has_identity,
            source,
            &mut listeners,
        )?;
        let admin_section = self.admin.unwrap_or_default();
        let admin_listen = admin_section.listen;
        let listen = admin_listen.map_or(DEFAULT_ADMIN_LISTEN, |addr| addr.0);
        let admin = AdminConfig {
            listen,
            dashboard: admin_section
                .dashboard
                .map(|section| resolve_dashboard(section, listen, source))
                .transpose()?,
        };
        listeners.push(Listener::new(
            "admin.listen",
            admin.listen,
            admin_listen.is_some(),
        ));
        check_listeners(&listeners, source)?;
        check_apps(&apps, &listeners, source)?;
        Ok(SidecarConfig {
            identity,
            inbound,
            outbound,
            admin,
            server: self
                .server
                .as_ref()
                .map_or_else(ServerTuning::default, resolve_server),
            policy,
            tracing,
        })
    }
}

fn resolve_inbound(
    section: InboundSection,
    has_identity: bool,
    source: Source<'_>,
    listeners: &mut Vec<Listener>,
    apps: &mut Vec<(String, SocketAddr)>,
) -> Result<InboundConfig, ConfigError> {
    let tls = section.tls.map(|mode| mode.0).unwrap_or_default();
    if !has_identity && section.tls.is_some() && tls != mesh_tls::InboundMode::Disabled {
        return Err(source.error(
            ConfigErrorKind::Conflict,
            "inbound.tls",
            "inbound.tls",
            format!(
                "inbound.tls {} needs an identity section: the sidecar has no certificate to serve",
                mode_name(tls)
            ),
        ));
    }
    let mut ports = Vec::new();
    match section.app {
        Some(app) => {
            let listen = section.listen.map_or(DEFAULT_INBOUND_LISTEN, |addr| addr.0);
            let mut port = InboundPort::new(listen, app.0);
            if let Some(protocol) = section.protocol {
                port = port.with_protocol(protocol);
            }
            listeners.push(Listener::new(
                "inbound.listen",
                listen,
                section.listen.is_some(),
            ));
            apps.push(("inbound.app".to_owned(), app.0));
            ports.push(port);
        }
        None => {
            let given = match (section.listen, section.protocol) {
                (Some(_), _) => Some("listen"),
                (None, Some(_)) => Some("protocol"),
                (None, None) => None,
            };
            if let Some(given) = given {
                return Err(source.error(
                    ConfigErrorKind::MissingField,
                    "inbound.app",
                    "inbound",
                    format!(
                        "missing field `app`: inbound.{given} needs the address of the \
                         application to forward to"
                    ),
                ));
            }
        }
    }
    for (index, entry) in section.ports.unwrap_or_default().into_iter().enumerate() {
        let mut port = InboundPort::new(entry.listen.0, entry.app.0);
        if let Some(protocol) = entry.protocol {
            port = port.with_protocol(protocol);
        }
        listeners.push(Listener::new(
            format!("inbound.ports[{index}].listen"),
            port.listen,
            true,
        ));
        apps.push((format!("inbound.ports[{index}].app"), port.app));
        ports.push(port);
    }
    Ok(InboundConfig {
        ports,
        tls,
        access_log: section.access_log.map(|format| format.0),
    })
}

fn mode_name(mode: mesh_tls::InboundMode) -> &'static str {
    match mode {
        mesh_tls::InboundMode::Permissive => "permissive",
        mesh_tls::InboundMode::Strict => "strict",
        mesh_tls::InboundMode::Disabled => "disabled",
    }
}

fn resolve_outbound(
    section: OutboundSection,
    has_identity: bool,
    source: Source<'_>,
    listeners: &mut Vec<Listener>,
) -> Result<OutboundConfig, ConfigError> {
    let mut config = OutboundConfig::default();
    if let Some(listen) = section.listen {
        config.listen = listen.0;
    }
    config.ingress_mode = section.ingress_mode.unwrap_or(false);
    listeners.push(Listener::new(
        "outbound.listen",
        config.listen,
        section.listen.is_some(),
    ));
    for (index, entry) in section.services.unwrap_or_default().into_iter().enumerate() {
        if let Some(first) = config
            .services
            .iter()
            .position(|service: &ServiceConfig| service.name == entry.name)
        {
            let path = format!("outbound.services[{index}].name");
            return Err(source.error(
                ConfigErrorKind::DuplicateService,
                &path,
                &path,
                format!(
                    "service {:?} is already defined at outbound.services[{first}]",
                    entry.name.as_str()
                ),
            ));
        }
        let tls = service_tls(&entry, index, has_identity, source)?;
        let http2_upgrade = entry
            .http2_upgrade
            .unwrap_or(matches!(tls, OutboundTls::Mtls(_)));
        let budget = entry
            .budget
            .as_ref()
            .map(|budget| {
                resolve_budget(
                    budget,
                    &format!("outbound.services[{index}].budget"),
                    source,
                )
            })
            .transpose()?;
        let failure_accrual = entry
            .failure_accrual
            .as_ref()
            .map(|section| {
                resolve_accrual(
                    section,
                    &format!("outbound.services[{index}].failure_accrual"),
                    source,
                )
            })
            .transpose()?;
        config.services.push(ServiceConfig {
            name: entry.name,
            endpoints: entry.endpoints.0,
            resolve_interval: entry
                .resolve_interval
                .map_or(DEFAULT_INTERVAL, |interval| interval.0),
            tls,
            retry: entry.retry.map(resolve_retry),
            timeouts: entry
                .timeouts
                .as_ref()
                .map(resolve_timeouts)
                .unwrap_or_default(),
            budget,
            failure_accrual,
            http2_upgrade,
        });
    }
    config.ports = resolve_outbound_ports(
        section.ports.unwrap_or_default(),
        &config.services,
        source,
        listeners,
    )?;
    Ok(config)
}

/// A service's TLS: mutual TLS when it names the identity to expect,
/// plaintext otherwise; `tls` written in the file must agree.
fn service_tls(
    entry: &ServiceEntry,
    index: usize,
    has_identity: bool,
    source: Source<'_>,
) -> Result<OutboundTls, ConfigError> {
    let at = |field: &str| format!("outbound.services[{index}].{field}");
    let conflict = |field: &str, message: String| {
        let path = at(field);
        source.error(ConfigErrorKind::Conflict, &path, &path, message)
    };
    let name = entry.name.as_str();
    match (&entry.identity, entry.tls) {
        (None, None | Some(TlsKind::Plaintext)) => Ok(OutboundTls::Plaintext),
        (None, Some(TlsKind::Mtls)) => Err(conflict(
            "tls",
            format!(
                "service {name:?} asks for mtls without the identity its servers must prove: \
                 add identity: spiffe://..."
            ),
        )),
        (Some(_), Some(TlsKind::Plaintext)) => Err(conflict(
            "tls",
            format!(
                "service {name:?} names a server identity but asks for plaintext: \
                 remove one of them"
            ),
        )),
        (Some(identity), tls) => {
            if !has_identity {
                let field = if tls.is_some() { "tls" } else { "identity" };
                return Err(conflict(
                    field,
                    format!(
                        "service {name:?} is reached over mtls, which needs an identity \
                         section: the sidecar has no certificate to present"
                    ),
                ));
            }
            Ok(OutboundTls::Mtls(identity.0.clone()))
        }
    }
}

fn resolve_server(section: &ServerSection) -> ServerTuning {
    let mut tuning = ServerTuning::default();
    if let Some(timeout) = section.header_read_timeout {
        tuning.header_read_timeout = timeout.0;
    }
    if let Some(timeout) = section.detect_timeout {
        tuning.detect_timeout = timeout.0;
    }
    if let Some(max) = section.max_connections {
        tuning.max_connections = max;
    }
    if let Some(grace) = section.shutdown_grace {
        tuning.shutdown_grace = grace.0;
    }
    if let Some(threads) = section.threads {
        tuning.threads = threads;
    }
    if let Some(interval) = section.http2_keep_alive_interval {
        tuning.http2_keep_alive_interval = Some(interval.0).filter(|i| !i.is_zero());
    }
    if let Some(timeout) = section.http2_keep_alive_timeout {
        tuning.http2_keep_alive_timeout = timeout.0;
    }
    if let Some(timeout) = section.write_stall_timeout {
        tuning.write_stall_timeout = timeout.0;
    }
    tuning
}

/// A socket the sidecar will bind, and the field that asked for it.
#[derive(Debug)]
pub(super) struct Listener {
    path: String,
    addr: SocketAddr,
    /// Written in the file, as opposed to a default.
    explicit: bool,
}

impl Listener {
    pub(super) fn new(path: impl Into<String>, addr: SocketAddr, explicit: bool) -> Self {
        Listener {
            path: path.into(),
            addr,
            explicit,
        }
    }
}

/// Whether two listeners would fight over a port. Port 0 asks the system
/// for a free port, so it never conflicts. An unspecified address
/// (`0.0.0.0`, `[::]`) takes the port on every interface.
///
/// The sidecar binds with `SO_REUSEPORT` (one listener per core), so the
/// system would not refuse the second bind: connections would be shared
/// between the two listeners at random. Hence this check.
fn conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Rejects two listeners on one port. The one reported is the later in the
/// file (a default counts as first), and the message names the other.
fn check_listeners(listeners: &[Listener], source: Source<'_>) -> Result<(), ConfigError> {
    let clash = listeners
        .iter()
        .enumerate()
        .any(|(i, a)| listeners[..i].iter().any(|b| conflict(a.addr, b.addr)));
    if !clash {
        return Ok(());
    }
    let mut placed: Vec<(&Listener, Option<Location>)> = listeners
        .iter()
        .map(|listener| {
            let location = listener
                .explicit
                .then(|| locate(source.text, &listener.path))
                .flatten();
            (listener, location)
        })
        .collect();
    placed.sort_by_key(|(listener, location)| {
        (listener.explicit, location.map(|location| location.index))
    });
    for (i, (second, location)) in placed.iter().enumerate() {
        let Some((first, first_location)) = placed[..i]
            .iter()
            .find(|(first, _)| conflict(first.addr, second.addr))
        else {
            continue;
        };
        let whence = match (first.explicit, first_location) {
            (false, _) => ", the default".to_owned(),
            (true, Some(location)) => format!(", line {}", location.line),
            (true, None) => String::new(),
        };
        let message = format!(
            "port {} is already taken by {} ({}{whence})",
            second.addr.port(),
            first.path,
            first.addr,
        );
        return Err(ConfigError::new(
            ConfigErrorKind::DuplicateListener,
            source.origin,
            &second.path,
            message,
        )
        .at(*location));
    }
    Ok(())
}

/// Whether a connection to `app` (an application's or a dashboard peer's
/// address) would arrive at the sidecar's own `listener`: the same port,
/// and the same address, or a listener on every interface reached through
/// loopback (`0.0.0.0` as a destination is loopback too). An IPv4
/// wildcard takes IPv4 only; `[::]` takes both.
pub(super) fn reaches(app: SocketAddr, listener: SocketAddr) -> bool {
    let local = app.ip().is_loopback() || app.ip().is_unspecified();
    let family_ok = listener.is_ipv6() || app.is_ipv4();
    listener.port() != 0
        && app.port() == listener.port()
        && (app.ip() == listener.ip() || (listener.ip().is_unspecified() && local && family_ok))
}

/// Rejects an application address on port 0, which nothing can connect
/// to, and one that is a listener of this sidecar: each connection would
/// be forwarded back to the sidecar, again and again, until every
/// connection slot is taken.
fn check_apps(
    apps: &[(String, SocketAddr)],
    listeners: &[Listener],
    source: Source<'_>,
) -> Result<(), ConfigError> {
    for (path, app) in apps {
        if app.port() == 0 {
            return Err(source.error(
                ConfigErrorKind::InvalidValue,
                path,
                path,
                format!("invalid application address {app} (port 0 cannot be connected to)"),
            ));
        }
        let Some(listener) = listeners.iter().find(|l| reaches(*app, l.addr)) else {
            continue;
        };
        let default = if listener.explicit {
            ""
        } else {
            ", the default"
        };
        return Err(source.error(
            ConfigErrorKind::Conflict,
            path,
            path,
            format!(
                "{app} is the sidecar's own {} ({}{default}): every connection would be \
                 forwarded back to the sidecar",
                listener.path, listener.addr
            ),
        ));
    }
    Ok(())
}
