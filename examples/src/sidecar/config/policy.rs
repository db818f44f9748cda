//! The `policy` section: who may call the application, in the resources
//! Linkerd users already write, and the workload they select.
//!
//! The resources (`Server`, `ServerAuthorization`, `AuthorizationPolicy`,
//! `MeshTLSAuthentication`, `NetworkAuthentication`, `HTTPRoute`, and for
//! outbound retries `ServiceProfile`) are read from files, which are
//! watched, and from one inline text. They are compiled when the sidecar
//! starts (and by `sidecar check`), not here: files are read then.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use mesh_core::TrustDomain;
pub use mesh_policy::{DefaultPolicy, PolicyConfig, PolicyFiles, Workload};
use serde::Deserialize;
use serde::de::Deserializer;

use super::error::{ConfigError, ConfigErrorKind};
use super::file::{Expected, ParseStr, Timeout, Whole};
use super::identity::IdentityConfig;
use super::locate::locate;
use super::resolve::Source;
use super::unique::UniqueMap;

/// The policy section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// The workload the resources select: its namespace, labels, service
    /// account, named ports and cluster networks.
    pub workload: Workload,
    /// The default policy and the probe paths.
    pub config: PolicyConfig,
    /// The resource files, read in order, then the inline text.
    pub sources: PolicyFiles,
    /// How often the files are read for changes.
    pub watch_interval: Duration,
    /// Where the inline text sits in the configuration file, to report
    /// its mistakes at the file's lines.
    pub inline_origin: Option<InlineOrigin>,
}

/// Where `policy.inline` is written, so that an error in an inline
/// resource names the configuration file and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineOrigin {
    /// The configuration file.
    pub origin: String,
    /// The line of the file that holds the inline text's first line.
    pub first_line: usize,
    /// How far the text is indented in the file.
    pub indent: usize,
}

impl PolicySettings {
    /// The namespace of a workload that names none: `default`, as in
    /// Kubernetes.
    pub const DEFAULT_NAMESPACE: &'static str = "default";
    /// How often policy files are read by default: every 2 seconds.
    pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
}

impl Default for PolicySettings {
    /// A workload in `default` with no labels, the default policy
    /// `all-unauthenticated`, and no resources.
    fn default() -> Self {
        Self {
            workload: Workload::new(Self::DEFAULT_NAMESPACE),
            config: PolicyConfig::default(),
            sources: PolicyFiles::new(),
            watch_interval: Self::DEFAULT_WATCH_INTERVAL,
            inline_origin: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with workload, default_policy, probe_paths, egress_namespace, files, inline and watch_interval"
)]
pub(super) struct PolicySection {
    workload: Option<WorkloadSection>,
    default_policy: Option<DefaultPolicyName>,
    probe_paths: Option<Vec<ProbePath>>,
    /// The namespace whose `EgressNetwork`s apply to clients of every
    /// namespace: Linkerd's `egress.globalEgressNetworkNamespace`.
    egress_namespace: Option<Namespace>,
    files: Option<Vec<FilePath>>,
    inline: Option<String>,
    watch_interval: Option<Timeout>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with namespace, labels, service_account, ports, cluster_networks and trust_domain"
)]
struct WorkloadSection {
    namespace: Option<Namespace>,
    labels: Option<UniqueMap<String>>,
    service_account: Option<Name>,
    ports: Option<UniqueMap<Whole<1, { u16::MAX as u64 }>>>,
    cluster_networks: Option<Vec<Network>>,
    trust_domain: Option<TrustDomainValue>,
}

/// A namespace, as Kubernetes names one: a DNS-1123 label, at most 63
/// lowercase letters, digits and `-`, starting and ending with a letter
/// or digit. Every resource's `metadata.namespace` is read so; a
/// workload in a namespace no resource can name would match none.
#[derive(Debug)]
struct Namespace(String);

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "namespace",
            expecting: "a namespace such as emojivoto",
            parse: |text: &str| {
                if text.len() <= 63 && is_label(text) {
                    Ok(Namespace(text.to_owned()))
                } else {
                    Err(Expected(
                        "expected at most 63 lowercase letters, digits and '-', starting and \
                         ending with a letter or digit, as kubernetes names a namespace",
                    ))
                }
            },
        })
    }
}

/// A service account's name, as Kubernetes names one: a DNS-1123
/// subdomain, at most 253 characters of labels joined by `.`.
#[derive(Debug)]
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "name",
            expecting: "a lowercase name such as web",
            parse: |text: &str| {
                if text.len() <= 253 && text.split('.').all(is_label) {
                    Ok(Name(text.to_owned()))
                } else {
                    Err(Expected(
                        "expected at most 253 characters of lowercase letters, digits, '-' and \
                         '.', each part between dots starting and ending with a letter or \
                         digit, as kubernetes names are",
                    ))
                }
            },
        })
    }
}

/// Whether `text` is a DNS-1123 label, its length aside: lowercase
/// letters, digits and `-`, neither first nor last a `-`.
fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A file's path, which cannot be empty: an empty one names no file, and
/// would only be refused when the sidecar opened it, with no field to
/// point at.
#[derive(Debug)]
struct FilePath(PathBuf);

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "path",
            expecting: "a file's path such as /etc/mesh/policy.yaml",
            parse: |text: &str| {
                if text.is_empty() {
                    Err(Expected("a path cannot be empty"))
                } else {
                    Ok(FilePath(PathBuf::from(text)))
                }
            },
        })
    }
}

#[derive(Debug)]
struct DefaultPolicyName(DefaultPolicy);

impl<'de> Deserialize<'de> for DefaultPolicyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "default policy",
            expecting: "all-unauthenticated, all-authenticated, cluster-authenticated, cluster-unauthenticated, deny or audit",
            parse: |text: &str| text.parse::<DefaultPolicy>().map(DefaultPolicyName),
        })
    }
}

#[derive(Debug)]
struct ProbePath(String);

impl<'de> Deserialize<'de> for ProbePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "probe path",
            expecting: "a path such as /ready",
            parse: |text: &str| {
                if text.starts_with('/') {
                    Ok(ProbePath(text.to_owned()))
                } else {
                    Err(Expected("expected a path that starts with /"))
                }
            },
        })
    }
}

#[derive(Debug)]
struct Network(IpNet);

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "network",
            expecting: "a network such as 10.0.0.0/8",
            parse: |text: &str| text.parse::<IpNet>().map(Network),
        })
    }
}

#[derive(Debug)]
struct TrustDomainValue(TrustDomain);

impl<'de> Deserialize<'de> for TrustDomainValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "trust domain",
            expecting: "a trust domain such as example.org",
            parse: |text: &str| TrustDomain::parse(text).map(TrustDomainValue),
        })
    }
}

/// Applies the defaults. The trust domain of service account identities
/// is the workload's own, from the identity section, unless written here.
pub(super) fn resolve_policy(
    section: PolicySection,
    identity: Option<&IdentityConfig>,
    source: Source<'_>,
) -> Result<PolicySettings, ConfigError> {
    let mut settings = PolicySettings::default();
    let workload_section = section.workload.unwrap_or_default();
    let mut workload = Workload::new(
        workload_section
            .namespace
            .map_or_else(|| PolicySettings::DEFAULT_NAMESPACE.to_owned(), |n| n.0),
    );
    workload.labels = workload_section.labels.map(|l| l.0).unwrap_or_default();
    if let Some(account) = workload_section.service_account {
        workload.service_account = account.0;
    }
    workload.ports = workload_section
        .ports
        .map(|p| p.0)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, port)| (name, u16::try_from(port.0).unwrap_or(u16::MAX)))
        .collect();
    if let Some(networks) = workload_section.cluster_networks {
        workload.cluster_networks = networks.into_iter().map(|n| n.0).collect();
    }
    workload.trust_domain = workload_section
        .trust_domain
        .map(|t| t.0)
        .or_else(|| identity.and_then(IdentityConfig::trust_domain));
    settings.workload = workload;
    if let Some(policy) = section.default_policy {
        settings.config.default_policy = policy.0;
    }
    if let Some(paths) = section.probe_paths {
        settings.config.probe_paths = paths.into_iter().map(|p| p.0).collect();
    }
    if let Some(namespace) = section.egress_namespace {
        settings.config.egress_namespace = namespace.0;
    }
    settings.sources.files = section
        .files
        .unwrap_or_default()
        .into_iter()
        .map(|path| path.0)
        .collect();
    if let Some(interval) = section.watch_interval {
        if settings.sources.files.is_empty() {
            let path = "policy.watch_interval";
            return Err(source.error(
                ConfigErrorKind::Conflict,
                path,
                path,
                "watch_interval says how often policy.files are read again, and there are \
                 none: inline resources are read once, with this file"
                    .to_owned(),
            ));
        }
        settings.watch_interval = interval.0;
    }
    if let Some(inline) = section.inline {
        settings.inline_origin = Some(inline_origin(source));
        settings.sources.inline.push(inline);
    }
    Ok(settings)
}

/// Where the inline text's first line is: the line after the `|` or `>` of
/// a block scalar, on the line of a flow scalar. A block scalar's blank
/// lines before its first text are lines of the text too, so they count;
/// its indentation is that of its first line with text.
fn inline_origin(source: Source<'_>) -> InlineOrigin {
    let at = locate(source.text, "policy.inline");
    let (line, column) = at.map_or((0, 0), |at| (at.line, at.column));
    let lines: Vec<&str> = source.text.lines().collect();
    let written = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
    let starts_block = written
        .chars()
        .skip(column.saturating_sub(1))
        .find(|c| !c.is_whitespace())
        .is_some_and(|c| c == '|' || c == '>');
    if !starts_block {
        return InlineOrigin {
            origin: source.origin.to_owned(),
            first_line: line,
            indent: column.saturating_sub(1),
        };
    }
    let text = lines
        .iter()
        .skip(line)
        .find(|l| !l.trim().is_empty())
        .copied()
        .unwrap_or("");
    InlineOrigin {
        origin: source.origin.to_owned(),
        first_line: line + 1,
        indent: text.len() - text.trim_start().len(),
    }
}
