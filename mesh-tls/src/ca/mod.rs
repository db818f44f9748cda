//! A small certificate authority for the mesh's identities.
//!
//! Production meshes get certificates from cert-manager, SPIRE or a
//! corporate CA. Development clusters, tests and the demo need one that
//! works out of the box, with the same shape: a long-lived **trust anchor**
//! that everyone trusts, an **issuer** (an intermediate CA the anchor
//! signs) that signs workload certificates, and short-lived **workload
//! certificates** naming one identity each. Keeping the anchor's key out of
//! daily use is the point of the intermediate: the issuer can be replaced
//! without touching any trust bundle.
//!
//! | certificate | lifetime | key | names |
//! |-------------|----------|-----|-------|
//! | trust anchor | about a year | ECDSA P-256 | URI SAN `spiffe://<trust domain>`; CN `mesh trust anchor <trust domain> <random tag>` |
//! | issuer | about a year | ECDSA P-256 | URI SAN `spiffe://<trust domain>`; CN `mesh issuer <trust domain> <random tag>` |
//! | workload | 24 h by default | ECDSA P-256 | the identity: URI SAN for a SPIFFE ID, DNS SAN for a DNS-style name |
//!
//! Workload certificates carry both the server and the client
//! authentication purposes, because a meshed workload is both. The CA
//! refuses a certificate's identity outside its trust domain, and any
//! other name that could be an identity ([`IssueRequest::with_dns_name`]):
//! as Linkerd's identity service, it signs no identity but the one asked
//! for, since a client expecting a DNS-style identity accepts a
//! certificate for any DNS name it carries. Only single-label names such
//! as `localhost`, which no identity can be, may be added, for tools that
//! check hostnames.
//!
//! # Validity and renewal
//!
//! A certificate issued now for a lifetime `ttl` is valid from
//! [`BACKDATE`] (a minute) before now until `ttl` after now, as the
//! issuers of Linkerd and SPIFFE do: the backdate lets peers whose clocks
//! run behind accept it at once, and is added to the lifetime rather than
//! taken out of it, so the certificate serves for the whole `ttl` asked
//! for. (Taken out, a ttl of a minute or less would be expired on issue,
//! and a short one would expire before its renewal.) A request with an
//! explicit [`not_before`](IssueRequest::not_before) is valid from then
//! for `ttl`. The trust anchor and issuer follow the same rule.
//!
//! "Now" is the system clock's, or the clock the CA is given
//! ([`with_time_provider`](CertificateAuthority::with_time_provider)); the
//! renewal loop reads the clock of the store it supplies, which checks
//! each certificate by that clock when it is put in service
//! ([`CredentialStore::with_time_provider`](crate::CredentialStore::with_time_provider)).
//!
//! No certificate outlives the issuer that signs it, nor an intermediate
//! above the issuer in its chain (`issuer.crt`), since it verifies only
//! while all of them are valid (Linkerd's CA likewise clamps to the first
//! expiry of its chain); nor the trust anchor that chain ends at
//! (`ca.crt`). webpki, and so the mesh's own peers, read no anchor's
//! dates, but OpenSSL (curl) and Go's crypto/x509 refuse a chain whose
//! root has expired, and a certificate for those clients must end with
//! the anchor too. [`issue`](CertificateAuthority::issue) refuses one that
//! would outlive either ([`CaError::OutlivesIssuer`],
//! [`CaError::OutlivesAnchor`]), and the renewal loop
//! ([`renew`](CertificateAuthority::renew), through
//! [`issue_within_issuer`](CertificateAuthority::issue_within_issuer))
//! shortens the lifetime in the last `ttl` of the issuer or the anchor so
//! that the certificate ends with the first of them to expire. Once the
//! anchor has expired the CA signs nothing ([`CaError::AnchorExpired`]),
//! as once the issuer has ([`CaError::IssuerExpired`]); a CA source
//! warns when it starts with an anchor that expires within its ttl.
//!
//! Renewal is scheduled from the certificate actually issued, never from
//! the ttl configured: at 70 % of the time it has left
//! ([`IssuedCertificate::renew_after`]). A lifetime is at least
//! [`MIN_LIFETIME`] (1 s); one renewed in a loop is at least
//! [`MIN_RENEWED_TTL`] (15 s), because the loop never waits less than
//! 10 s, and a shorter certificate would expire before it is replaced.
//!
//! Each file is written to a temporary file beside it, synced, renamed
//! over the old one, and its directory synced: readers never see half a
//! file, and a crash after a rotation never brings back the certificate it
//! replaced, or loses both. The file layout, as [`write_ca`] and [`issue`](fn@issue)
//! write it (keys mode 0600):
//!
//! ```text
//! <ca dir>/ca.crt       trust anchor certificate: the trust bundle
//! <ca dir>/ca.key       trust anchor key: keep it offline
//! <ca dir>/issuer.crt   issuer certificate
//! <ca dir>/issuer.key   issuer key
//! <out dir>/tls.crt     workload certificate, then the issuer certificate
//! <out dir>/tls.key     workload key
//! <out dir>/ca.crt      trust bundle (a copy of the trust anchor)
//! ```
//!
//! The output directory has the layout of a Kubernetes TLS secret written
//! by cert-manager, so [`CredentialFiles::in_dir`](crate::CredentialFiles::in_dir)
//! reads either.
//!
//! ```
//! use std::time::Duration;
//! use mesh_tls::ca::CertificateAuthority;
//!
//! let ca = CertificateAuthority::generate("example.org".parse()?)?;
//! let web = ca.issue(&"spiffe://example.org/ns/shop/sa/web".parse()?, Duration::from_secs(3600))?;
//! let creds = web.credentials()?;
//! assert_eq!(creds.identity().as_str(), "spiffe://example.org/ns/shop/sa/web");
//!
//! let other = "spiffe://other.org/ns/shop/sa/web".parse()?;
//! assert!(ca.issue(&other, Duration::from_secs(3600)).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;
mod error;
mod files;
mod issue;
mod renew;

use std::{
    fmt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use mesh_core::TrustDomain;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::time_provider::TimeProvider;

pub(crate) use self::renew::wait_until_due;
pub use self::{
    error::{CaError, InvalidCa, UntrustedIssuer},
    files::{
        CA_CERT_FILE, CA_KEY_FILE, ISSUER_CERT_FILE, ISSUER_KEY_FILE, issue, issue_with, write_ca,
    },
    issue::{IssueRequest, IssuedCertificate},
    renew::{MIN_RENEWED_TTL, renew_after},
};
use crate::cert::CertNames;

/// How long the trust anchor and the issuer live by default: 365 days.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// How long a workload certificate lives by default: 24 hours.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(86_400);

/// The longest lifetime the CA signs: 20 years.
pub const MAX_LIFETIME: Duration = Duration::from_secs(20 * 365 * 86_400);

/// The shortest lifetime the CA signs: 1 second, the resolution of X.509
/// validity dates.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// How far back a new certificate's `notBefore` is set, so that peers whose
/// clocks run slightly behind accept it at once: 60 seconds. It is added to
/// the lifetime, not taken out of it.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// Which input of a CA is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaInput {
    Anchor,
    Issuer,
    IssuerKey,
}

/// A trust anchor and an issuer. See the [module docs](self).
pub struct CertificateAuthority {
    trust_domain: TrustDomain,
    anchor_pem: String,
    /// Only known when this CA was generated here; a loaded CA issues
    /// without it.
    anchor_key_pem: Option<String>,
    issuer: Issuer<'static, KeyPair>,
    issuer_pem: String,
    issuer_not_before: SystemTime,
    issuer_not_after: SystemTime,
    /// When the trust anchor the issuer's chain verifies to expires.
    anchor_not_after: SystemTime,
    /// The clock issuing reads, when one was given
    /// ([`CertificateAuthority::with_time_provider`]); the system clock
    /// otherwise.
    time: Option<Arc<dyn TimeProvider>>,
    /// The file the issuer was read from ([`CertificateAuthority::load`]),
    /// named by the errors that blame it once loaded: its validity.
    issuer_file: Option<PathBuf>,
    /// The file the trust anchor was read from, named by the errors that
    /// blame it once loaded: its expiry.
    anchor_file: Option<PathBuf>,
}

impl CertificateAuthority {
    /// A new trust anchor and issuer for `trust_domain`, each living
    /// [`DEFAULT_CA_LIFETIME`].
    ///
    /// # Errors
    ///
    /// When key generation or signing fails.
    pub fn generate(trust_domain: TrustDomain) -> Result<Self, CaError> {
        Self::generate_with_lifetime(trust_domain, DEFAULT_CA_LIFETIME)
    }

    /// A new trust anchor and issuer for `trust_domain`, each living
    /// `lifetime`.
    ///
    /// # Errors
    ///
    /// [`CaError::InvalidLifetime`], or when key generation or signing
    /// fails.
    pub fn generate_with_lifetime(
        trust_domain: TrustDomain,
        lifetime: Duration,
    ) -> Result<Self, CaError> {
        let now = SystemTime::now();
        // Every CA names its two certificates apart from every other CA's:
        // webpki builds paths by name, so a chain from another mesh CA then
        // finds no issuer here (and fails as an unknown issuer) instead of
        // a same-named one whose signature does not verify, and a bundle
        // holding an old and a new anchor is searched by name, not by
        // trying each signature.
        let tag = random_tag()?;
        let ca_params = |name: &str, path_len: u8| -> Result<CertificateParams, CaError> {
            let mut params = CertificateParams::default();
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("{name} {trust_domain} {tag}"));
            params.subject_alt_names = vec![SanType::URI(trust_domain.id().as_str().try_into()?)];
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            set_validity(&mut params, now, None, lifetime)?;
            params.serial_number = Some(serial()?);
            Ok(params)
        };
        let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let anchor_params = ca_params("mesh trust anchor", 1)?;
        let anchor_cert = anchor_params.self_signed(&anchor_key)?;
        let (_, anchor_not_after) = validity_of(anchor_cert.der())?;
        let anchor_key_pem = anchor_key.serialize_pem();
        let anchor = Issuer::new(anchor_params, anchor_key);

        let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut issuer_params = ca_params("mesh issuer", 0)?;
        issuer_params.use_authority_key_identifier_extension = true;
        let issuer_cert = issuer_params.signed_by(&issuer_key, &anchor)?;
        let (issuer_not_before, issuer_not_after) = validity_of(issuer_cert.der())?;
        Ok(Self {
            trust_domain,
            anchor_pem: anchor_cert.pem(),
            anchor_key_pem: Some(anchor_key_pem),
            issuer_pem: issuer_cert.pem(),
            issuer: Issuer::new(issuer_params, issuer_key),
            issuer_not_before,
            issuer_not_after,
            anchor_not_after,
            time: None,
            issuer_file: None,
            anchor_file: None,
        })
    }

    /// A CA from PEM: the trust anchor's certificate, and the issuer's
    /// certificate and key. The trust domain is read from the issuer's URI
    /// SAN.
    ///
    /// # Errors
    ///
    /// [`CaError::InvalidCa`] when a certificate or the key does not parse,
    /// the issuer names no trust domain, its key is not the certificate's,
    /// or a certificate's PEM also holds a private key (it would be handed
    /// out with the certificate); [`CaError::IssuerNotTrusted`] when what it signs would
    /// not chain to the anchor; [`CaError::IssuerOutsideAnchorTrustDomain`]
    /// when it would, but the anchor names trust domains and not the
    /// issuer's, so that peers would refuse it;
    /// [`CaError::AnchorDomainUnreadable`] when an anchor claims a trust
    /// domain that cannot be read, which every credential store would
    /// refuse in the bundle; [`CaError::Certificate`] when rcgen cannot
    /// sign with the issuer.
    pub fn from_pem(anchor: &str, issuer: &str, issuer_key: &str) -> Result<Self, CaError> {
        Self::parse(anchor, issuer, issuer_key).map_err(|(_, error)| error)
    }

    /// [`CertificateAuthority::from_pem`], saying which input is at fault.
    fn parse(anchor: &str, issuer: &str, issuer_key: &str) -> Result<Self, (CaInput, CaError)> {
        use CaInput::{Anchor, Issuer as IssuerCert, IssuerKey};
        let invalid = |input, e| (input, CaError::InvalidCa(e));
        // Both texts are handed out as they are, in every workload's chain
        // and bundle: a key beside a certificate would go with it.
        for (input, pem) in [(Anchor, anchor), (IssuerCert, issuer)] {
            if holds_private_key(pem) {
                return Err(invalid(input, InvalidCa::KeyInCertificateFile));
            }
        }
        let issuer_der = rustls_pki_types::CertificateDer::from(
            pem_contents(issuer).ok_or(invalid(IssuerCert, InvalidCa::BadCertificate))?,
        );
        pem_contents(anchor).ok_or(invalid(Anchor, InvalidCa::BadCertificate))?;
        let names = CertNames::parse(&issuer_der)
            .map_err(|_| invalid(IssuerCert, InvalidCa::BadCertificate))?;
        let trust_domain = names
            .signing_trust_domain()
            .ok_or(invalid(IssuerCert, InvalidCa::NoTrustDomain))?;
        let key =
            KeyPair::from_pem(issuer_key).map_err(|_| invalid(IssuerKey, InvalidCa::BadKey))?;
        if !spki_matches(&issuer_der, &key) {
            return Err(invalid(IssuerKey, InvalidCa::KeyMismatch));
        }
        // Every certificate of `issuer.crt` goes out in each workload's
        // chain, and a path through an intermediate above the issuer
        // verifies only while it is valid too: the CA is valid, and signs
        // nothing that outlives it, only where all of them are, as
        // Linkerd's CA clamps each certificate to the first expiry of its
        // chain.
        let (issuer_not_before, issuer_not_after) =
            chain_validity(issuer).ok_or(invalid(IssuerCert, InvalidCa::BadCertificate))?;
        let mut ca = Self {
            trust_domain,
            anchor_pem: anchor.to_owned(),
            anchor_key_pem: None,
            issuer_pem: issuer.to_owned(),
            issuer: Issuer::from_ca_cert_der(&issuer_der, key)
                .map_err(|e| (IssuerCert, e.into()))?,
            issuer_not_before,
            issuer_not_after,
            // Read from the path the check below verifies.
            anchor_not_after: issuer_not_after,
            time: None,
            issuer_file: None,
            anchor_file: None,
        };
        ca.anchor_not_after = ca.check_issuer(issuer_not_before)?;
        Ok(ca)
    }

    /// The CA, telling the time by `time` rather than the system clock
    /// when it issues: the dates of the certificates it signs, and whether
    /// its issuer is valid and outlives them, are read from it.
    ///
    /// For tests that move the clock (past a renewal, or the issuer's
    /// expiry) without waiting, as [`CredentialStore::with_time_provider`]
    /// does for the store; the renewal loop
    /// ([`renew`](Self::renew)) reads the clock of the store it supplies.
    /// A clock that cannot tell the time (`current_time` returns `None`)
    /// is read as the system clock.
    ///
    /// [`CredentialStore::with_time_provider`]: crate::CredentialStore::with_time_provider
    #[must_use]
    pub fn with_time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time = Some(time);
        self
    }

    /// The time by the CA's clock ([`Self::with_time_provider`]), in whole
    /// seconds when it was given, as a [`TimeProvider`] tells it.
    pub(crate) fn now(&self) -> SystemTime {
        self.time
            .as_deref()
            .map_or_else(SystemTime::now, crate::creds::time_of)
    }

    /// The trust domain the CA issues for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The trust anchor certificate, PEM: the trust bundle.
    pub fn bundle_pem(&self) -> &str {
        &self.anchor_pem
    }

    /// The issuer certificate, PEM.
    pub fn issuer_pem(&self) -> &str {
        &self.issuer_pem
    }

    /// When the issuer expires, or an intermediate above it in its chain
    /// (`issuer.crt`) does first; no certificate it signs may outlive it.
    pub fn issuer_not_after(&self) -> SystemTime {
        self.issuer_not_after
    }

    /// When the trust anchor the issuer's chain verifies to expires (of
    /// several copies of it in `ca.crt`, with one name and key, the one
    /// that lasts longest); no certificate the CA signs may outlive it
    /// either, since OpenSSL (curl) and Go refuse a chain whose root has
    /// expired, though webpki never reads an anchor's dates.
    pub fn anchor_not_after(&self) -> SystemTime {
        self.anchor_not_after
    }

    /// Until when a certificate the CA signs may be valid: the first of
    /// [`issuer_not_after`](Self::issuer_not_after) and
    /// [`anchor_not_after`](Self::anchor_not_after), and the error for one
    /// that would end at `not_after`, after it.
    pub(crate) fn signs_until(&self, not_after: SystemTime) -> (SystemTime, CaError) {
        if self.anchor_not_after < self.issuer_not_after {
            let error = CaError::OutlivesAnchor {
                not_after,
                anchor_not_after: self.anchor_not_after,
            };
            (self.anchor_not_after, error)
        } else {
            let error = CaError::OutlivesIssuer {
                not_after,
                issuer_not_after: self.issuer_not_after,
            };
            (self.issuer_not_after, error)
        }
    }

    /// Refuses to sign with an issuer that has expired, or is not valid
    /// yet, at `now`, or under a trust anchor that has expired, saying so:
    /// every certificate it signed would fail to verify (for OpenSSL and
    /// Go, under an expired anchor), and the lifetime checks would blame
    /// the certificate asked for instead, or nothing would.
    ///
    /// Loaded from a directory, the error names the issuer's file, or the
    /// trust anchor's.
    pub(crate) fn check_issuer_valid(&self, now: SystemTime) -> Result<(), CaError> {
        let (error, file) = if now < self.issuer_not_before {
            let not_before = self.issuer_not_before;
            (CaError::IssuerNotYetValid { not_before }, &self.issuer_file)
        } else if now >= self.issuer_not_after {
            let not_after = self.issuer_not_after;
            (CaError::IssuerExpired { not_after }, &self.issuer_file)
        } else if now >= self.anchor_not_after {
            let not_after = self.anchor_not_after;
            (CaError::AnchorExpired { not_after }, &self.anchor_file)
        } else {
            return Ok(());
        };
        Err(match file {
            Some(path) => CaError::InFile {
                path: path.clone(),
                source: Box::new(error),
            },
            None => error,
        })
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("issuer_not_after", &self.issuer_not_after)
            .field("anchor_not_after", &self.anchor_not_after)
            .finish_non_exhaustive()
    }
}

/// Sets `params`' validity and returns it as `(notBefore, notAfter)`: from
/// `start` to `lifetime` after it when `start` is given, and otherwise
/// from [`BACKDATE`] before `now` to `lifetime` after `now`, so that the
/// certificate serves its whole lifetime from issue. See
/// [the validity rule](self#validity-and-renewal).
fn set_validity(
    params: &mut CertificateParams,
    now: SystemTime,
    start: Option<SystemTime>,
    lifetime: Duration,
) -> Result<(SystemTime, SystemTime), CaError> {
    /// The last second X.509's GeneralizedTime (and rcgen) can encode:
    /// 9999-12-31T23:59:59Z.
    const MAX_UNIX: u64 = 253_402_300_799;
    if lifetime < MIN_LIFETIME || lifetime > MAX_LIFETIME {
        return Err(CaError::InvalidLifetime(lifetime));
    }
    let invalid = || CaError::InvalidLifetime(lifetime);
    let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).ok();
    let (not_before, not_after) = match start {
        Some(start) => {
            let not_before = since_epoch(start).ok_or_else(invalid)?;
            (not_before, not_before.checked_add(lifetime))
        }
        None => {
            let now = since_epoch(now).ok_or_else(invalid)?;
            let not_before = now.checked_sub(BACKDATE).ok_or_else(invalid)?;
            (not_before, now.checked_add(lifetime))
        }
    };
    let not_after = not_after.ok_or_else(invalid)?;
    if not_after.as_secs() > MAX_UNIX {
        return Err(invalid());
    }
    // Whole seconds, rounded down: X.509 validity has no fractions, and a
    // certificate must not end after what bounds it (its issuer).
    let not_before = Duration::from_secs(not_before.as_secs());
    let not_after = Duration::from_secs(not_after.as_secs());
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + not_before;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + not_after;
    Ok((
        SystemTime::UNIX_EPOCH + not_before,
        SystemTime::UNIX_EPOCH + not_after,
    ))
}

/// A random, positive 128-bit serial number (RFC 5280 §4.1.2.2 allows up
/// to 20 octets).
fn serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    crate::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CaError::Certificate(rcgen::Error::RingUnspecified))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Sixteen random hex digits, to tell one generated CA's names from
/// another's.
fn random_tag() -> Result<String, CaError> {
    let mut bytes = [0u8; 8];
    crate::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CaError::Certificate(rcgen::Error::RingUnspecified))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn validity_of(
    der: &rustls_pki_types::CertificateDer<'_>,
) -> Result<(SystemTime, SystemTime), CaError> {
    CertNames::parse(der)
        .map(|names| (names.not_before, names.not_after))
        .map_err(|_| CaError::InvalidCa(InvalidCa::BadCertificate))
}

/// Where every certificate of the chain in `pem` is valid: from the
/// latest `notBefore` to the earliest `notAfter`. `None` when a
/// certificate does not parse.
fn chain_validity(pem: &str) -> Option<(SystemTime, SystemTime)> {
    use rustls_pki_types::pem::PemObject;
    let mut validity: Option<(SystemTime, SystemTime)> = None;
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let names = CertNames::parse(&der.ok()?).ok()?;
        validity = Some(match validity {
            None => (names.not_before, names.not_after),
            Some((from, until)) => (from.max(names.not_before), until.min(names.not_after)),
        });
    }
    validity
}

/// The DER contents of the first PEM block in `pem`.
fn pem_contents(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

/// Whether `pem` holds a private key section of any kind (`PRIVATE KEY`,
/// `EC PRIVATE KEY`, `RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`).
fn holds_private_key(pem: &str) -> bool {
    pem.lines().any(|line| {
        let line = line.trim();
        line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
    })
}

/// Whether `key` is the key certified by `cert`.
fn spki_matches(cert: &rustls_pki_types::CertificateDer<'_>, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
        .is_ok_and(|(_, x509)| x509.public_key().raw == key.subject_public_key_info().as_slice())
}
