//! A workload's credentials: its certificate chain, private key and trust
//! bundle, checked before the mesh serves them.
//!
//! Credentials arrive from files that other software writes (cert-manager,
//! SPIRE's helper, the mesh's own CA) or from code that pushes them in. A
//! half-written file, a key from the previous rotation or a certificate for
//! the wrong workload must never reach a handshake, so everything that can
//! be checked is checked here, once, before the credentials are used:
//! parsing, that the key belongs to the certificate, that the certificate
//! names an identity, that the bundle holds CA certificates only, and (in
//! [`Credentials::check`], since it depends on the clock) that it is valid
//! now and chains to the bundle.

mod error;
mod files;
mod validity;

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use mesh_core::Identity;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject};

pub(crate) use self::error::{Causes, Utc};
pub(crate) use self::files::FileContents;
use self::validity::{At, ChainValidity};
pub use self::{
    error::{
        AnchorDomainProblem, CredentialError, OutsideValidity, RejectReason,
        UnreadableAnchorDomain, UnusableCredentials,
    },
    files::{BUNDLE_FILE, CERT_FILE, CredentialFiles, KEY_FILE, MAX_FILE_SIZE},
};
use crate::{
    cert::{CertNames, Link},
    verify::AnchorDomains,
};

/// A checked certificate chain, private key and trust bundle.
///
/// Cloning is cheap: the key and chain are shared.
#[derive(Clone)]
pub struct Credentials {
    identity: Identity,
    key: Arc<CertifiedKey>,
    roots: Arc<[CertificateDer<'static>]>,
    not_before: SystemTime,
    not_after: SystemTime,
    /// The subject names of the trust anchors.
    anchor_subjects: Arc<[Vec<u8>]>,
    /// When the chain verifies: the spans in which some path to a trust
    /// anchor has every certificate valid, from the latest `notBefore` of
    /// its certificates to the earliest `notAfter` (the leaf's, or an
    /// intermediate's that comes first).
    validity: Arc<ChainValidity>,
    /// The trust domains each trust anchor vouches for.
    anchor_domains: Arc<AnchorDomains>,
}

impl Credentials {
    /// Parses PEM: `chain` holds the workload certificate first, then any
    /// intermediates; `key` holds its private key (PKCS#8, SEC1 or PKCS#1);
    /// `bundle` holds the trust anchors.
    ///
    /// # Errors
    ///
    /// See [`Credentials::from_der`]; also [`CredentialError::Pem`] when a
    /// file is not PEM.
    pub fn from_pem(chain: &[u8], key: &[u8], bundle: &[u8]) -> Result<Self, CredentialError> {
        let (chain, key, roots) = parse_pem(chain, key, bundle).map_err(|(_, e)| e)?;
        Self::from_der(chain, key, roots)
    }

    /// Builds credentials from DER.
    ///
    /// # Errors
    ///
    /// [`CredentialError::NoCertificate`] or [`CredentialError::EmptyBundle`]
    /// when a list is empty; [`CredentialError::BadKey`] when the provider
    /// cannot sign with the key; [`CredentialError::KeyMismatch`] when the
    /// key is not the certificate's; [`CredentialError::BadCertificate`],
    /// [`CredentialError::BadTrustAnchor`] or [`CredentialError::NoIdentity`]
    /// when a certificate is unusable; [`CredentialError::ChainOutOfOrder`]
    /// when the chain starts with a CA's certificate and a workload's
    /// comes later; [`CredentialError::AnchorNotCa`]
    /// when a bundle certificate is not a CA's;
    /// [`CredentialError::AnchorDomainUnreadable`] when one claims a
    /// trust domain that cannot be read (a malformed `spiffe://` URI SAN).
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CredentialError> {
        let leaf = chain.first().ok_or(CredentialError::NoCertificate)?;
        let names = CertNames::parse(leaf).map_err(|_| CredentialError::BadCertificate)?;
        // Every certificate must parse as peers parse it (webpki is
        // stricter than x509-parser, refusing a repeated extension, say),
        // before the key is matched against the leaf: otherwise the key
        // file takes the blame for a certificate's fault. An intermediate
        // that is not a certificate would not stop the chain from verifying
        // (path building skips it), but every peer would be sent it: a
        // damaged file is refused, not half served.
        for cert in &chain {
            webpki::EndEntityCert::try_from(cert).map_err(|_| CredentialError::BadCertificate)?;
        }
        let anchor_subjects: Arc<[Vec<u8>]> = crate::cert::anchor_subjects(&roots).into();
        // Read before the identity, as a leaf whose dates do not parse is
        // no certificate; the paths are checked once the anchors are known.
        if ChainValidity::of(&chain, &anchor_subjects, |_, _| false).is_none() {
            return Err(CredentialError::BadCertificate);
        }
        // Concatenated in the wrong order, a chain starts with the issuer:
        // said so, rather than that the issuer names no workload.
        if crate::cert::is_ca_certificate(leaf)
            && let Some(at) = chain
                .iter()
                .position(|cert| !crate::cert::is_ca_certificate(cert))
        {
            return Err(CredentialError::ChainOutOfOrder {
                workload_at: at + 1,
            });
        }
        let identity = names
            .identity()
            .map_err(CredentialError::NoIdentity)?
            .clone();
        if roots.is_empty() {
            return Err(CredentialError::EmptyBundle);
        }
        for (at, root) in roots.iter().enumerate() {
            let position = at + 1;
            webpki::anchor_from_trusted_cert(root)
                .map_err(|source| CredentialError::BadTrustAnchor { position, source })?;
            if !crate::cert::is_ca_certificate(root) {
                return Err(CredentialError::AnchorNotCa { position });
            }
        }
        let anchor_domains =
            Arc::new(AnchorDomains::new(&roots).map_err(CredentialError::AnchorDomainUnreadable)?);
        let verifies = |intermediates: &[CertificateDer<'_>], at: SystemTime| {
            verify_chain(leaf, intermediates, &identity, &anchor_domains, at).is_ok()
        };
        let validity = ChainValidity::of(&chain, &anchor_subjects, verifies)
            .ok_or(CredentialError::BadCertificate)?;
        let signing_key = crate::provider()
            .key_provider
            .load_private_key(key)
            .map_err(CredentialError::BadKey)?;
        let key = CertifiedKey::new(chain, signing_key);
        match key.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(CredentialError::KeyMismatch);
            }
            Err(e) => return Err(CredentialError::BadKey(e)),
        }
        Ok(Self {
            identity,
            key: Arc::new(key),
            roots: roots.into(),
            not_before: names.not_before,
            not_after: names.not_after,
            anchor_subjects,
            validity: Arc::new(validity),
            anchor_domains,
        })
    }

    /// Checks what depends on the clock: that every certificate of the
    /// chain is valid at `now`, and that the chain verifies against the
    /// trust bundle at `now` for both server and client authentication (a
    /// mesh certificate serves both ends of a connection), as peers verify
    /// it: the key usage of its issuers included, and, for a SPIFFE ID,
    /// through an anchor of its trust domain when the anchors name theirs
    /// (see [what a certificate proves](crate::connect#what-a-certificate-proves)).
    ///
    /// An intermediate that is not valid yet, or has expired, makes the
    /// chain so, as the workload certificate would, unless another path
    /// to the bundle verifies then ([`Credentials::usable_at`]): a store
    /// watching files tries a chain that is not valid yet again once it
    /// is.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Expired`], [`CredentialError::NotYetValid`],
    /// [`CredentialError::IssuerOutsideValidity`] when the dates at fault
    /// are an issuer's in the chain rather than the workload
    /// certificate's, [`CredentialError::PurposeMissing`] when a
    /// certificate of the chain is limited to server or to client
    /// authentication, [`CredentialError::Untrusted`] or
    /// [`CredentialError::NoAnchorOfTrustDomain`].
    pub fn check(&self, now: SystemTime) -> Result<(), CredentialError> {
        if let Err(unusable) = self.usable_at(now) {
            return Err(self.outside_validity(unusable.validity));
        }
        let (leaf, intermediates) = match self.key.cert.split_first() {
            Some(split) => split,
            None => return Err(CredentialError::NoCertificate),
        };
        // Peers check the chain through an anchor of the identity's trust
        // domain: so is it checked here.
        verify_chain(
            leaf,
            intermediates,
            &self.identity,
            &self.anchor_domains,
            now,
        )
        .map_err(|refused| match refused.outside_anchor_domains() {
            Some(identity) => CredentialError::NoAnchorOfTrustDomain {
                identity: identity.clone(),
            },
            None => self.untrusted(refused.into_webpki()),
        })
    }

    /// The error for a chain webpki refused with `error`: about the
    /// certificate of the chain whose extended key usage leaves out the
    /// purpose required, when that is why, since the bundle is not at
    /// fault then; else that the chain does not verify against the bundle.
    fn untrusted(&self, error: webpki::Error) -> CredentialError {
        let webpki::Error::RequiredEkuNotFoundContext(context) = &error else {
            return CredentialError::Untrusted(error);
        };
        let purpose = crate::verify::purpose(context.required.oid_values().collect());
        let position = self
            .key
            .cert
            .iter()
            .position(|cert| crate::cert::leaves_out_purpose(cert, &purpose));
        match position {
            Some(at) => CredentialError::PurposeMissing {
                position: at + 1,
                purpose,
            },
            None => CredentialError::Untrusted(error),
        }
    }

    /// The error for a chain outside its validity: about the workload
    /// certificate when the date passed is its own, else about the first
    /// issuer in the chain whose date it is.
    fn outside_validity(&self, validity: OutsideValidity) -> CredentialError {
        let issuer_at = |date: fn(&Link) -> SystemTime, at: SystemTime| {
            self.key
                .cert
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, cert)| Link::parse(cert).is_some_and(|link| date(&link) == at))
                .map(|(i, _)| i + 1)
        };
        let position = match validity {
            OutsideValidity::Expired { not_after } if not_after != self.not_after => {
                issuer_at(|link| link.not_after, not_after)
            }
            OutsideValidity::NotYetValid { not_before } if not_before != self.not_before => {
                issuer_at(|link| link.not_before, not_before)
            }
            _ => None,
        };
        match (position, validity) {
            (Some(position), _) => CredentialError::IssuerOutsideValidity { position, validity },
            (None, OutsideValidity::Expired { not_after }) => {
                CredentialError::Expired { not_after }
            }
            (None, OutsideValidity::NotYetValid { not_before }) => {
                CredentialError::NotYetValid { not_before }
            }
        }
    }

    /// Whether the credentials can be presented at `now`: whether every
    /// certificate of a path from the workload certificate to the trust
    /// bundle is valid then, and until when. The one check of the clock the
    /// connector, the acceptor and the store's readiness share; it compares
    /// times read when the credentials loaded, so it costs next to nothing
    /// on a handshake. [`Credentials::check`] starts with it.
    ///
    /// Every path is considered, as peers build whichever verifies at the
    /// time: a chain that sends its issuer's old certificate beside the
    /// reissued one (same name and key, later `notAfter`) verifies through
    /// the old one while it is valid and through the reissued one after,
    /// so it stays usable until the reissued one, or the workload
    /// certificate, expires.
    ///
    /// # Errors
    ///
    /// [`UnusableCredentials`], naming the identity and the end of the
    /// validity `now` is past.
    pub fn usable_at(&self, now: SystemTime) -> Result<SystemTime, UnusableCredentials> {
        let validity = match self.validity.at(now) {
            At::Valid { until } => return Ok(until),
            At::NotYetValid { from } => OutsideValidity::NotYetValid { not_before: from },
            At::Expired { at } => OutsideValidity::Expired { not_after: at },
        };
        Err(UnusableCredentials {
            identity: self.identity.clone(),
            validity,
            now,
        })
    }

    /// The identity the workload certificate names.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// When the workload certificate becomes valid.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the workload certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The subject names of the trust anchors, to find a peer's path to
    /// them ([`crate::cert::path_validity`]).
    pub(crate) fn anchor_subjects(&self) -> &Arc<[Vec<u8>]> {
        &self.anchor_subjects
    }

    /// The trust domains the trust anchors vouch for.
    pub(crate) fn anchor_domains(&self) -> &Arc<AnchorDomains> {
        &self.anchor_domains
    }

    /// When the chain stops verifying for good: the workload certificate's
    /// `notAfter`, or an intermediate's when that comes first (of the path
    /// that verifies longest). Connections are retired against the end of
    /// the span they were authenticated in, which
    /// [`Credentials::usable_at`] gives.
    pub(crate) fn chain_not_after(&self) -> SystemTime {
        self.validity.last_not_after()
    }

    /// The certificate chain, workload certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }

    /// The trust anchors.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The trust anchors, shared.
    pub(crate) fn shared_roots(&self) -> Arc<[CertificateDer<'static>]> {
        self.roots.clone()
    }

    pub(crate) fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }

    /// Whether `other` holds the same chain and trust bundle (and so, since
    /// each key was checked against its certificate, the same key).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.key.cert == other.key.cert && self.roots == other.roots
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.key.cert.len())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// Which of the three PEM inputs a parse error is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PemInput {
    Chain,
    Key,
    Bundle,
}

type Parsed = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Vec<CertificateDer<'static>>,
);

/// Parses the three PEM inputs of [`Credentials::from_pem`], saying which
/// one failed.
pub(crate) fn parse_pem(
    chain: &[u8],
    key: &[u8],
    bundle: &[u8],
) -> Result<Parsed, (PemInput, CredentialError)> {
    // Windows tools start a UTF-8 file with a byte order mark; before the
    // first `-----BEGIN` line it hides that line from the PEM reader,
    // which would skip the section: the workload certificate, or the key.
    let (chain, key, bundle) = (text(chain), text(key), text(bundle));
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (PemInput::Chain, CredentialError::Pem(e)))?;
    let key = match PrivateKeyDer::from_pem_slice(key) {
        Ok(key) => key,
        // An encrypted key is said to be one, rather than missing or bad
        // PEM: the PEM reader skips PKCS#8's `ENCRYPTED PRIVATE KEY`
        // sections, as sections it does not know, and reads the headers
        // of OpenSSL's older form (`Proc-Type: 4,ENCRYPTED` inside an
        // `EC PRIVATE KEY` or `RSA PRIVATE KEY` section, what
        // `openssl ec -aes256` writes) as base64 with a bad character.
        Err(_) if is_encrypted_key(key) => {
            return Err((PemInput::Key, CredentialError::EncryptedKey));
        }
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err((PemInput::Key, CredentialError::NoPrivateKey));
        }
        Err(e) => return Err((PemInput::Key, CredentialError::Pem(e))),
    };
    let roots = CertificateDer::pem_slice_iter(bundle)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (PemInput::Bundle, CredentialError::Pem(e)))?;
    Ok((chain, key, roots))
}

/// `pem` without the UTF-8 byte order mark it may start with.
fn text(pem: &[u8]) -> &[u8] {
    pem.strip_prefix(b"\xef\xbb\xbf").unwrap_or(pem)
}

/// Whether the PEM text `key` holds an encrypted private key, in PKCS#8's
/// form or in OpenSSL's older one.
fn is_encrypted_key(key: &[u8]) -> bool {
    let holds = |needle: &[u8]| key.windows(needle.len()).any(|w| w == needle);
    holds(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || holds(b"Proc-Type: 4,ENCRYPTED")
}

/// Verifies the chain of `leaf` and `intermediates` to the anchors of
/// `domains` at `now`, for both server and client authentication (a mesh
/// certificate serves both ends of a connection), through an anchor of
/// `identity`'s trust domain, as peers verify it.
fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    identity: &Identity,
    domains: &AnchorDomains,
    now: SystemTime,
) -> Result<(), crate::verify::ChainRefused> {
    let time = unix_time(now);
    let algs = crate::provider().signature_verification_algorithms.all;
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        crate::verify::ChainCheck {
            end_entity: leaf,
            intermediates,
            anchors: domains.anchors(),
            now: time,
            usage,
            algs,
            scope: Some((identity, domains)),
        }
        .run()?;
    }
    Ok(())
}

pub(crate) fn unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// What `time` says it is, as a `SystemTime`. A clock that cannot tell the
/// time, or tells one `SystemTime` cannot hold, reads as the system clock.
pub(crate) fn time_of(time: &dyn rustls::time_provider::TimeProvider) -> SystemTime {
    time.current_time()
        .and_then(|now| UNIX_EPOCH.checked_add(std::time::Duration::from_secs(now.as_secs())))
        .unwrap_or_else(SystemTime::now)
}
