//! Linkerd annotations the injected sidecar cannot follow, said on
//! standard error.
//!
//! A workload moved from Linkerd carries Linkerd's proxy annotations
//! (`config.linkerd.io/*`, and the newer ones under `config.alpha.` and
//! `config.beta.linkerd.io`), on its pod template, on itself or on its
//! Namespace. Inject follows those that map onto the sidecar's container
//! (see [`resources`](super::resources) and [`settings`](super::settings)).
//! The others it cannot carry into the sidecar: the sidecar's
//! configuration is the `sidecar.yaml` of a ConfigMap that inject does not
//! write, and the sidecar has no setting for some of them at all. Dropped
//! silently, a port Linkerd served opaque would be left to protocol
//! detection, and a server-speaks-first protocol on it would stall. So
//! each injected sidecar that such an annotation would have reached gets a
//! [`Warning`] naming it, and where the same thing is said instead when
//! there is such a place; the output is written all the same. The nearest
//! annotation is named, as the nearest decides in Linkerd: the pod
//! template's, else the workload's, else the Namespace's.
//!
//! An annotation inject follows is warned about too when it is on the
//! workload's own metadata, which its pods do not carry (neither Linkerd
//! nor inject reads it there), or when its value asks for what the
//! sidecar cannot do (`proxy-log-format: json`).

use std::fmt;

use serde_yaml_ng::Mapping;

use super::{resources, settings, yaml::FieldPath};

/// A Linkerd annotation the sidecar does not follow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unread {
    /// `config.linkerd.io/opaque-ports`: ports proxied without protocol
    /// detection.
    OpaquePorts,
    /// `config.linkerd.io/skip-inbound-ports`: ports Linkerd's init
    /// container leaves out of the redirect to its proxy.
    SkipInboundPorts,
    /// `config.linkerd.io/skip-outbound-ports`: destination ports the
    /// redirect of outbound connections leaves alone.
    SkipOutboundPorts,
    /// `config.linkerd.io/proxy-log-format: json`: the sidecar writes its
    /// log as plain lines only.
    JsonLogFormat,
    /// An annotation inject follows on a pod template or a Namespace, on
    /// the workload's own metadata, which its pods do not carry.
    OnWorkload(String),
    /// Another of Linkerd's proxy annotations, which the sidecar has no
    /// setting for, or which its `sidecar.yaml` says instead.
    Other(String),
}

impl Unread {
    /// The three that get a warning wherever they are, in the order
    /// warnings name them, before any other.
    const PORTS: [Self; 3] = [
        Self::OpaquePorts,
        Self::SkipInboundPorts,
        Self::SkipOutboundPorts,
    ];

    /// The annotation's key.
    pub fn annotation(&self) -> &str {
        match self {
            Self::OpaquePorts => "config.linkerd.io/opaque-ports",
            Self::SkipInboundPorts => "config.linkerd.io/skip-inbound-ports",
            Self::SkipOutboundPorts => "config.linkerd.io/skip-outbound-ports",
            Self::JsonLogFormat => settings::LOG_FORMAT_ANNOTATION,
            Self::OnWorkload(key) | Self::Other(key) => key,
        }
    }

    /// Where warnings put it: the three port annotations first, in their
    /// order, then the others as they come.
    fn rank(&self) -> usize {
        Self::PORTS
            .iter()
            .position(|port| port == self)
            .unwrap_or(Self::PORTS.len())
    }
}

/// Every Linkerd annotation inject follows, on a pod template or a
/// Namespace.
const FOLLOWED: &[&str] = &[
    resources::CPU_REQUEST_ANNOTATION,
    resources::CPU_LIMIT_ANNOTATION,
    resources::MEMORY_REQUEST_ANNOTATION,
    resources::MEMORY_LIMIT_ANNOTATION,
    resources::EPHEMERAL_STORAGE_REQUEST_ANNOTATION,
    resources::EPHEMERAL_STORAGE_LIMIT_ANNOTATION,
    settings::LOG_LEVEL_ANNOTATION,
    settings::LOG_FORMAT_ANNOTATION,
    settings::WAIT_BEFORE_EXIT_ANNOTATION,
    settings::NATIVE_SIDECAR_ANNOTATIONS[0],
    settings::NATIVE_SIDECAR_ANNOTATIONS[1],
    settings::NATIVE_SIDECAR_ANNOTATIONS[2],
    settings::AWAIT_ANNOTATION,
    settings::UID_ANNOTATION,
    settings::GID_ANNOTATION,
    settings::PULL_POLICY_ANNOTATION,
    settings::PORT_ANNOTATIONS[0].0,
    settings::PORT_ANNOTATIONS[1].0,
    settings::PORT_ANNOTATIONS[2].0,
];

/// The prefixes of Linkerd's proxy annotations.
const LINKERD_PREFIXES: [&str; 3] = [
    "config.linkerd.io/",
    "config.alpha.linkerd.io/",
    "config.beta.linkerd.io/",
];

/// A Linkerd annotation over an injected workload that its sidecar does
/// not follow, where it was found, and where to say the same thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The annotation.
    pub annotation: Unread,
    /// The object it is on: `Deployment emojivoto/web` (kind,
    /// `namespace/` when it has one, name), or `Namespace emojivoto`.
    pub object: String,
    /// Where in that object's document: `spec.template.metadata.annotations`.
    pub path: String,
    /// The ConfigMap whose `sidecar.yaml` configures the workload's
    /// sidecar, where the same thing is said instead.
    pub config_map: String,
    /// The port of the sidecar's outbound listener on `127.0.0.1`, where
    /// the application reaches the mesh: 4140, or the one
    /// `config.linkerd.io/outbound-port` moves it to.
    pub outbound_port: u16,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            annotation,
            object,
            path,
            config_map,
            outbound_port,
        } = self;
        write!(
            f,
            "warning: {} on {object} (at {path}) ",
            annotation.annotation()
        )?;
        match annotation {
            Unread::OpaquePorts => write!(
                f,
                "is not read: say how each port is served in the sidecar.yaml of ConfigMap \
                 {config_map} (protocol: opaque in inbound, or in an entry of inbound.ports), \
                 or with proxyProtocol: opaque on the port's Server; 25, 587, 3306, 4444, \
                 5432, 6379, 9300 and 11211 are opaque by default"
            ),
            Unread::SkipInboundPorts => write!(
                f,
                "is not read: no traffic is redirected, so there is nothing to skip: the \
                 sidecar serves only the ports under inbound in the sidecar.yaml of ConfigMap \
                 {config_map}, and a connection to the application's own port goes straight \
                 to it"
            ),
            Unread::SkipOutboundPorts => write!(
                f,
                "is not read: no traffic is redirected, so there is nothing to skip: the \
                 application reaches the mesh through 127.0.0.1:{outbound_port} (or \
                 outbound.ports in the sidecar.yaml of ConfigMap {config_map}) and everything \
                 else directly"
            ),
            Unread::JsonLogFormat => write!(
                f,
                "is json, which the sidecar cannot follow: it writes its log as plain \
                 lines; its access log can be JSON (access_log: json under inbound in the \
                 sidecar.yaml of ConfigMap {config_map})"
            ),
            Unread::OnWorkload(_) => f.write_str(
                "is not read: a workload's pods do not carry its own annotations, and \
                 neither Linkerd nor inject reads this one there; put it on the pod template",
            ),
            Unread::Other(key) => {
                f.write_str("is not read: ")?;
                let name = key.rsplit('/').next().unwrap_or(key);
                match name {
                    "control-port" => f.write_str(
                        "the sidecar has no control port; what Linkerd's proxy serves \
                         there, the sidecar serves on its admin port",
                    ),
                    "proxy-image" | "proxy-version" => {
                        f.write_str("the sidecar's image is the one sidecar inject --image names")
                    }
                    "access-log" => write!(
                        f,
                        "write access_log (apache or json) under inbound in the sidecar.yaml \
                         of ConfigMap {config_map}"
                    ),
                    "skip-subnets" => write!(
                        f,
                        "no traffic is redirected, so there is nothing to skip: the \
                         application reaches the mesh through 127.0.0.1:{outbound_port} and \
                         everything else directly",
                    ),
                    _ => write!(
                        f,
                        "the sidecar has no setting it maps onto; what the sidecar can be \
                         told is in the sidecar.yaml of ConfigMap {config_map} (see \
                         examples/CONFIG.md)"
                    ),
                }
            }
        }
    }
}

/// The Linkerd annotations of one object's metadata, and what a warning
/// names it by.
#[derive(Clone, Debug)]
pub(super) struct Found {
    object: String,
    path: FieldPath,
    /// Each Linkerd annotation, in order, and what a warning about it
    /// says when it decides (`None`: it is followed here).
    keys: Vec<(String, Option<Unread>)>,
}

/// Where a metadata is, for what its annotations mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// A pod template (or pod) or a Namespace: where inject, as Linkerd,
    /// reads the annotations it follows.
    Pod,
    /// A workload's own metadata.
    Workload,
}

impl Found {
    /// The Linkerd annotations of `metadata`, at `path`, of `object`.
    pub(super) fn read(
        object: String,
        metadata: Option<&Mapping>,
        path: &FieldPath,
        scope: Scope,
    ) -> Self {
        let annotations = metadata
            .and_then(|metadata| metadata.get("annotations"))
            .and_then(|annotations| annotations.as_mapping());
        let keys = annotations
            .into_iter()
            .flatten()
            .filter_map(|(key, _)| key.as_str())
            .filter(|key| {
                LINKERD_PREFIXES
                    .iter()
                    .any(|prefix| key.starts_with(prefix))
            })
            .map(|key| (key.to_owned(), classify(key, scope)))
            .collect();
        Self {
            object,
            path: path.key("annotations"),
            keys,
        }
    }

    /// A warning about `annotation`, said on this object, of the
    /// sidecar configured by `config_map` with its outbound listener on
    /// `outbound_port`.
    pub(super) fn warning(
        &self,
        annotation: Unread,
        config_map: &str,
        outbound_port: u16,
    ) -> Warning {
        Warning {
            annotation,
            object: self.object.clone(),
            path: self.path.to_string(),
            config_map: config_map.to_owned(),
            outbound_port,
        }
    }
}

/// What a warning about the Linkerd annotation `key` in `scope` says,
/// or `None` when inject follows it there.
fn classify(key: &str, scope: Scope) -> Option<Unread> {
    if let Some(port) = Unread::PORTS.into_iter().find(|p| p.annotation() == key) {
        return Some(port);
    }
    match (FOLLOWED.contains(&key), scope) {
        (true, Scope::Pod) => None,
        (true, Scope::Workload) => Some(Unread::OnWorkload(key.to_owned())),
        (false, _) => Some(Unread::Other(key.to_owned())),
    }
}

/// A warning for each Linkerd annotation of `scopes` that the sidecar
/// does not follow, nearest first: the first scope that has an annotation
/// decides for it. The three port annotations come first, then the others
/// in the order of their scopes and of their annotations there.
/// `config_map` is the sidecar's, and `outbound_port` its outbound
/// listener's port.
pub(super) fn warnings(scopes: &[&Found], config_map: &str, outbound_port: u16) -> Vec<Warning> {
    let mut decided: Vec<&str> = Vec::new();
    let mut warnings = Vec::new();
    for found in scopes {
        for (key, unread) in &found.keys {
            if decided.contains(&key.as_str()) {
                continue;
            }
            decided.push(key);
            if let Some(unread) = unread {
                warnings.push(found.warning(unread.clone(), config_map, outbound_port));
            }
        }
    }
    warnings.sort_by_key(|warning| warning.annotation.rank());
    warnings
}

/// How a warning names a workload or Namespace: its kind, its namespace
/// when it has one, and its name.
pub(super) fn object_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}
