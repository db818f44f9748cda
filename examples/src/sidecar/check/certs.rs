//! The identity checks: the credentials load as the sidecar loads them,
//! the chain verifies, the identity is in the trust domain, and nothing
//! has expired or is about to.
//!
//! Loading and chain verification are mesh-tls's own
//! ([`CredentialFiles::read`](mesh_tls::CredentialFiles::read), [`Credentials::check`]), so `check` passes
//! exactly what the sidecar's credential store accepts. What the store
//! does not look at, the remaining lifetime of each certificate, is read
//! here with x509-parser.

use std::path::Path;
use std::time::{Duration, SystemTime};

use mesh_core::Identity;
use mesh_tls::ca::{CA_CERT_FILE, CaError, CertificateAuthority, ISSUER_CERT_FILE};
use mesh_tls::{CredentialError, CredentialFiles, CredentialSource, Credentials, in_trust_domain};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::time::{Span, Utc};
use super::{Check, CheckOptions, with_causes};
use crate::sidecar::config::{IdentityConfig, format_duration};

/// The share of its lifetime a certificate has left when its renewer is
/// late: Linkerd's proxy renews at 70 % of the lifetime, and cert-manager
/// by default at two thirds. A 24-hour workload certificate warns in its
/// last 7 hours and 12 minutes, not for its whole life.
const LATE_SHARE: f64 = 0.3;

/// The identity group, for an `identity` section, with the expiry
/// warnings of `options`.
pub(super) fn check(
    config: &IdentityConfig,
    now: SystemTime,
    options: &CheckOptions,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let creds = match load(&config.source) {
        Ok((check, creds)) => {
            checks.push(check);
            creds
        }
        Err(check) => {
            checks.push(check);
            return checks;
        }
    };
    let files = match &config.source {
        CredentialSource::Files { files, .. } => Some(files),
        CredentialSource::Ca { .. } => None,
    };
    // Each certificate is named with the file it was read from, as the
    // other checks name theirs: the chain's in the certificate file (or
    // the CA directory's issuer file), the anchors in the bundle.
    let (chain_file, bundle_file) = match &config.source {
        CredentialSource::Files { files, .. } => (files.cert.clone(), files.bundle.clone()),
        CredentialSource::Ca { dir, .. } => (dir.join(ISSUER_CERT_FILE), dir.join(CA_CERT_FILE)),
    };
    let leaf = Validity {
        name: match files {
            Some(files) => format!("workload certificate in {}", files.cert.display()),
            // Issued in memory: no file holds it.
            None => "workload certificate".to_owned(),
        },
        not_before: creds.not_before(),
        not_after: creds.not_after(),
    };
    let cas = ca_certificates(&creds, &chain_file, &bundle_file);
    let issuers = cas.as_ref().map_or(&[][..], |(issuers, _)| issuers);
    if let Some(check) = verify_chain(&creds, files, &chain_file, &leaf, issuers, now) {
        checks.push(check);
    }
    if let CredentialSource::Files { .. } = config.source {
        // A CA directory issues for the configured identity, in its own
        // trust domain, now: these checks could not fail for it.
        checks.push(trust_domain(config, creds.identity(), &chain_file));
        if let Some(expected) = &config.store.identity {
            checks.push(named_identity(expected, creds.identity()));
        }
        let leaf = std::slice::from_ref(&leaf);
        checks.push(within_validity(
            "workload certificate is within its validity period",
            leaf,
            now,
        ));
        if leaf.iter().all(|leaf| leaf.contains(now)) {
            checks.push(not_expiring(
                "workload certificate does not expire soon",
                leaf,
                now,
                options.expiry_warning,
            ));
        }
    }
    match cas {
        Ok((issuers, anchors)) => {
            let certs = [issuers, anchors].concat();
            checks.push(within_validity(
                "CA certificates are within their validity period",
                &certs,
                now,
            ));
            checks.push(not_expiring(
                "CA certificates do not expire soon",
                &certs,
                now,
                options.ca_expiry_warning,
            ));
        }
        Err(detail) => checks.push(Check::fail(
            "CA certificates are within their validity period",
            detail,
        )),
    }
    checks
}

/// Reads the credentials as the sidecar would: the files, or a
/// certificate issued in memory from the CA directory now. A `ttl` too
/// short to be renewed before it ends fails here, as it stops the sidecar
/// at start.
fn load(source: &CredentialSource) -> Result<(Check, Credentials), Check> {
    match source {
        CredentialSource::Files { files, .. } => {
            const TITLE: &str = "certificate, key and trust bundle can be read";
            match files.read() {
                Ok(creds) => Ok((Check::pass(TITLE), creds)),
                Err(error) => Err(Check::fail(TITLE, with_causes(&error))),
            }
        }
        CredentialSource::Ca { dir, identity, ttl } => {
            let title = format!(
                "ca directory {} issues a certificate for {identity}",
                dir.display()
            );
            // As the sidecar issues: in the issuer's last `ttl`, a
            // certificate that ends with the issuer rather than none.
            // What ends the certificates early, when something does: the
            // issuer, renewed by its operator, or the trust anchor in
            // `ca.crt`, which only a new bundle replaces.
            let mut first = "the issuer expires first";
            let mut until = "until the issuer is renewed";
            let issued = CertificateAuthority::load(dir)
                .and_then(|ca| {
                    if ca.anchor_not_after() < ca.issuer_not_after() {
                        first = "the trust anchor (ca.crt) expires first";
                        until = "until the trust anchor is replaced";
                    }
                    ca.issue_within_issuer(identity, *ttl)
                })
                .and_then(|(issued, given)| {
                    let creds = issued.credentials().map_err(CaError::Credentials)?;
                    Ok((creds, given))
                });
            match issued {
                Ok((creds, given)) if given < *ttl => {
                    let detail = format!(
                        "{first}: certificates live {}, not the {} asked for, {until}",
                        format_duration(given),
                        format_duration(*ttl)
                    );
                    Ok((Check::warn(title, detail), creds))
                }
                Ok((creds, _)) => Ok((Check::pass(title), creds)),
                Err(error @ CaError::UnrenewableTtl { min, .. }) => {
                    let hint = format!("set identity.ttl to at least {}", format_duration(min));
                    Err(Check::fail(title, with_causes(&error)).with_hint(hint))
                }
                Err(error) => Err(Check::fail(title, with_causes(&error))),
            }
        }
    }
}

/// The chain verifies against the bundle, for server and client
/// authentication, as the credential store requires.
///
/// This check is about signatures and trust; the validity checks report
/// the dates. So the chain is verified now when every certificate in it is
/// valid now, and otherwise as of the last moment they all were (or will
/// first be). When there is no such moment, verification could only fail
/// on dates, which the validity checks already report, and this check is
/// left out.
///
/// A chain that does not verify is most often one from another CA than
/// the bundle's, or a bundle from another CA than the chain's: for
/// credentials read from `files`, the failure names both files, who issued
/// the chain and which anchors the bundle holds (see [`untrusted`]). Not
/// so for a certificate of the chain whose extended key usage leaves out
/// server or client authentication: the chain may lead to the bundle all
/// right, and the bundle's anchors would point at the wrong file, so that
/// failure names the certificate and the file holding it, `chain_file`
/// (the workload certificate of a CA directory is issued in memory, in no
/// file).
fn verify_chain(
    creds: &Credentials,
    files: Option<&CredentialFiles>,
    chain_file: &Path,
    leaf: &Validity,
    issuers: &[Validity],
    now: SystemTime,
) -> Option<Check> {
    const TITLE: &str = "certificate chain verifies against the trust bundle";
    let chain = || std::iter::once(leaf).chain(issuers);
    let not_before = chain().map(|cert| cert.not_before).max()?;
    let not_after = chain().map(|cert| cert.not_after).min()?;
    let last_valid = not_after.checked_sub(Duration::from_secs(1))?;
    if last_valid < not_before {
        return None;
    }
    let at = now.clamp(not_before, last_valid);
    Some(match creds.check(at) {
        Ok(()) if at == now => Check::pass(TITLE),
        Ok(()) => Check::pass(TITLE).with_detail(format!(
            "verified as of {}, when every certificate in it was valid",
            Utc(at)
        )),
        Err(error @ CredentialError::PurposeMissing { position, .. }) => {
            let detail = with_causes(&error);
            let in_file = files.is_some() || position > 1;
            Check::fail(
                TITLE,
                match in_file {
                    true => format!("in {}, {detail}", chain_file.display()),
                    false => detail,
                },
            )
        }
        Err(error) => {
            let mut detail = with_causes(&error);
            let Some(untrusted) = files.and_then(|files| untrusted(creds, files)) else {
                return Some(Check::fail(TITLE, detail));
            };
            for line in &untrusted.lines {
                detail.push('\n');
                detail.push_str(line);
            }
            let check = Check::fail(TITLE, detail);
            match untrusted.hint {
                Some((joint, hint)) => check.with_hint_after(joint, hint),
                None => check,
            }
        }
    })
}

/// A certificate's names and key identifiers, for telling which CA it is
/// of: two CAs may have anchors of one name (`root.linkerd.cluster.local`
/// in Linkerd's guides), told apart by their keys.
struct Names {
    subject: String,
    issuer: String,
    /// Its subject key identifier, as `openssl x509 -text` prints it.
    key: Option<String>,
    /// The key identifier of the certificate that issued it.
    issuer_key: Option<String>,
}

impl Names {
    fn of(der: &[u8]) -> Option<Self> {
        let (_, x509) = X509Certificate::from_der(der).ok()?;
        let hex = |id: &[u8]| {
            id.iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut names = Self {
            subject: x509.subject().to_string(),
            issuer: x509.issuer().to_string(),
            key: None,
            issuer_key: None,
        };
        for extension in x509.iter_extensions() {
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => names.key = Some(hex(id.0)),
                ParsedExtension::AuthorityKeyIdentifier(authority) => {
                    names.issuer_key = authority.key_identifier.as_ref().map(|id| hex(id.0));
                }
                _ => {}
            }
        }
        Some(names)
    }
}

/// What [`untrusted`] says of a chain that does not verify.
struct Untrusted {
    /// Who issued it, what the bundle holds and, when no anchor of the
    /// bundle is the issuer, why not.
    lines: Vec<String>,
    /// Then what to do about it, and what joins it to the last line.
    hint: Option<(&'static str, String)>,
}

/// What a chain that does not verify was issued by, and what the bundle
/// holds, naming the two files; then what to do when no anchor of the
/// bundle is the chain's issuer, by name and key.
fn untrusted(creds: &Credentials, files: &CredentialFiles) -> Option<Untrusted> {
    let last = creds.chain().last().and_then(|der| Names::of(der))?;
    let key = |key: &Option<String>| {
        key.as_ref()
            .map_or_else(String::new, |k| format!(" (key {k})"))
    };
    let mut lines = vec![format!(
        "the chain in {} was issued by {}{}",
        files.cert.display(),
        printable_name(&last.issuer),
        key(&last.issuer_key),
    )];
    let anchors: Vec<Names> = creds
        .roots()
        .iter()
        .filter_map(|der| Names::of(der))
        .collect();
    lines.push(format!(
        "the trust bundle {} holds {}",
        files.bundle.display(),
        match anchors.len() {
            1 => "1 trust anchor:".to_owned(),
            n => format!("{n} trust anchors:"),
        }
    ));
    lines.extend(
        anchors
            .iter()
            .map(|anchor| format!("  {}{}", printable_name(&anchor.subject), key(&anchor.key))),
    );
    let named: Vec<&Names> = anchors
        .iter()
        .filter(|anchor| anchor.subject == last.issuer)
        .collect();
    let same_key = |anchor: &&Names| match (&anchor.key, &last.issuer_key) {
        (Some(anchor), Some(issuer)) => anchor == issuer,
        // Without key identifiers, a name is all there is to go by.
        _ => true,
    };
    let mut hint = None;
    if named.is_empty() {
        // A chain of the workload certificate alone may lack the
        // intermediate between it and the anchor.
        let alone = if creds.chain().len() == 1 {
            format!(
                "; when an intermediate issuer signed it, put that issuer's certificate after \
                 the workload certificate in {}",
                files.cert.display()
            )
        } else {
            String::new()
        };
        lines.push("no trust anchor of the bundle issued the chain".to_owned());
        hint = Some((
            ": ",
            format!(
                "put the anchor of the CA that issued {} in {}, or issue the certificate from \
                 the CA the bundle is of{alone}",
                files.cert.display(),
                files.bundle.display()
            ),
        ));
    } else if !named.iter().any(same_key) {
        lines.push(
            "the bundle's anchor of that name has another key: it is of another CA of the same \
             name"
                .to_owned(),
        );
        hint = Some((
            "; ",
            format!(
                "put the anchor that issued {} in {}",
                files.cert.display(),
                files.bundle.display()
            ),
        ));
    }
    Some(Untrusted { lines, hint })
}

/// A certificate's name, which the file chose, as a report line may show
/// it: its control characters escaped.
fn printable_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn trust_domain(config: &IdentityConfig, identity: &Identity, file: &Path) -> Check {
    let Some(domain) = config.trust_domain() else {
        let title = match identity.trust_domain() {
            Some(domain) => format!("certificate identity {identity} is in trust domain {domain}"),
            None => format!("certificate identity {identity} is a dns-style name"),
        };
        return Check::pass(title).with_detail(
            "identity.trust_domain is not set: the sidecar keeps the first certificate's trust domain for every rotation",
        );
    };
    let title = format!("certificate identity {identity} is in trust domain {domain}");
    if in_trust_domain(&domain, identity) {
        Check::pass(title)
    } else {
        let error = CredentialError::WrongTrustDomain {
            identity: identity.clone(),
            trust_domain: domain,
        };
        Check::fail(
            title,
            format!("{error} (the certificate in {})", file.display()),
        )
    }
}

fn named_identity(expected: &Identity, found: &Identity) -> Check {
    let title = format!("certificate names the configured identity {expected}");
    if expected == found {
        Check::pass(title)
    } else {
        let error = CredentialError::WrongIdentity {
            expected: expected.clone(),
            found: found.clone(),
        };
        Check::fail(title, error.to_string())
    }
}

/// One certificate's validity period, and what to call it.
#[derive(Debug, Clone)]
struct Validity {
    name: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Validity {
    fn contains(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// How close to expiry the certificate may come before it warns: the
    /// configured window, or [`LATE_SHARE`] of its lifetime when that is
    /// shorter.
    fn warning_window(&self, warning: Duration) -> Duration {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        warning.min(lifetime.mul_f64(LATE_SHARE))
    }
}

/// Fails when any certificate has expired or is not valid yet.
fn within_validity(title: &str, certs: &[Validity], now: SystemTime) -> Check {
    let problems: Vec<String> = certs
        .iter()
        .filter_map(|cert| {
            if let Ok(ahead) = cert.not_before.duration_since(now)
                && !ahead.is_zero()
            {
                return Some(format!(
                    "{} is not valid until {}, in {}",
                    cert.name,
                    Utc(cert.not_before),
                    Span(ahead)
                ));
            }
            let ago = now.duration_since(cert.not_after).ok()?;
            Some(format!(
                "{} expired at {}, {} ago",
                cert.name,
                Utc(cert.not_after),
                Span(ago)
            ))
        })
        .collect();
    if problems.is_empty() {
        Check::pass(title)
    } else {
        Check::fail(title, problems.join("\n"))
    }
}

/// Warns when any certificate that is still valid is within its warning
/// window of expiry. Expired ones are [`within_validity`]'s to report.
fn not_expiring(title: &str, certs: &[Validity], now: SystemTime, warning: Duration) -> Check {
    let soon: Vec<String> = certs
        .iter()
        .filter(|cert| cert.contains(now))
        .filter_map(|cert| {
            let left = cert.not_after.duration_since(now).ok()?;
            (left < cert.warning_window(warning)).then(|| {
                format!(
                    "{} expires at {}, in {}",
                    cert.name,
                    Utc(cert.not_after),
                    Span(left)
                )
            })
        })
        .collect();
    if soon.is_empty() {
        Check::pass(title)
    } else {
        Check::warn(title, soon.join("\n"))
    }
}

/// The issuers in the chain and the trust anchors in the bundle, with
/// their validity periods, named with the files they were read from.
fn ca_certificates(
    creds: &Credentials,
    chain_file: &Path,
    bundle_file: &Path,
) -> Result<(Vec<Validity>, Vec<Validity>), String> {
    let issuers = creds.chain().iter().skip(1);
    let issuers = issuers.map(|cert| validity("issuer", cert.as_ref(), chain_file));
    let anchors = creds.roots().iter();
    let anchors = anchors.map(|cert| validity("trust anchor", cert.as_ref(), bundle_file));
    Ok((
        issuers.collect::<Result<_, _>>()?,
        anchors.collect::<Result<_, _>>()?,
    ))
}

fn validity(role: &str, der: &[u8], file: &Path) -> Result<Validity, String> {
    let file = file.display();
    let (_, x509) = X509Certificate::from_der(der)
        .map_err(|error| format!("cannot read a {role} certificate in {file}: {error}"))?;
    let subject = x509.subject().to_string();
    let validity = x509.validity();
    Ok(Validity {
        name: if subject.is_empty() {
            format!("{role} in {file}")
        } else {
            format!("{role} {subject} in {file}")
        },
        not_before: unix(validity.not_before.timestamp()),
        not_after: unix(validity.not_after.timestamp()),
    })
}

fn unix(secs: i64) -> SystemTime {
    u64::try_from(secs).map_or(SystemTime::UNIX_EPOCH, |secs| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    })
}
