use std::{
    fmt, io,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use mesh_core::{Identity, TrustDomain};

use crate::creds::{CredentialError, RejectReason, UnreadableAnchorDomain, Utc};

/// Why the CA could not create, load or issue.
#[derive(Debug)]
#[non_exhaustive]
pub enum CaError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system returned.
        source: io::Error,
    },
    /// A CA already exists there; replacing it would invalidate every
    /// certificate it issued.
    AlreadyExists(PathBuf),
    /// rcgen could not build or parse a certificate or key.
    Certificate(rcgen::Error),
    /// The identity is outside the CA's trust domain.
    OutsideTrustDomain {
        /// The identity asked for.
        identity: Identity,
        /// The CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// The identity is a SPIFFE ID without a path, which names a trust
    /// domain rather than a workload: an X.509-SVID leaf's ID has a
    /// non-root path (SPIFFE X.509-SVID spec §3.1). Or it is a DNS-style
    /// identity spelling the CA's trust domain itself, which no workload
    /// is either.
    NoWorkloadPath(Identity),
    /// A lifetime shorter than [`MIN_LIFETIME`](super::MIN_LIFETIME) or
    /// longer than [`MAX_LIFETIME`](super::MAX_LIFETIME), or a validity
    /// window outside what X.509 can encode.
    InvalidLifetime(Duration),
    /// A ttl the renewal loop refuses: too short for it to replace each
    /// certificate before it expires, or longer than the longest lifetime
    /// the CA signs.
    UnrenewableTtl {
        /// The ttl asked for.
        ttl: Duration,
        /// The shortest ttl renewed in time,
        /// [`MIN_RENEWED_TTL`](super::MIN_RENEWED_TTL).
        min: Duration,
        /// The longest lifetime signed, [`MAX_LIFETIME`](super::MAX_LIFETIME).
        max: Duration,
    },
    /// An extra DNS name of an [`IssueRequest`](super::IssueRequest) is no
    /// host name (letters, digits, `-` and `_` in dot-separated labels, the
    /// last not numeric, no final dot), optionally under a `*.` wildcard.
    InvalidDnsName(String),
    /// An extra DNS name of an [`IssueRequest`](super::IssueRequest) could
    /// be an identity (it has more than one label) and is not the
    /// identity's own: a client expecting a DNS-style identity accepts a
    /// certificate for any DNS name it carries.
    ExtraDnsName {
        /// The name asked for.
        name: String,
        /// The identity the certificate names.
        identity: Identity,
    },
    /// The certificate would outlive the issuer that signs it: a ttl that
    /// ends by `issuer_not_after` would do, or the CA needs a new issuer.
    OutlivesIssuer {
        /// When the certificate would expire.
        not_after: SystemTime,
        /// When the issuer expires, or an intermediate above it in its
        /// chain does first.
        issuer_not_after: SystemTime,
    },
    /// The certificate would outlive the trust anchor its issuer chains
    /// to. webpki reads no anchor's dates, but OpenSSL (curl) and Go
    /// refuse a chain whose root has expired: a ttl that ends by
    /// `anchor_not_after` would do, or the CA needs a new trust anchor.
    OutlivesAnchor {
        /// When the certificate would expire.
        not_after: SystemTime,
        /// When the trust anchor expires.
        anchor_not_after: SystemTime,
    },
    /// The trust anchor the issuer chains to (`ca.crt`) has expired:
    /// OpenSSL (curl) and Go refuse every chain to it, though the mesh's
    /// own peers, which read no anchor's dates, would not. The CA needs a
    /// new trust anchor, and every workload its bundle.
    AnchorExpired {
        /// When the trust anchor expired.
        not_after: SystemTime,
    },
    /// The issuer, or an intermediate above it in its chain
    /// (`issuer.crt`), has expired: nothing it signs verifies any more.
    /// The CA needs a new issuer.
    IssuerExpired {
        /// When the issuer expired.
        not_after: SystemTime,
    },
    /// The issuer, or an intermediate above it in its chain, is not valid
    /// yet: it was made (or renewed) on a clock running ahead of this one,
    /// and nothing it signs verifies before then.
    IssuerNotYetValid {
        /// When the issuer becomes valid.
        not_before: SystemTime,
    },
    /// The CA files are inconsistent.
    InvalidCa(InvalidCa),
    /// What the issuer signs would not chain to the trust anchor: the
    /// anchor did not sign the issuer, or the issuer may not sign
    /// certificates (no CA basic constraints, no `keyCertSign`, a path
    /// length that is used up), or an extended key usage on the path
    /// leaves out server or client authentication, both of which a
    /// workload certificate serves. Its source says which.
    IssuerNotTrusted(UntrustedIssuer),
    /// The issuer's trust domain is not one its trust anchor names. An
    /// anchor that names trust domains (URI SANs `spiffe://<trust domain>`)
    /// vouches only for their SPIFFE IDs, so every certificate the issuer
    /// signed would be refused by credential stores and peers (see [what a
    /// certificate proves](crate::connect#what-a-certificate-proves)).
    IssuerOutsideAnchorTrustDomain {
        /// The issuer's trust domain, which the CA issues for.
        issuer: TrustDomain,
        /// The trust domains the trust anchor names.
        anchor: Vec<TrustDomain>,
    },
    /// A trust anchor certificate (`ca.crt`) claims a trust domain that
    /// cannot be read: a URI SAN of the `spiffe` scheme that is no valid
    /// SPIFFE ID, or subject alternative names that do not parse. Every
    /// credential store refuses such a bundle
    /// ([`CredentialError::AnchorDomainUnreadable`]), so the CA that hands
    /// it out is refused where it can be named.
    AnchorDomainUnreadable(UnreadableAnchorDomain),
    /// The issued credentials failed their own checks.
    Credentials(CredentialError),
    /// A file of a CA directory was refused: which, and why.
    InFile {
        /// The file at fault.
        path: PathBuf,
        /// Why it was refused.
        source: Box<CaError>,
    },
}

/// What is wrong with a CA's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidCa {
    /// The issuer certificate names no SPIFFE trust domain.
    NoTrustDomain,
    /// The issuer's key does not belong to the issuer certificate.
    KeyMismatch,
    /// A certificate is not valid X.509.
    BadCertificate,
    /// The issuer key is not a private key rcgen can sign with.
    BadKey,
    /// A trust anchor certificate is not a CA's (basic constraints without
    /// `cA`, or a key usage without `keyCertSign`): a trust bundle holding
    /// it is refused by every credential store.
    AnchorNotCa,
    /// A certificate file (`issuer.crt`, `ca.crt`) also holds a private
    /// key. Both files are copied into every workload's credentials, which
    /// are readable by all, so the key would be handed out with them.
    KeyInCertificateFile,
    /// The trust anchor's path length constraint allows fewer CA
    /// certificates below it than the issuer's chain puts there. webpki
    /// reads no constraint of a trust anchor, so the mesh would accept
    /// what the issuer signs, but OpenSSL and Go's crypto/x509 refuse it.
    AnchorPathLength {
        /// How many CA certificates the anchor allows below it.
        allows: u32,
        /// How many the issuer's chain (`issuer.crt`) puts below it.
        needs: usize,
    },
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, .. } => write!(f, "cannot access {}", path.display()),
            Self::AlreadyExists(path) => write!(f, "a ca already exists at {}", path.display()),
            Self::Certificate(_) => f.write_str("cannot build the certificate"),
            Self::OutsideTrustDomain {
                identity,
                trust_domain,
            } => write!(
                f,
                "identity {identity} is outside the ca's trust domain {trust_domain}"
            ),
            Self::NoWorkloadPath(identity) if identity.is_spiffe() => write!(
                f,
                "spiffe id {identity} names a trust domain, not a workload"
            ),
            Self::NoWorkloadPath(identity) => write!(
                f,
                "identity {identity} is the name of the trust domain, not a workload"
            ),
            Self::InvalidLifetime(d) => write!(
                f,
                "invalid certificate lifetime {}: allowed from {} to {}, within what x.509 can \
                 encode",
                Span(*d),
                Span(super::MIN_LIFETIME),
                Span(super::MAX_LIFETIME)
            ),
            Self::UnrenewableTtl { ttl, min, max } if ttl > max => write!(
                f,
                "certificate ttl {} is too long, longer than any certificate the ca signs: \
                 allowed from {} to {}",
                Span(*ttl),
                Span(*min),
                Span(*max)
            ),
            Self::UnrenewableTtl { ttl, min, max } => write!(
                f,
                "certificate ttl {} is too short to renew before it expires: allowed from {} to \
                 {}",
                Span(*ttl),
                Span(*min),
                Span(*max)
            ),
            Self::InvalidDnsName(name) => write!(
                f,
                "extra dns name {name:?} is not a host name (or a *. wildcard over one)"
            ),
            Self::ExtraDnsName { name, identity } => write!(
                f,
                "extra dns name {name:?} refused: beside its identity, {identity}, a certificate \
                 names only single-label hosts such as localhost, since clients expecting a \
                 dns-style identity accept any dns name it carries"
            ),
            Self::OutlivesIssuer {
                not_after,
                issuer_not_after,
            } => write!(
                f,
                "certificate would end at {}, after its issuer, which expires at {}",
                Utc(*not_after),
                Utc(*issuer_not_after)
            ),
            Self::OutlivesAnchor {
                not_after,
                anchor_not_after,
            } => write!(
                f,
                "certificate would end at {}, after the trust anchor, which expires at {}: \
                 openssl and go refuse a chain whose root has expired",
                Utc(*not_after),
                Utc(*anchor_not_after)
            ),
            Self::AnchorExpired { not_after } => write!(
                f,
                "the ca's trust anchor expired at {}: openssl and go refuse every chain to it, so \
                 the ca signs nothing more until it has a new trust anchor",
                Utc(*not_after)
            ),
            Self::IssuerExpired { not_after } => write!(
                f,
                "the ca's issuer chain expired at {}: it can sign no certificate that verifies",
                Utc(*not_after)
            ),
            Self::IssuerNotYetValid { not_before } => write!(
                f,
                "the ca's issuer chain is not valid until {}: nothing it signs verifies before then \
                 (is a clock running ahead?)",
                Utc(*not_before)
            ),
            Self::InvalidCa(e) => write!(f, "invalid ca: {e}"),
            Self::IssuerNotTrusted(_) => {
                f.write_str("invalid ca: the trust anchor does not vouch for what the issuer signs")
            }
            Self::IssuerOutsideAnchorTrustDomain { issuer, anchor } => {
                write!(f, "invalid ca: the issuer's trust domain {issuer} is ")?;
                match anchor.as_slice() {
                    [] => f.write_str("not one its trust anchor names")?,
                    [one] => write!(f, "not its trust anchor's, {one}")?,
                    many => {
                        f.write_str("none of those its trust anchor names, ")?;
                        for (i, td) in many.iter().enumerate() {
                            match i {
                                0 => {}
                                i if i + 1 == many.len() => f.write_str(" and ")?,
                                _ => f.write_str(", ")?,
                            }
                            write!(f, "{td}")?;
                        }
                    }
                }
                f.write_str(
                    ": the anchor vouches only for identities of the trust domains it names, so \
                     every certificate the issuer signs would be refused",
                )
            }
            Self::AnchorDomainUnreadable(unreadable) => {
                write!(f, "invalid ca: {unreadable}")
            }
            Self::Credentials(_) => f.write_str("issued credentials are unusable"),
            Self::InFile { path, .. } => write!(f, "refused ca file {}", path.display()),
        }
    }
}

impl CaError {
    /// The bounded reason a credential store gives a CA directory it
    /// refuses at a reload, for `identity_cert_rejected_updates_total`: the
    /// reason the store gives the same fault in credential files (a file
    /// that cannot be read is `unreadable`, one that does not parse is
    /// `malformed`, an issuer outside its validity is `expired` or
    /// `not_yet_valid`, a trust anchor that has expired is `expired`, an
    /// issuer the trust anchor does not vouch for is `untrusted`, an issuer of another trust domain than the identity
    /// renewed, [`CaError::OutsideTrustDomain`], is `wrong_trust_domain`),
    /// so that one alert covers both sources.
    ///
    /// `None` for any other error about what the CA was asked (a lifetime,
    /// a name), which no CA directory causes.
    pub fn reason(&self) -> Option<RejectReason> {
        Some(match self {
            Self::Io { .. } => RejectReason::Unreadable,
            Self::Certificate(_) => RejectReason::Malformed,
            Self::IssuerExpired { .. } | Self::AnchorExpired { .. } => RejectReason::Expired,
            Self::AnchorDomainUnreadable(_) => RejectReason::Malformed,
            Self::IssuerNotYetValid { .. } => RejectReason::NotYetValid,
            Self::InvalidCa(invalid) => match invalid {
                InvalidCa::NoTrustDomain => RejectReason::NoIdentity,
                InvalidCa::KeyMismatch => RejectReason::KeyMismatch,
                InvalidCa::BadCertificate
                | InvalidCa::BadKey
                | InvalidCa::AnchorNotCa
                | InvalidCa::KeyInCertificateFile => RejectReason::Malformed,
                InvalidCa::AnchorPathLength { .. } => RejectReason::Untrusted,
            },
            Self::IssuerNotTrusted(_) | Self::IssuerOutsideAnchorTrustDomain { .. } => {
                RejectReason::Untrusted
            }
            // A CA of another trust domain than the identity renewed.
            Self::OutsideTrustDomain { .. } => RejectReason::WrongTrustDomain,
            Self::Credentials(error) => error.reason(),
            Self::InFile { source, .. } => return source.reason(),
            Self::AlreadyExists(_)
            | Self::NoWorkloadPath(_)
            | Self::InvalidLifetime(_)
            | Self::UnrenewableTtl { .. }
            | Self::InvalidDnsName(_)
            | Self::ExtraDnsName { .. }
            | Self::OutlivesIssuer { .. }
            | Self::OutlivesAnchor { .. } => return None,
        })
    }
}

/// A duration in its largest whole unit (`15s`, `2m`, `7300d`), or as
/// `Debug` shows it when it has a fraction of a second (`500ms`).
struct Span(Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() != 0 || secs == 0 {
            return write!(f, "{:?}", self.0);
        }
        match [(86_400, "d"), (3_600, "h"), (60, "m")]
            .into_iter()
            .find(|(unit, _)| secs.is_multiple_of(*unit))
        {
            Some((unit, suffix)) => write!(f, "{}{suffix}", secs / unit),
            None => write!(f, "{secs}s"),
        }
    }
}

impl fmt::Display for InvalidCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoTrustDomain => "issuer certificate names no trust domain",
            Self::KeyMismatch => "issuer key does not match the issuer certificate",
            Self::BadCertificate => "certificate is not valid x.509",
            Self::BadKey => "issuer key is not a usable private key",
            Self::AnchorNotCa => "the trust anchor certificate is not a ca certificate",
            Self::KeyInCertificateFile => {
                "the certificate file also holds a private key, which would be copied into every \
                 workload's credentials with the certificate"
            }
            Self::AnchorPathLength { allows, needs } => {
                return write!(
                    f,
                    "the trust anchor's path length constraint allows {allows} ca certificates \
                     below it, but the issuer's chain puts {needs} there: openssl and go refuse \
                     every certificate the issuer signs"
                );
            }
        })
    }
}

/// Why a certificate the issuer signs does not verify against the trust
/// anchor, as webpki (or the issuer key usage check on top of it) refused
/// the path: the fix differs with each, so the error names it.
#[derive(Clone, Debug)]
pub struct UntrustedIssuer {
    /// The purpose the certificate was verified for.
    purpose: &'static str,
    /// Why the path was refused.
    refused: crate::verify::ChainRefused,
}

impl UntrustedIssuer {
    pub(super) fn new(purpose: &'static str, refused: crate::verify::ChainRefused) -> Self {
        Self { purpose, refused }
    }
}

impl fmt::Display for UntrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a certificate it signs does not verify for {}: {}",
            self.purpose, self.refused
        )
    }
}

impl std::error::Error for UntrustedIssuer {}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Certificate(e) => Some(e),
            Self::Credentials(e) => Some(e),
            Self::IssuerNotTrusted(e) => Some(e),
            Self::InFile { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_outliving_its_issuer_says_both_ends() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let error = CaError::OutlivesIssuer {
            not_after: at(1_795_960_629),
            issuer_not_after: at(1_795_950_000),
        };
        assert_eq!(
            error.to_string(),
            "certificate would end at 2026-11-29T13:57:09Z, after its issuer, which expires at \
             2026-11-29T11:00:00Z"
        );
    }

    /// A CA directory refused at a reload is counted under the reason the
    /// store gives the same fault in credential files, through the file
    /// it names.
    #[test]
    fn a_refused_ca_file_is_counted_under_the_credential_files_reason() {
        let in_file = |source| CaError::InFile {
            path: PathBuf::from("/ca/issuer.crt"),
            source: Box::new(source),
        };
        let reason = |error: CaError| error.reason().map(RejectReason::as_label);
        let io = || io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(
            reason(CaError::Io {
                path: PathBuf::from("/ca/ca.crt"),
                source: io()
            }),
            Some("unreadable")
        );
        for (invalid, label) in [
            (InvalidCa::BadCertificate, "malformed"),
            (InvalidCa::BadKey, "malformed"),
            (InvalidCa::KeyInCertificateFile, "malformed"),
            (InvalidCa::AnchorNotCa, "malformed"),
            (InvalidCa::KeyMismatch, "key_mismatch"),
            (InvalidCa::NoTrustDomain, "no_identity"),
            (
                InvalidCa::AnchorPathLength {
                    allows: 0,
                    needs: 1,
                },
                "untrusted",
            ),
        ] {
            assert_eq!(reason(in_file(CaError::InvalidCa(invalid))), Some(label));
        }
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(
            reason(in_file(CaError::IssuerExpired { not_after: at })),
            Some("expired")
        );
        assert_eq!(
            reason(in_file(CaError::IssuerNotYetValid { not_before: at })),
            Some("not_yet_valid")
        );
        assert_eq!(
            reason(CaError::InvalidLifetime(Duration::ZERO)),
            None,
            "no ca directory causes it"
        );
    }

    #[test]
    fn spans_show_their_largest_whole_unit() {
        let shown = |secs| Span(Duration::from_secs(secs)).to_string();
        assert_eq!(shown(15), "15s");
        assert_eq!(shown(120), "2m");
        assert_eq!(shown(3 * 3_600), "3h");
        assert_eq!(shown(20 * 365 * 86_400), "7300d");
        assert_eq!(shown(90), "90s");
        assert_eq!(Span(Duration::from_millis(500)).to_string(), "500ms");
    }
}
