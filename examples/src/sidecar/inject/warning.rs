//! Linkerd annotations the injected sidecar cannot follow, said on
//! standard error.
//!
//! A workload moved from Linkerd may carry `config.linkerd.io/opaque-ports`,
//! `skip-inbound-ports` or `skip-outbound-ports`, on its pod template, on
//! itself or on its Namespace. Inject cannot carry them into the sidecar:
//! the sidecar's configuration is the `sidecar.yaml` of a ConfigMap that
//! inject does not write, and the only setting the container's
//! environment reaches is ingress mode. Dropped silently, a port Linkerd
//! served opaque would be left to protocol detection, and a
//! server-speaks-first protocol on it would stall. So each injected
//! sidecar that such an annotation would have reached gets a [`Warning`]
//! saying where the same thing is said instead; the output is written all
//! the same. The nearest annotation is named, as the nearest decides in
//! Linkerd: the pod template's, else the workload's, else the Namespace's.

use std::fmt;

use serde_yaml_ng::Mapping;

use super::yaml::FieldPath;

/// A Linkerd annotation the sidecar does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl Unread {
    /// Every one, in the order warnings name them.
    const ALL: [Self; 3] = [
        Self::OpaquePorts,
        Self::SkipInboundPorts,
        Self::SkipOutboundPorts,
    ];

    /// The annotation's key.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::OpaquePorts => "config.linkerd.io/opaque-ports",
            Self::SkipInboundPorts => "config.linkerd.io/skip-inbound-ports",
            Self::SkipOutboundPorts => "config.linkerd.io/skip-outbound-ports",
        }
    }
}

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
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            annotation,
            object,
            path,
            config_map,
        } = self;
        write!(
            f,
            "warning: {} on {object} (at {path}) is not read: ",
            annotation.annotation()
        )?;
        match annotation {
            Unread::OpaquePorts => write!(
                f,
                "say how each port is served in the sidecar.yaml of ConfigMap {config_map} \
                 (protocol: opaque in inbound, or in an entry of inbound.ports), or with \
                 proxyProtocol: opaque on the port's Server; 25, 587, 3306, 4444, 5432, \
                 6379, 9300 and 11211 are opaque by default"
            ),
            Unread::SkipInboundPorts => write!(
                f,
                "no traffic is redirected, so there is nothing to skip: the sidecar serves \
                 only the ports under inbound in the sidecar.yaml of ConfigMap {config_map}, \
                 and a connection to the application's own port goes straight to it"
            ),
            Unread::SkipOutboundPorts => write!(
                f,
                "no traffic is redirected, so there is nothing to skip: the application \
                 reaches the mesh through 127.0.0.1:4140 (or outbound.ports in the \
                 sidecar.yaml of ConfigMap {config_map}) and everything else directly"
            ),
        }
    }
}

/// The unread annotations of one object's metadata, and what a warning
/// names it by.
#[derive(Clone, Debug)]
pub(super) struct Found {
    object: String,
    path: FieldPath,
    unread: Vec<Unread>,
}

impl Found {
    /// The unread annotations of `metadata`, at `path`, of `object`.
    pub(super) fn read(object: String, metadata: Option<&Mapping>, path: &FieldPath) -> Self {
        let annotations = metadata
            .and_then(|metadata| metadata.get("annotations"))
            .and_then(|annotations| annotations.as_mapping());
        let unread = Unread::ALL
            .into_iter()
            .filter(|unread| annotations.is_some_and(|a| a.contains_key(unread.annotation())))
            .collect();
        Self {
            object,
            path: path.key("annotations"),
            unread,
        }
    }
}

/// A warning for each unread annotation of `scopes`, nearest first: the
/// first scope that has it names it. `config_map` is the sidecar's.
pub(super) fn warnings(scopes: &[&Found], config_map: &str) -> Vec<Warning> {
    Unread::ALL
        .into_iter()
        .filter_map(|annotation| {
            let found = scopes
                .iter()
                .find(|found| found.unread.contains(&annotation))?;
            Some(Warning {
                annotation,
                object: found.object.clone(),
                path: found.path.to_string(),
                config_map: config_map.to_owned(),
            })
        })
        .collect()
}

/// How a warning names a workload or Namespace: its kind, its namespace
/// when it has one, and its name.
pub(super) fn object_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}
