//! The `identity` section: where the workload's certificate comes from, and
//! what the inbound listeners ask of their peers.
//!
//! A meshed workload proves who it is with a short-lived certificate. In a
//! cluster the certificate is written to disk by cert-manager, SPIRE's
//! helper or the mesh's own issuer, and rotated there; the sidecar reads the
//! files and watches them. On a laptop a CA directory made by
//! `sidecar certs ca` is simpler: the sidecar issues its own certificate at
//! start and renews it before it expires.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mesh_core::{Identity, TrustDomain};
use mesh_tls::{
    CredentialFiles, DEFAULT_WATCH_INTERVAL,
    ca::{DEFAULT_WORKLOAD_TTL, MIN_RENEWED_TTL},
    in_trust_domain,
};
pub use mesh_tls::{CredentialSource, InboundMode, OutboundTls, StoreConfig};
use serde::Deserialize;
use serde::de::Deserializer;

use super::error::{ConfigError, ConfigErrorKind};
use super::file::{Expected, ParseStr, Timeout};
use super::resolve::Source;

/// The identity section, resolved: where credentials come from and what
/// they must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Files to load and watch, or a development CA to issue from.
    pub source: CredentialSource,
    /// What every certificate loaded must name: its trust domain and,
    /// when the file says, its exact identity.
    pub store: StoreConfig,
}

impl IdentityConfig {
    /// The lifetime of certificates issued from a CA directory when the
    /// file does not say: 24 hours, as Linkerd's.
    pub const DEFAULT_TTL: Duration = DEFAULT_WORKLOAD_TTL;
    /// How often credential files are read when the file does not say:
    /// every second.
    pub const DEFAULT_WATCH_INTERVAL: Duration = DEFAULT_WATCH_INTERVAL;

    /// The identity the workload claims, when the file names it: the one a
    /// CA directory issues for, or the one files must hold.
    pub fn identity(&self) -> Option<&Identity> {
        match &self.source {
            CredentialSource::Ca { identity, .. } => Some(identity),
            CredentialSource::Files { .. } => self.store.identity.as_ref(),
        }
    }

    /// The trust domain, when the file says or implies it.
    pub fn trust_domain(&self) -> Option<TrustDomain> {
        self.store
            .trust_domain
            .clone()
            .or_else(|| self.identity().and_then(Identity::trust_domain))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with dir, cert, key, bundle, ca, identity, ttl, trust_domain and watch_interval"
)]
pub(super) struct IdentitySection {
    dir: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    bundle: Option<PathBuf>,
    watch_interval: Option<Timeout>,
    ca: Option<PathBuf>,
    identity: Option<IdentityName>,
    ttl: Option<Timeout>,
    trust_domain: Option<TrustDomainName>,
}

/// A mesh identity written in the file.
#[derive(Debug, Clone)]
pub(super) struct IdentityName(pub(super) Identity);

impl<'de> Deserialize<'de> for IdentityName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "identity",
            expecting: "an identity such as spiffe://example.org/ns/emojivoto/sa/web",
            parse: |text: &str| Identity::parse(text).map(IdentityName),
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct TrustDomainName(TrustDomain);

impl<'de> Deserialize<'de> for TrustDomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "trust domain",
            expecting: "a trust domain such as example.org",
            parse: |text: &str| TrustDomain::parse(text).map(TrustDomainName),
        })
    }
}

/// `inbound.tls`: `permissive`, `strict` or `disabled`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mode(pub(super) InboundMode);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "tls mode",
            expecting: "permissive, strict or disabled",
            parse: |text: &str| match text {
                "permissive" => Ok(Mode(InboundMode::Permissive)),
                "strict" => Ok(Mode(InboundMode::Strict)),
                "disabled" => Ok(Mode(InboundMode::Disabled)),
                _ => Err(Expected("expected permissive, strict or disabled")),
            },
        })
    }
}

/// `outbound.services[].tls`: `mtls` or `plaintext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsKind {
    Mtls,
    Plaintext,
}

impl fmt::Display for TlsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsKind::Mtls => "mtls",
            TlsKind::Plaintext => "plaintext",
        })
    }
}

impl<'de> Deserialize<'de> for TlsKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "tls",
            expecting: "mtls or plaintext",
            parse: |text: &str| match text {
                "mtls" => Ok(TlsKind::Mtls),
                "plaintext" => Ok(TlsKind::Plaintext),
                _ => Err(Expected("expected mtls or plaintext")),
            },
        })
    }
}

/// Applies the rules across the section's fields: exactly one source, each
/// setting only where it means something.
pub(super) fn resolve_identity(
    section: IdentitySection,
    source: Source<'_>,
) -> Result<IdentityConfig, ConfigError> {
    let at = |field: &str| format!("identity.{field}");
    let error = |kind, field: &str, message: String| {
        let path = at(field);
        source.error(kind, &path, &path, message)
    };
    let files = [
        ("cert", section.cert.is_some()),
        ("key", section.key.is_some()),
        ("bundle", section.bundle.is_some()),
    ];
    let written_file = files.iter().find(|(_, set)| *set).map(|(name, _)| *name);
    if section.ca.is_some() {
        if let Some(other) = section.dir.as_ref().map(|_| "dir").or(written_file) {
            return Err(error(
                ConfigErrorKind::Conflict,
                other,
                format!(
                    "identity.{other} cannot be combined with identity.ca: take certificates from files or from a ca directory"
                ),
            ));
        }
        if section.watch_interval.is_some() {
            return Err(error(
                ConfigErrorKind::Conflict,
                "watch_interval",
                "watch_interval applies to certificate files, not to identity.ca".into(),
            ));
        }
    } else if section.ttl.is_some() {
        return Err(error(
            ConfigErrorKind::Conflict,
            "ttl",
            "ttl applies to certificates issued from identity.ca".into(),
        ));
    }
    if section.dir.is_some()
        && let Some(other) = written_file
    {
        return Err(error(
            ConfigErrorKind::Conflict,
            other,
            format!(
                "identity.{other} cannot be combined with identity.dir, which holds tls.crt, tls.key and ca.crt"
            ),
        ));
    }
    for (field, path) in [
        ("dir", &section.dir),
        ("cert", &section.cert),
        ("key", &section.key),
        ("bundle", &section.bundle),
        ("ca", &section.ca),
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(error(
                ConfigErrorKind::InvalidValue,
                field,
                "a path cannot be empty".into(),
            ));
        }
    }
    let identity = section.identity.map(|name| name.0);
    let trust_domain = section.trust_domain.map(|name| name.0);
    // As the credential store judges every certificate: a DNS-style name
    // is in the domain when it ends with `.<domain>`, a SPIFFE ID when it
    // names the domain. Refused here, the mistake is named at its field,
    // rather than by every certificate the store would then refuse.
    if let (Some(identity), Some(domain)) = (&identity, &trust_domain)
        && !in_trust_domain(domain, identity)
    {
        return Err(error(
            ConfigErrorKind::InvalidValue,
            "identity",
            format!("identity {identity} is outside trust_domain {domain}"),
        ));
    }
    let source = match (
        section.dir,
        section.cert,
        section.key,
        section.bundle,
        section.ca,
    ) {
        (None, None, None, None, Some(dir)) => {
            let Some(identity) = identity.clone() else {
                return Err(source.error(
                    ConfigErrorKind::MissingField,
                    "identity.identity",
                    "identity",
                    "missing field `identity`: identity.ca needs the identity to issue a certificate for".into(),
                ));
            };
            let ttl = section.ttl.map_or(IdentityConfig::DEFAULT_TTL, |t| t.0);
            // As the renewal loop and the CA would refuse it at start,
            // where only the CA directory could be named.
            if ttl < MIN_RENEWED_TTL {
                return Err(error(
                    ConfigErrorKind::InvalidValue,
                    "ttl",
                    format!(
                        "ttl {ttl:?} is too short to renew in time (renewal waits at least 10s): \
                         set identity.ttl to at least {MIN_RENEWED_TTL:?}"
                    ),
                ));
            }
            CredentialSource::Ca { dir, identity, ttl }
        }
        (Some(dir), None, None, None, None) => CredentialSource::Files {
            files: CredentialFiles::in_dir(dir),
            interval: watch_interval(section.watch_interval),
        },
        (None, Some(cert), Some(key), Some(bundle), None) => CredentialSource::Files {
            files: CredentialFiles { cert, key, bundle },
            interval: watch_interval(section.watch_interval),
        },
        (None, None, None, None, None) => {
            return Err(source.error(
                ConfigErrorKind::MissingField,
                "identity.dir",
                "identity",
                "missing field `dir`: identity needs dir, or cert, key and bundle, or ca".into(),
            ));
        }
        _ => {
            let missing = files
                .iter()
                .find(|(_, set)| !set)
                .map_or("cert", |(n, _)| n);
            return Err(source.error(
                ConfigErrorKind::MissingField,
                &at(missing),
                "identity",
                format!("missing field `{missing}`: identity.cert, identity.key and identity.bundle go together"),
            ));
        }
    };
    let store = match &source {
        // The CA issues for exactly this identity; the store need not check.
        CredentialSource::Ca { .. } => StoreConfig {
            trust_domain,
            identity: None,
        },
        CredentialSource::Files { .. } => StoreConfig {
            trust_domain,
            identity,
        },
    };
    Ok(IdentityConfig { source, store })
}

fn watch_interval(written: Option<Timeout>) -> Duration {
    written.map_or(IdentityConfig::DEFAULT_WATCH_INTERVAL, |t| t.0)
}
