//! From the file as read to a [`SidecarConfig`]: defaults are applied, and
//! the checks that span several fields run here, with the locator finding
//! the line to report.

use std::net::SocketAddr;

use mesh_core::proxy::{Queue, resolve::DEFAULT_INTERVAL};

use super::SidecarConfig;
use super::error::{ConfigError, ConfigErrorKind, Location};
use super::file::{Document, Grace, InboundSection, OutboundSection, QueueCapacity, ServiceEntry};
use super::identity::{OutboundTls, TlsKind, resolve_identity};
use super::inbound::{DEFAULT_INBOUND_LISTEN, InboundConfig, InboundPort};
use super::listeners::{Listener, check_apps, check_collector, check_listeners};
use super::locate::locate_nearest;
use super::outbound::{OutboundConfig, ServiceConfig};
use super::outbound_ports::resolve_outbound_ports;
use super::policy::resolve_policy;
use super::retry::{resolve_accrual, resolve_budget, resolve_retry, resolve_timeouts};
use super::server::{AdminConfig, DEFAULT_ADMIN_LISTEN, resolve_dashboard, resolve_server};
use super::trace::resolve_tracing;

/// The text a configuration came from, to point at places in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
    /// The listen fields the environment set (`admin.listen`...): what
    /// the text writes there is not the value checked, so an error about
    /// one is not placed at the text's line.
    pub(super) moved: &'a [&'a str],
}

impl Source<'_> {
    /// Where the listener at `path` is written (see [`Source::locate`]),
    /// unless the environment moved it.
    pub(super) fn locate_listener(&self, path: &str) -> Option<Location> {
        if self.moved.contains(&path) {
            return None;
        }
        self.locate(path)
    }

    /// Where the value at `path` is written, or, for one a merge key
    /// (`<<`) brought in, where the mapping that merges it is.
    pub(super) fn locate(&self, path: &str) -> Option<Location> {
        locate_nearest(self.text, path)
    }

    /// An error about `path`, at the place `locate_at` is written.
    pub(super) fn error(
        &self,
        kind: ConfigErrorKind,
        path: &str,
        locate_at: &str,
        message: String,
    ) -> ConfigError {
        ConfigError::new(kind, self.origin, path, message).at(self.locate(locate_at))
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
        if let Some(tracing) = &tracing {
            check_collector(tracing.collector.uri(), &listeners, source)?;
        }
        let server = self
            .server
            .as_ref()
            .map(|section| resolve_server(section, source))
            .transpose()?
            .unwrap_or_default();
        Ok(SidecarConfig {
            identity,
            inbound,
            outbound,
            admin,
            server,
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
    // Settings of every inbound listener, which mean nothing without one.
    let for_listeners = match (section.tls, section.access_log) {
        (Some(_), _) => Some("tls"),
        (None, Some(_)) => Some("access_log"),
        (None, None) => None,
    };
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
    if ports.is_empty()
        && let Some(given) = for_listeners
    {
        return Err(source.error(
            ConfigErrorKind::MissingField,
            "inbound.app",
            "inbound",
            format!(
                "missing field `app`: inbound.{given} applies to the inbound listeners, and \
                 there are none: add app (or ports) for it to apply to"
            ),
        ));
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
    config.http_queue = queue(
        config.http_queue,
        section.http_queue_capacity,
        section.http_failfast_timeout,
    );
    config.tcp_queue = queue(
        config.tcp_queue,
        section.tcp_queue_capacity,
        section.tcp_failfast_timeout,
    );
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

/// `default` with the capacity and fail-fast timeout the file writes.
fn queue(default: Queue, capacity: Option<QueueCapacity>, timeout: Option<Grace>) -> Queue {
    Queue::new(
        capacity.map_or(default.capacity(), |capacity| capacity.0),
        timeout.map_or(default.failfast_timeout(), |timeout| timeout.0),
    )
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
