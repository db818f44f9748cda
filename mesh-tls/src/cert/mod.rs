//! What the mesh reads from an X.509 certificate: the identities its
//! subject alternative names carry, and when it is valid.
//!
//! A SPIFFE X.509-SVID carries its SPIFFE ID as a URI SAN, and exactly one
//! URI SAN in all: validators must reject an SVID with more than one, of any
//! scheme (SPIFFE X.509-SVID spec §2 and §5.2), since a second URI is a
//! second name that authorization might read. A URI SAN with the `spiffe`
//! scheme that is no valid SPIFFE ID makes a malformed SVID, which names
//! nothing: the DNS SANs beside it are not read in its place, or a
//! certificate whose SPIFFE ID the mesh cannot read would pass as the
//! DNS-style identity of whoever it also names. Linkerd's DNS-style
//! identities travel as DNS SANs. A certificate may carry other DNS names
//! beside its identity, such as `localhost` so that curl accepts it: DNS
//! names that are not valid identities are skipped, never an error. A DNS
//! SAN that spells a SPIFFE ID (`spiffe://...`) is such a name: SPIFFE IDs
//! are read from URI SANs alone, so a certificate cannot name one through
//! a SAN type a CA checks for DNS names, if it checks anything.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use mesh_core::{Identity, TrustDomain, identity::InvalidIdentity};
use rustls_pki_types::CertificateDer;
use x509_parser::{
    certificate::X509CertificateParser,
    extensions::{
        BasicConstraints, ExtendedKeyUsage, GeneralName, KeyUsage, SubjectAlternativeName,
    },
    nom::Parser,
    oid_registry::{
        OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    },
    prelude::FromDer,
};

/// The identities and validity window of one certificate.
#[derive(Clone, Debug)]
pub(crate) struct CertNames {
    /// SPIFFE IDs from URI SANs.
    uris: Vec<Identity>,
    /// How many URI SANs the certificate has, of any scheme.
    uri_sans: usize,
    /// The first URI SAN with the `spiffe` scheme (in any case) that is
    /// not a valid SPIFFE ID, and the rule it breaks.
    malformed_spiffe: Option<(String, InvalidIdentity)>,
    /// DNS-style identities from DNS SANs.
    dns: Vec<Identity>,
    /// Whether the key usage is a leaf's: `digitalSignature` without
    /// `keyCertSign` or `cRLSign`. A certificate without the extension
    /// passes only when it names no SPIFFE ID, since every SVID has one
    /// (SPIFFE X.509-SVID spec §4.3).
    leaf_usage: bool,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

impl CertNames {
    /// Parses `cert`.
    pub(crate) fn parse(cert: &CertificateDer<'_>) -> Result<Self, BadCertificate> {
        // Only the SAN and key usage extensions matter here: parsing them
        // alone, rather than every extension, halves the work on each
        // handshake.
        let (_, x509) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(cert.as_ref())
            .map_err(|_| BadCertificate)?;
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        let mut uri_sans = 0;
        let mut malformed_spiffe = None;
        let extension = |oid| x509.extensions().iter().find(|ext| ext.oid == oid);
        let san = extension(OID_X509_EXT_SUBJECT_ALT_NAME)
            .map(|ext| SubjectAlternativeName::from_der(ext.value))
            .transpose()
            .map_err(|_| BadCertificate)?;
        let key_usage = extension(OID_X509_EXT_KEY_USAGE)
            .map(|ext| KeyUsage::from_der(ext.value))
            .transpose()
            .map_err(|_| BadCertificate)?;
        for name in san.iter().flat_map(|(_, san)| san.general_names.iter()) {
            match name {
                GeneralName::URI(uri) => {
                    uri_sans += 1;
                    if has_spiffe_scheme(uri) {
                        match Identity::parse(uri) {
                            Ok(id) if id.is_spiffe() => uris.push(id),
                            // `Identity::parse` reads only a lowercase
                            // `spiffe://` as a SPIFFE ID.
                            Ok(_) => {
                                malformed_spiffe.get_or_insert_with(|| {
                                    ((*uri).to_owned(), InvalidIdentity::WrongScheme)
                                });
                            }
                            Err(why) => {
                                malformed_spiffe.get_or_insert_with(|| ((*uri).to_owned(), why));
                            }
                        }
                    }
                }
                GeneralName::DNSName(name) => {
                    // `Identity::parse` reads a `spiffe://` string as a
                    // SPIFFE ID, but a DNS SAN holds a DNS name: one
                    // spelling a SPIFFE ID is no valid DNS name, and must
                    // not prove the SPIFFE ID to a peer that expects it.
                    if let Ok(id) = Identity::parse(name)
                        && !id.is_spiffe()
                    {
                        dns.push(id);
                    }
                }
                _ => {}
            }
        }
        let leaf_usage = match key_usage {
            Some((_, ku)) => ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign(),
            None => uris.is_empty(),
        };
        let validity = x509.validity();
        Ok(Self {
            uris,
            uri_sans,
            malformed_spiffe,
            dns,
            leaf_usage,
            not_before: unix(validity.not_before.timestamp()),
            not_after: unix(validity.not_after.timestamp()),
        })
    }

    /// The certificate's identity: its one SPIFFE ID when that is its only
    /// URI SAN and names a workload (has a path), or, without a URI SAN of
    /// the `spiffe` scheme, its first DNS SAN that is a valid identity; and
    /// in either case only when the key usage is a leaf's.
    pub(crate) fn identity(&self) -> Result<&Identity, NoIdentity> {
        if self.malformed_spiffe.is_some() {
            return Err(NoIdentity::MalformedSpiffeId);
        }
        let id = match self.uris.as_slice() {
            [id] if self.uri_sans == 1 && id.path() == Some("") => {
                return Err(NoIdentity::TrustDomainOnly);
            }
            [id] if self.uri_sans == 1 => id,
            [] => self.dns.first().ok_or(NoIdentity::Missing)?,
            _ => return Err(NoIdentity::Ambiguous),
        };
        if !self.leaf_usage {
            return Err(NoIdentity::NotALeaf);
        }
        Ok(id)
    }

    /// The trust domain a signing certificate names: its one URI SAN, when
    /// that is a SPIFFE ID without a path (SPIFFE X.509-SVID spec §3.2).
    /// The CA reads it from the issuer it loads; nothing else does.
    #[cfg(feature = "ca")]
    pub(crate) fn signing_trust_domain(&self) -> Option<TrustDomain> {
        match self.uris.as_slice() {
            [id] if self.uri_sans == 1 && id.path() == Some("") => id.trust_domain(),
            _ => None,
        }
    }

    /// The trust domains of the SPIFFE IDs among the URI SANs, with or
    /// without a path: for a trust anchor, the trust domains it is the
    /// anchor of ([`AnchorDomains`](crate::verify::AnchorDomains)).
    pub(crate) fn spiffe_trust_domains(&self) -> Vec<TrustDomain> {
        self.uris
            .iter()
            .filter_map(Identity::trust_domain)
            .collect()
    }

    /// The first URI SAN with the `spiffe` scheme that is no valid SPIFFE
    /// ID, and the rule of the SPIFFE ID spec it breaks: for a trust
    /// anchor, a trust domain it claims but that cannot be read
    /// ([`AnchorDomains`](crate::verify::AnchorDomains)).
    pub(crate) fn malformed_spiffe_id(&self) -> Option<(&str, InvalidIdentity)> {
        self.malformed_spiffe
            .as_ref()
            .map(|(uri, why)| (uri.as_str(), *why))
    }

    /// Whether the certificate names `id`: as its one SPIFFE ID (see
    /// [`CertNames::identity`]) for a SPIFFE ID, or as a DNS SAN for a
    /// DNS-style identity. Either way the certificate must name an
    /// identity at all: a DNS SAN on a malformed SVID names nothing.
    pub(crate) fn names(&self, id: &Identity) -> bool {
        match self.identity() {
            Ok(identity) if id.is_spiffe() => identity == id,
            Ok(_) => self.dns.contains(id),
            Err(_) => false,
        }
    }
}

/// Whether `uri`'s scheme is `spiffe`. Schemes are case-insensitive (RFC
/// 3986 §3.1), so `SPIFFE://...` claims to be a SPIFFE ID too, and is a
/// malformed one, since a SPIFFE ID's scheme is lowercase.
fn has_spiffe_scheme(uri: &str) -> bool {
    uri.split_once(':')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("spiffe"))
}

/// Whether the certificate `der` may sign certificates by its key usage:
/// it has no key usage extension, or one that asserts `keyCertSign` (RFC
/// 5280 §4.2.1.3). A certificate that does not parse, or whose key usage
/// does not, may not.
pub(crate) fn may_sign_certificates(der: &[u8]) -> bool {
    let Ok((_, x509)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
    else {
        return false;
    };
    match x509
        .extensions()
        .iter()
        .find(|ext| ext.oid == OID_X509_EXT_KEY_USAGE)
    {
        None => true,
        Some(ext) => KeyUsage::from_der(ext.value).is_ok_and(|(_, ku)| ku.key_cert_sign()),
    }
}

/// Whether the certificate `der` leaves out `purpose`, server or client
/// authentication: it has an extended key usage extension that does not
/// name it, which webpki refuses on any certificate of a path (the
/// `anyExtendedKeyUsage` purpose, which webpki does not honour, does not
/// count). A certificate without the extension allows every purpose; one
/// that does not parse, or a purpose of another kind, is not known to
/// leave it out.
pub(crate) fn leaves_out_purpose(der: &[u8], purpose: &rustls::ExtendedKeyPurpose) -> bool {
    let Ok((_, x509)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
    else {
        return false;
    };
    let Some(ext) = x509
        .extensions()
        .iter()
        .find(|ext| ext.oid == OID_X509_EXT_EXTENDED_KEY_USAGE)
    else {
        return false;
    };
    let Ok((_, eku)) = ExtendedKeyUsage::from_der(ext.value) else {
        return false;
    };
    match purpose {
        rustls::ExtendedKeyPurpose::ServerAuth => !eku.server_auth,
        rustls::ExtendedKeyPurpose::ClientAuth => !eku.client_auth,
        rustls::ExtendedKeyPurpose::Other(_) => false,
    }
}

/// Whether the certificate `der` is a CA's: its basic constraints say `cA`
/// and it [may sign certificates](may_sign_certificates) by its key usage.
/// What a trust bundle must hold: webpki takes any certificate as an
/// anchor, and never looks at either.
pub(crate) fn is_ca_certificate(der: &[u8]) -> bool {
    let Ok((_, x509)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
    else {
        return false;
    };
    let ca = x509
        .extensions()
        .iter()
        .find(|ext| ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS)
        .is_some_and(|ext| BasicConstraints::from_der(ext.value).is_ok_and(|(_, bc)| bc.ca));
    ca && may_sign_certificates(der)
}

/// The names and dates of one certificate of a chain: what following a
/// path by name reads, here for a peer's chain and in
/// [`crate::creds`] for the local one.
pub(crate) struct Link {
    pub(crate) subject: Vec<u8>,
    pub(crate) issuer: Vec<u8>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

impl Link {
    /// `None` when `cert` is not DER X.509.
    pub(crate) fn parse(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, x509) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(cert.as_ref())
            .ok()?;
        let validity = x509.validity();
        Some(Self {
            subject: x509.subject().as_raw().to_vec(),
            issuer: x509.issuer().as_raw().to_vec(),
            not_before: unix(validity.not_before.timestamp()),
            not_after: unix(validity.not_after.timestamp()),
        })
    }
}

/// The subject of `cert` as RFC 4514 writes a distinguished name
/// (`CN=mesh trust anchor ...`), to tell a certificate of a bundle in an
/// error; `(empty subject)` or `(unreadable subject)` when there is none
/// to show.
pub(crate) fn subject_text(cert: &CertificateDer<'_>) -> String {
    let Ok((_, x509)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(cert.as_ref())
    else {
        return "(unreadable subject)".to_owned();
    };
    match x509.subject().to_string() {
        text if text.is_empty() => "(empty subject)".to_owned(),
        text => text,
    }
}

/// The DER subject names of `roots`, for [`path_validity`].
pub(crate) fn anchor_subjects(roots: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
    roots
        .iter()
        .filter_map(Link::parse)
        .map(|l| l.subject)
        .collect()
}

/// Whether a certificate of `chain` past its leaf bears the name of a
/// trust anchor (one of `anchor_subjects`) without being one of `roots`:
/// then the path to an anchor cannot be told by name. webpki tries the
/// anchor of that name first and, when its key did not sign the
/// certificate below (a root reissued with a new key under its old name,
/// whose certificate cross-signed by the old root the chain sends), builds
/// the path through that certificate instead, which must then be valid
/// too; only the signatures tell which. A copy of the anchor itself is no
/// such certificate.
pub(crate) fn names_an_anchor_it_is_not(
    chain: &[CertificateDer<'_>],
    anchor_subjects: &[Vec<u8>],
    roots: &[CertificateDer<'_>],
) -> bool {
    chain.iter().skip(1).any(|cert| {
        !roots.contains(cert)
            && Link::parse(cert).is_some_and(|link| anchor_subjects.contains(&link.subject))
    })
}

/// When the path from `chain`'s leaf to a trust anchor verifies: from the
/// latest `notBefore` of its certificates to the earliest `notAfter`.
/// `None` for an empty chain or a leaf that does not parse.
///
/// The path is found as webpki builds it, by name: from the leaf, to a
/// trust anchor (one of `anchor_subjects`) when one issued the current
/// certificate, else to the certificate of the chain that did. Anything
/// else a peer sends (the anchor itself, or an old cross-signature of it,
/// which names the anchor as its subject) is not on the path, and its
/// dates, which webpki never reads, do not count. That holds unless the
/// anchor's key did not sign the certificate below it, which the name
/// cannot tell: a chain for which [`names_an_anchor_it_is_not`] is
/// read from the search instead.
///
/// Of two certificates with the issuer's name, webpki passes over one that
/// is not valid at `now`, the time by the store's clock it verified the
/// chain at (an issuer's expired old certificate, left in the
/// chain beside the reissued one) and builds the path through another, so
/// one valid now is taken when there is one: otherwise a chain that
/// verifies would read as expired, refused as local credentials and its
/// connections closed right after the handshake.
pub(crate) fn path_validity(
    chain: &[CertificateDer<'_>],
    anchor_subjects: &[Vec<u8>],
    now: SystemTime,
) -> Option<(SystemTime, SystemTime)> {
    let (leaf, rest) = chain.split_first()?;
    let leaf = Link::parse(leaf)?;
    let mut rest: Vec<Link> = rest.iter().filter_map(Link::parse).collect();
    let mut window = (leaf.not_before, leaf.not_after);
    let mut issuer = leaf.issuer;
    while !anchor_subjects.contains(&issuer) {
        // Of two certificates with the issuer's name valid now (or, when
        // none is, of all), the one that expires first: a peer cannot
        // lengthen its connection by sending a second copy with later
        // dates, whichever webpki verified.
        let Some((at, _)) = rest
            .iter()
            .enumerate()
            .filter(|(_, l)| l.subject == issuer)
            .min_by_key(|(_, l)| (!(l.not_before <= now && now < l.not_after), l.not_after))
        else {
            break;
        };
        let next = rest.swap_remove(at);
        window = (window.0.max(next.not_before), window.1.min(next.not_after));
        issuer = next.issuer;
    }
    Some(window)
}

/// Whether `id` belongs to `trust_domain`.
///
/// A SPIFFE ID belongs when its authority is the trust domain. A DNS-style
/// name belongs when it ends with `.<trust domain>`, which is how Linkerd
/// names identities (`web.ns.serviceaccount.identity.linkerd.cluster.local`
/// in `cluster.local`); the CA enforces this when it issues, so the suffix
/// is meaningful for certificates it signed.
pub fn in_trust_domain(trust_domain: &TrustDomain, id: &Identity) -> bool {
    if id.is_spiffe() {
        return trust_domain.contains(id);
    }
    id.as_str()
        .strip_suffix(trust_domain.as_str())
        .is_some_and(|rest| rest.ends_with('.'))
}

fn unix(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// A certificate that is not valid DER X.509.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCertificate;

impl fmt::Display for BadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("certificate is not valid x.509")
    }
}

impl std::error::Error for BadCertificate {}

/// Why a certificate names no identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoIdentity {
    /// No URI SAN holds a SPIFFE ID and no DNS SAN a valid DNS-style
    /// identity.
    Missing,
    /// A URI SAN holds a SPIFFE ID, but it is not the only URI SAN.
    Ambiguous,
    /// A URI SAN has the `spiffe` scheme but is no valid SPIFFE ID (a
    /// trailing slash, a port, userinfo, a query, a fragment,
    /// percent-encoding, uppercase in the scheme or trust domain): a
    /// malformed SVID, which names nothing, not even a DNS SAN beside it.
    MalformedSpiffeId,
    /// The SPIFFE ID has no path: it names a trust domain, as its signing
    /// certificates do, not a workload (SPIFFE X.509-SVID spec §3.1).
    TrustDomainOnly,
    /// The certificate is no leaf SVID: its key usage lets it sign
    /// certificates or CRLs, or lacks `digitalSignature`, or a SPIFFE
    /// certificate has no key usage at all (SPIFFE X.509-SVID spec §4.3).
    NotALeaf,
}

impl fmt::Display for NoIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => {
                f.write_str("certificate names no identity in its subject alternative names")
            }
            Self::Ambiguous => {
                f.write_str("certificate names a spiffe id and another uri (an svid has one)")
            }
            Self::MalformedSpiffeId => {
                f.write_str("certificate's uri san has the spiffe scheme but is no valid spiffe id")
            }
            Self::NotALeaf => f.write_str(
                "certificate's key usage is not a leaf's (digitalSignature, not certificate signing)",
            ),
            Self::TrustDomainOnly => {
                f.write_str("certificate's spiffe id names a trust domain, not a workload")
            }
        }
    }
}

impl std::error::Error for NoIdentity {}

#[cfg(test)]
mod tests;
