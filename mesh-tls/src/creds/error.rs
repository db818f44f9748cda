use std::{fmt, io, path::PathBuf, time::SystemTime};

use mesh_core::{Identity, TrustDomain, identity::InvalidIdentity};

use crate::cert::NoIdentity;

/// Why a set of credentials was refused.
///
/// The store keeps serving the credentials it had; the refusal is logged
/// and counted under [`CredentialError::reason`].
#[derive(Debug)]
#[non_exhaustive]
pub enum CredentialError {
    /// A file could not be read, or holds more than
    /// [`MAX_FILE_SIZE`](super::MAX_FILE_SIZE).
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it returned.
        source: io::Error,
    },
    /// A PEM file could not be parsed; shown with the parser's reason in
    /// words (a section that does not end, as in a file read half-written,
    /// or a malformed line).
    Pem(rustls_pki_types::pem::Error),
    /// The certificate file holds no certificate.
    NoCertificate,
    /// The key file holds no private key.
    NoPrivateKey,
    /// The key file holds an encrypted private key (`ENCRYPTED PRIVATE
    /// KEY`, or OpenSSL's older form with a `Proc-Type: 4,ENCRYPTED`
    /// header), which the mesh cannot read without a passphrase.
    EncryptedKey,
    /// The private key is not one the provider can sign with.
    BadKey(rustls::Error),
    /// The private key does not belong to the certificate.
    KeyMismatch,
    /// The certificate is not valid X.509.
    BadCertificate,
    /// The certificate names no usable identity.
    NoIdentity(NoIdentity),
    /// The chain's first certificate is a CA's, and a later one is not:
    /// the certificates are out of order, the workload certificate
    /// written after its issuer.
    ChainOutOfOrder {
        /// Where the first certificate that is not a CA's is in the chain,
        /// counting from 1.
        workload_at: usize,
    },
    /// The trust bundle holds no certificate.
    EmptyBundle,
    /// A trust bundle certificate cannot serve as a trust anchor.
    BadTrustAnchor {
        /// Where it is in the bundle, counting from 1: a system bundle
        /// holds over a hundred.
        position: usize,
        /// Why webpki refused it.
        source: webpki::Error,
    },
    /// A trust bundle certificate is not a CA's: its basic constraints do
    /// not say `cA`, or its key usage leaves out `keyCertSign`. As an
    /// anchor it would let its key, a workload's, sign any identity.
    AnchorNotCa {
        /// Where it is in the bundle, counting from 1.
        position: usize,
    },
    /// A trust bundle certificate claims a trust domain that cannot be
    /// read: a URI SAN of the `spiffe` scheme that is no valid SPIFFE ID,
    /// or subject alternative names that do not parse. An anchor vouches
    /// for the SPIFFE IDs of the trust domains it names, and one that names
    /// none for every identity, so an anchor whose trust domain cannot be
    /// read is refused rather than read as naming none (see [what a
    /// certificate proves](crate::connect#what-a-certificate-proves)).
    AnchorDomainUnreadable(UnreadableAnchorDomain),
    /// The certificate has expired.
    Expired {
        /// When it expired.
        not_after: SystemTime,
    },
    /// The certificate is not valid yet.
    NotYetValid {
        /// When it becomes valid.
        not_before: SystemTime,
    },
    /// The workload certificate is valid, but an issuer of it in the chain
    /// has expired or is not valid yet, and with it the chain. Said apart
    /// from [`Expired`](Self::Expired) and [`NotYetValid`](Self::NotYetValid),
    /// since the dates a reader of the chain file finds first are the
    /// workload certificate's, which are not the ones at fault.
    IssuerOutsideValidity {
        /// Where the issuer is in the chain, counting from 1 (the
        /// workload certificate).
        position: usize,
        /// Which end of its validity the check was past, and when that is.
        validity: OutsideValidity,
    },
    /// The certificate chain does not verify against the trust bundle, for
    /// both server and client authentication.
    Untrusted(webpki::Error),
    /// A certificate of the chain has an extended key usage that leaves
    /// out server or client authentication (a certificate requested for
    /// one end alone: cert-manager's `usages: [server auth]`, a CA's web
    /// server template). A mesh certificate serves both ends of a
    /// connection, and peers check the purpose on every certificate of
    /// the path, so each one that names extended key usages must name
    /// both. Said apart from [`Untrusted`](Self::Untrusted): the chain may
    /// lead to the bundle all right, and the certificate file is the one
    /// to mend.
    PurposeMissing {
        /// Where the certificate is in the chain, counting from 1 (the
        /// workload certificate).
        position: usize,
        /// The purpose it leaves out.
        purpose: rustls::ExtendedKeyPurpose,
    },
    /// The certificate chain verifies only through trust anchors of other
    /// trust domains than that of the SPIFFE ID it names: an anchor that
    /// names a trust domain vouches for that trust domain's identities
    /// alone, so peers would refuse the certificate.
    NoAnchorOfTrustDomain {
        /// The certificate's identity.
        identity: Identity,
    },
    /// The identity is outside the trust domain the store serves.
    WrongTrustDomain {
        /// The certificate's identity.
        identity: Identity,
        /// The trust domain the store serves.
        trust_domain: TrustDomain,
    },
    /// The identity is not the one the store was configured with.
    WrongIdentity {
        /// The configured identity.
        expected: Identity,
        /// The certificate's identity.
        found: Identity,
    },
    /// rustls refused to build a configuration from the credentials.
    Config(rustls::Error),
    /// Credentials read from files were refused: the files at fault and
    /// why. One file for a problem in one (a certificate that does not
    /// parse, or has expired); two for a problem between them (a key that
    /// is not the certificate's, a chain the bundle does not trust).
    InFiles {
        /// The files at fault.
        paths: Vec<PathBuf>,
        /// Why they were refused.
        source: Box<CredentialError>,
    },
}

impl CredentialError {
    /// The bounded reason, for the rejected-update metric.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::Read { .. } => RejectReason::Unreadable,
            Self::Pem(_)
            | Self::NoCertificate
            | Self::NoPrivateKey
            | Self::EncryptedKey
            | Self::BadKey(_)
            | Self::BadCertificate
            | Self::ChainOutOfOrder { .. }
            | Self::EmptyBundle
            | Self::BadTrustAnchor { .. }
            | Self::AnchorNotCa { .. }
            | Self::AnchorDomainUnreadable(_) => RejectReason::Malformed,
            Self::KeyMismatch => RejectReason::KeyMismatch,
            Self::NoIdentity(_) => RejectReason::NoIdentity,
            Self::Expired { .. }
            | Self::IssuerOutsideValidity {
                validity: OutsideValidity::Expired { .. },
                ..
            } => RejectReason::Expired,
            Self::NotYetValid { .. }
            | Self::IssuerOutsideValidity {
                validity: OutsideValidity::NotYetValid { .. },
                ..
            } => RejectReason::NotYetValid,
            Self::Untrusted(_)
            | Self::PurposeMissing { .. }
            | Self::NoAnchorOfTrustDomain { .. } => RejectReason::Untrusted,
            Self::WrongTrustDomain { .. } => RejectReason::WrongTrustDomain,
            Self::WrongIdentity { .. } => RejectReason::WrongIdentity,
            Self::Config(_) => RejectReason::Config,
            Self::InFiles { source, .. } => source.reason(),
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, .. } => write!(f, "cannot read {}", path.display()),
            Self::Pem(e) => {
                f.write_str("invalid pem: ")?;
                pem_problem(e, f)
            }
            Self::NoCertificate => f.write_str("no certificate found"),
            Self::NoPrivateKey => f.write_str("no private key found"),
            Self::EncryptedKey => f.write_str("private key is encrypted"),
            Self::BadKey(_) => f.write_str("unusable private key"),
            Self::KeyMismatch => f.write_str("private key does not match the certificate"),
            Self::BadCertificate => f.write_str("certificate is not valid x.509"),
            Self::NoIdentity(_) => f.write_str("certificate names no identity"),
            Self::ChainOutOfOrder { workload_at } => write!(
                f,
                "certificate chain is out of order: its first certificate is a ca's, and \
                 certificate {workload_at}, not a ca's, is the workload certificate, which \
                 must come first"
            ),
            Self::EmptyBundle => f.write_str("trust bundle holds no certificate"),
            Self::BadTrustAnchor { position, .. } => write!(
                f,
                "trust bundle certificate {position} is not a usable trust anchor"
            ),
            Self::AnchorNotCa { position } => write!(
                f,
                "trust bundle certificate {position} is not a ca's (no basic constraints cA, \
                 or a key usage without keyCertSign)"
            ),
            Self::AnchorDomainUnreadable(unreadable) => fmt::Display::fmt(unreadable, f),
            Self::Expired { not_after } => {
                write!(f, "certificate has expired (at {})", Utc(*not_after))
            }
            Self::NotYetValid { not_before } => {
                write!(
                    f,
                    "certificate is not valid yet (until {})",
                    Utc(*not_before)
                )
            }
            Self::IssuerOutsideValidity { position, validity } => match validity {
                OutsideValidity::Expired { not_after } => write!(
                    f,
                    "certificate {position} of the chain, an issuer of the workload \
                     certificate, has expired (at {}), and the chain with it",
                    Utc(*not_after)
                ),
                OutsideValidity::NotYetValid { not_before } => write!(
                    f,
                    "certificate {position} of the chain, an issuer of the workload \
                     certificate, is not valid yet (until {}), nor the chain with it",
                    Utc(*not_before)
                ),
            },
            Self::Untrusted(_) => {
                f.write_str("certificate chain does not verify against the trust bundle")
            }
            Self::PurposeMissing {
                position: 1,
                purpose,
            } => write!(
                f,
                "the workload certificate (certificate 1 of the chain) has an extended key usage \
                 that leaves out {purpose}: a mesh certificate serves both ends of a connection, \
                 so it must allow server and client authentication (or name no extended key \
                 usage)"
            ),
            Self::PurposeMissing { position, purpose } => write!(
                f,
                "certificate {position} of the chain, an issuer of the workload certificate, has \
                 an extended key usage that leaves out {purpose}, and peers refuse the chain for \
                 it: a mesh certificate serves both ends of a connection, so every certificate \
                 of its chain must allow server and client authentication (or name no extended \
                 key usage)"
            ),
            Self::NoAnchorOfTrustDomain { identity } => write!(
                f,
                "certificate chain verifies only through trust anchors of other trust domains \
                 than that of {identity}, {}",
                identity.trust_domain_name().unwrap_or_default()
            ),
            Self::WrongTrustDomain {
                identity,
                trust_domain,
            } => write!(
                f,
                "identity {identity} is outside trust domain {trust_domain}"
            ),
            Self::WrongIdentity { expected, found } => {
                write!(f, "certificate names {found}, expected {expected}")
            }
            Self::Config(_) => f.write_str("cannot build a tls configuration"),
            Self::InFiles { paths, .. } => {
                f.write_str("refused ")?;
                for (i, path) in paths.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(f, "{}", path.display())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::BadKey(e) | Self::Config(e) => Some(e),
            Self::NoIdentity(e) => Some(e),
            Self::BadTrustAnchor { source: e, .. } | Self::Untrusted(e) => Some(e),
            Self::InFiles { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// A trust anchor whose trust domain cannot be read, and where it is:
/// see [`CredentialError::AnchorDomainUnreadable`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableAnchorDomain {
    /// Where the certificate is in the bundle, counting from 1.
    pub position: usize,
    /// Its subject, as RFC 4514 writes a distinguished name (`CN=...`),
    /// to find it by among the bundle's certificates.
    pub subject: String,
    /// What cannot be read.
    pub problem: AnchorDomainProblem,
}

/// Why a trust anchor's trust domain cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorDomainProblem {
    /// A URI SAN has the `spiffe` scheme (in any case) but is no valid
    /// SPIFFE ID: an uppercase letter in its trust domain, a port, a
    /// query, an empty path segment, ... (the SPIFFE ID spec's rules,
    /// <https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>).
    MalformedSpiffeId {
        /// The URI SAN as the certificate spells it.
        uri: String,
        /// The rule it breaks.
        error: InvalidIdentity,
    },
    /// The subject alternative name extension does not parse, so whether
    /// it names a trust domain cannot be told.
    UnparsableSubjectAltName,
}

impl fmt::Display for UnreadableAnchorDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            position, subject, ..
        } = self;
        write!(f, "trust bundle certificate {position} ({subject}) ")?;
        match &self.problem {
            AnchorDomainProblem::MalformedSpiffeId { uri, error } => write!(
                f,
                "has the uri san {uri:?}, which is no valid spiffe id ({error}): the trust \
                 domain it is the anchor of cannot be read"
            )?,
            AnchorDomainProblem::UnparsableSubjectAltName => f.write_str(
                "has a subject alternative name extension that does not parse: which trust \
                 domain it is the anchor of, if any, cannot be read",
            )?,
        }
        f.write_str(", and read as naming none it would vouch for every identity")
    }
}

impl std::error::Error for UnreadableAnchorDomain {}

/// What is wrong with a PEM file, in words an operator reads in a log: the
/// parser's own Display shows the lines at fault as lists of bytes.
fn pem_problem(e: &rustls_pki_types::pem::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => write!(
            f,
            "the file ends inside a section, before its -----END {}----- line (was it read \
             half-written?)",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => {
            write!(
                f,
                "malformed section start line {:?}",
                String::from_utf8_lossy(line)
            )
        }
        E::Base64Decode(why) => write!(f, "a section is not valid base64 ({why})"),
        other => write!(f, "{other}"),
    }
}

/// The local credentials in service cannot be presented at this moment:
/// their chain is outside its validity.
///
/// A certificate that has expired, or is not valid yet, would be refused
/// by every peer that checks it, with an error about the peer's view of
/// the certificate rather than the cause, and accepted by a peer that does
/// not; so neither end of the mesh presents one. The connector fails the
/// connection before it dials
/// ([`ConnectError::CredentialsUnusable`](crate::ConnectError::CredentialsUnusable)),
/// the acceptor refuses the handshake
/// ([`AcceptError::CredentialsUnusable`](crate::accept::AcceptError::CredentialsUnusable)),
/// and the store is not ready ([`CredentialStore::is_ready`](crate::CredentialStore::is_ready)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnusableCredentials {
    /// The identity the certificate names.
    pub identity: Identity,
    /// Which end of the validity `now` is past.
    pub validity: OutsideValidity,
    /// The time the credentials were checked at, by the store's clock.
    pub now: SystemTime,
}

/// Which end of a chain's validity a moment is past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideValidity {
    /// The chain is not valid yet: a clock stepped back, or an issuer's
    /// runs ahead.
    NotYetValid {
        /// When the last certificate of the chain becomes valid.
        not_before: SystemTime,
    },
    /// The chain has expired, and no renewal replaced it.
    Expired {
        /// When the first certificate of the chain expired.
        not_after: SystemTime,
    },
}

impl UnusableCredentials {
    /// How a handshake refused for this is counted in
    /// `tls_handshake_failures_total`: `credentials_expired`, or, for a
    /// chain not valid yet, `credentials_not_yet_valid`.
    pub(crate) fn failure(&self) -> crate::metrics::HandshakeFailure {
        use crate::metrics::HandshakeFailure;
        match self.validity {
            OutsideValidity::Expired { .. } => HandshakeFailure::CredentialsExpired,
            OutsideValidity::NotYetValid { .. } => HandshakeFailure::CredentialsNotYetValid,
        }
    }
}

impl fmt::Display for UnusableCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = &self.identity;
        let now = Utc(self.now);
        match self.validity {
            OutsideValidity::Expired { not_after } => write!(
                f,
                "local identity certificate of {identity} expired at {} (notAfter; it is now \
                 {now}) and no renewal replaced it",
                Utc(not_after)
            ),
            OutsideValidity::NotYetValid { not_before } => write!(
                f,
                "local identity certificate of {identity} is not valid until {} (notBefore; it \
                 is now {now})",
                Utc(not_before)
            ),
        }
    }
}

impl std::error::Error for UnusableCredentials {}

impl From<UnusableCredentials> for CredentialError {
    fn from(unusable: UnusableCredentials) -> Self {
        match unusable.validity {
            OutsideValidity::NotYetValid { not_before } => Self::NotYetValid { not_before },
            OutsideValidity::Expired { not_after } => Self::Expired { not_after },
        }
    }
}

/// A moment as RFC 3339 UTC to the second (`2026-11-29T13:41:00Z`), the
/// way X.509 validity dates are read.
pub(crate) struct Utc(pub(crate) SystemTime);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(since) = self.0.duration_since(SystemTime::UNIX_EPOCH) else {
            return write!(f, "{:?}", self.0);
        };
        let secs = since.as_secs();
        let (days, time) = (secs / 86_400, secs % 86_400);
        // Days since 1970-01-01 to a civil date (Howard Hinnant's
        // algorithm, for days on or after the epoch).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            time / 3_600,
            time % 3_600 / 60,
            time % 60
        )
    }
}

/// `error` and its causes, each after a `: `, for a log line: the store
/// logs refusals, and the log is all an operator sees of a rotation the
/// watcher refused.
pub(crate) struct Causes<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// Why a credential update was rejected: the `reason` label of
/// `identity_cert_rejected_updates_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// A file could not be read.
    Unreadable,
    /// A file did not parse as a certificate, key or trust bundle.
    Malformed,
    /// The key does not belong to the certificate.
    KeyMismatch,
    /// The certificate names no identity.
    NoIdentity,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The chain does not verify against the trust bundle.
    Untrusted,
    /// The identity is in another trust domain.
    WrongTrustDomain,
    /// The identity is not the configured one.
    WrongIdentity,
    /// rustls refused the configuration.
    Config,
}

impl RejectReason {
    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::Malformed => "malformed",
            Self::KeyMismatch => "key_mismatch",
            Self::NoIdentity => "no_identity",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Untrusted => "untrusted",
            Self::WrongTrustDomain => "wrong_trust_domain",
            Self::WrongIdentity => "wrong_identity",
            Self::Config => "config",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{CredentialError, Utc};

    #[test]
    fn moments_show_as_rfc_3339_utc() {
        let at = |secs| Utc(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).to_string();
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_960_629), "2026-11-29T13:57:09Z");
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn validity_errors_say_when() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_960_629);
        assert_eq!(
            CredentialError::Expired { not_after: at }.to_string(),
            "certificate has expired (at 2026-11-29T13:57:09Z)"
        );
        assert_eq!(
            CredentialError::NotYetValid { not_before: at }.to_string(),
            "certificate is not valid yet (until 2026-11-29T13:57:09Z)"
        );
    }
}
