//! Certificate checks rustls runs during a client handshake.
//!
//! A mesh client does not care which hostname it dialled: it dialled an
//! endpoint of a service, and the service's workloads all hold certificates
//! naming one identity. So the server's certificate is checked the way
//! rustls's own verifier checks it (the chain, to a trust anchor in the
//! current bundle, at the current time), and then its SAN is compared with
//! the identity configured for the target instead of with the hostname.
//! A SPIFFE ID is taken only through a trust anchor of its own trust
//! domain ([`AnchorDomains`]).
//!
//! Both the verifier and the client certificate resolver read the store on
//! every handshake, so a client config built once per target keeps working
//! across rotations.
//!
//! What a certificate proves to a client is set out in the
//! [`connect`](crate::connect#what-a-certificate-proves) module docs.

use std::{cell::Cell, fmt, sync::Arc, time::SystemTime};

use mesh_core::{Identity, TrustDomain};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, ExtendedKeyPurpose,
    OtherError, SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    server::danger::{ClientCertVerified, ClientCertVerifier},
    sign::CertifiedKey,
};
use rustls_pki_types::{
    CertificateDer, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};

use crate::{
    cert::{CertNames, Link, NoIdentity, may_sign_certificates},
    creds::{AnchorDomainProblem, UnreadableAnchorDomain, Utc},
    store::CredentialStore,
};

/// A check of `end_entity`'s chain to one of `anchors` at `now` for
/// `usage`, made as webpki makes it for rustls, that also requires every
/// issuer on the path below the anchor to be allowed to sign certificates
/// by its key usage. The fields are named here once, for the three things
/// a caller may want from the one path search: whether the chain verifies
/// ([`run`](Self::run)), until when ([`until`](Self::until)), and through
/// which anchor ([`anchor`](Self::anchor)).
///
/// webpki reads an issuer's basic constraints (it must be a CA, within its
/// path length) but not its key usage: a CA certificate whose key usage
/// leaves out `keyCertSign`, which RFC 5280 §4.2.1.3 says must not be used
/// to verify certificates and the SPIFFE X.509-SVID spec (§4.3) says every
/// signing certificate sets, would otherwise vouch for any leaf its key
/// signed. The check runs inside webpki's path building, so that a path
/// through another, proper, issuer is still found.
///
/// The refusal says whether the issuer key usage check refused a path
/// webpki itself accepted. A refused handshake should cost one path
/// search, as with stock rustls, yet say what rustls's own verification
/// (which has no key usage check) would say. The flag tells that from the
/// one search: rustls's webpki
/// search visits paths in the same order and would have stopped at the
/// first one the key usage check refused, accepting it, so the refusal is
/// the key usage's; when the check refused nothing, the search made here
/// was rustls's own, step for step, and its webpki error is the one rustls
/// would map.
///
/// When `scope` gives the identity the leaf names and the trust domains of
/// `anchors`, the chain is checked only through an anchor that vouches for
/// that identity ([`AnchorDomains`]). A path the trust domain check refuses
/// is passed over like one the key usage check refuses, so that a path to
/// an anchor of the identity's own trust domain is still found, in the
/// same one search.
#[derive(Clone, Copy)]
pub(crate) struct ChainCheck<'a> {
    /// The leaf.
    pub(crate) end_entity: &'a CertificateDer<'a>,
    /// The certificates sent with it, in any order.
    pub(crate) intermediates: &'a [CertificateDer<'a>],
    /// The trust anchors the path must end at.
    pub(crate) anchors: &'a [TrustAnchor<'a>],
    /// The time the path must be valid at.
    pub(crate) now: UnixTime,
    /// What the leaf is used for.
    pub(crate) usage: webpki::KeyUsage,
    /// The signature algorithms a path may use.
    pub(crate) algs: &'a [&'a dyn SignatureVerificationAlgorithm],
    /// The identity the leaf names, and the anchors' trust domains: the
    /// path must end at an anchor that vouches for it.
    pub(crate) scope: Option<(&'a Identity, &'a AnchorDomains)>,
}

impl ChainCheck<'_> {
    /// Whether the chain verifies.
    pub(crate) fn run(&self) -> Result<(), ChainRefused> {
        self.search(None)
    }

    /// Whether the chain verifies, and when the path it verified through
    /// stops verifying: the earliest `notAfter` of the end entity and the
    /// intermediates on that path (`None` when one of them cannot be read).
    /// The anchor's dates, which webpki never reads, do not count.
    ///
    /// For a peer's chain whose path cannot be told by name (see
    /// [`path_validity`](crate::cert::path_validity)): the path is the one
    /// webpki built, read from the search itself.
    pub(crate) fn until(&self) -> Result<Option<SystemTime>, ChainRefused> {
        let ends = Cell::new(None);
        let read_ends = |path: &webpki::VerifiedPath<'_>| {
            let certs = std::iter::once(path.end_entity().der())
                .chain(path.intermediate_certificates().map(|cert| cert.der()));
            let mut end: Option<SystemTime> = None;
            let mut readable = true;
            for cert in certs {
                match Link::parse(&cert) {
                    Some(link) => {
                        end = Some(end.map_or(link.not_after, |end| end.min(link.not_after)));
                    }
                    None => readable = false,
                }
            }
            ends.set(end.filter(|_| readable));
        };
        self.search(Some(&read_ends))?;
        Ok(ends.get())
    }

    /// Whether the chain verifies, and the trust anchor (its name and key)
    /// of the path it verified through: for the CA, whose certificates
    /// must not outlive that anchor, since OpenSSL and Go refuse a path
    /// whose root has expired, though webpki reads no anchor's dates.
    #[cfg(feature = "ca")]
    pub(crate) fn anchor(&self) -> Result<Option<TrustAnchor<'static>>, ChainRefused> {
        let anchor = std::cell::RefCell::new(None);
        let read_anchor = |path: &webpki::VerifiedPath<'_>| {
            *anchor.borrow_mut() = Some(path.anchor().to_owned());
        };
        self.search(Some(&read_anchor))?;
        Ok(anchor.into_inner())
    }

    /// The one path search, handing the path it verified the chain
    /// through, when it did, to `verified`.
    fn search(
        &self,
        verified: Option<&dyn Fn(&webpki::VerifiedPath<'_>)>,
    ) -> Result<(), ChainRefused> {
        let Self {
            end_entity,
            intermediates,
            anchors,
            now,
            usage,
            algs,
            scope,
        } = *self;
        let refused_a_signer = Cell::new(false);
        let refused_an_anchor = Cell::new(false);
        let acceptable = |path: &webpki::VerifiedPath<'_>| {
            if !path
                .intermediate_certificates()
                .all(|cert| may_sign_certificates(cert.der().as_ref()))
            {
                // The webpki error closest to the fault: a certificate used
                // as a CA that may not be one.
                refused_a_signer.set(true);
                return Err(webpki::Error::EndEntityUsedAsCa);
            }
            if let Some((identity, domains)) = scope
                && !domains.vouches(path.anchor(), identity)
            {
                // As if the anchor were not in the bundle: it is not in the
                // identity's trust domain's.
                refused_an_anchor.set(true);
                return Err(webpki::Error::UnknownIssuer);
            }
            // webpki returns the first path this accepts: the one verified.
            if let Some(verified) = verified {
                verified(path);
            }
            Ok(())
        };
        let refused = |webpki| ChainRefused {
            webpki,
            issuer_may_not_sign: refused_a_signer.get(),
            outside_anchor_domains: match refused_an_anchor.get() {
                true => scope.map(|(identity, _)| identity.clone()),
                false => None,
            },
        };
        webpki::EndEntityCert::try_from(end_entity)
            .map_err(refused)?
            .verify_for_usage(
                algs,
                anchors,
                intermediates,
                now,
                usage,
                None,
                Some(&acceptable),
            )
            .map(|_| ())
            .map_err(refused)
    }
}

/// The trust domains the anchors of a bundle vouch for, read once when
/// credentials load.
///
/// SPIFFE keeps a trust bundle per trust domain, and a validator checks an
/// SVID against the bundle of the trust domain its SPIFFE ID names (as
/// go-spiffe's `x509svid.Verify` does), so that one trust domain's CA
/// cannot name another's workloads. The mesh's bundle is one file, so an
/// anchor's trust domain is read from the anchor: the SPIFFE ID in its URI
/// SAN (`spiffe://<trust domain>`), which the SPIFFE X.509-SVID spec (§3.2)
/// recommends for signing certificates and which the mesh's CA writes. Such
/// an anchor vouches for the SPIFFE IDs of its trust domain alone. An
/// anchor that names no trust domain (Linkerd's, a corporate CA's) vouches
/// for any identity, as a plain X.509 anchor does; and DNS-style
/// identities, which name no trust domain ([`TrustDomain::contains`]), are
/// vouched for by any anchor.
///
/// Since naming none vouches for everything, a trust domain an anchor
/// claims but that cannot be read is no trust domain it names: it refuses
/// the bundle ([`UnreadableAnchorDomain`]). That is a URI SAN of the
/// `spiffe` scheme (in any case) that breaks a rule of the SPIFFE ID spec
/// (`spiffe://Example.org`, a port, an empty path segment), or a subject
/// alternative name extension that does not parse. A URI SAN of another
/// scheme (`https://ca.example.com`) claims no trust domain, and is passed
/// over as a plain X.509 anchor's names are.
#[derive(Debug, Default)]
pub(crate) struct AnchorDomains {
    anchors: Vec<TrustAnchor<'static>>,
    /// The trust domains each anchor names, in the order of `anchors`:
    /// empty for one that names none.
    domains: Vec<Vec<TrustDomain>>,
}

/// How many anchors of a bundle vouch for an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vouching {
    /// Every anchor: a path to any of them proves the identity.
    All,
    /// Some anchors: which one a path ends at decides.
    Some,
    /// No anchor: nothing proves the identity.
    None,
}

impl AnchorDomains {
    /// The anchors `roots` and their trust domains. A root that is no
    /// trust anchor is left out, as rustls leaves it out of its store.
    ///
    /// # Errors
    ///
    /// For the first anchor whose trust domain cannot be read, which must
    /// not be taken for one that names none.
    pub(crate) fn new(roots: &[CertificateDer<'_>]) -> Result<Self, UnreadableAnchorDomain> {
        let mut anchors = Vec::with_capacity(roots.len());
        let mut domains = Vec::with_capacity(roots.len());
        for (at, root) in roots.iter().enumerate() {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(root) else {
                continue;
            };
            let unreadable = |problem| UnreadableAnchorDomain {
                position: at + 1,
                subject: crate::cert::subject_text(root),
                problem,
            };
            let names = CertNames::parse(root)
                .map_err(|_| unreadable(AnchorDomainProblem::UnparsableSubjectAltName))?;
            if let Some((uri, error)) = names.malformed_spiffe_id() {
                return Err(unreadable(AnchorDomainProblem::MalformedSpiffeId {
                    uri: uri.to_owned(),
                    error,
                }));
            }
            anchors.push(anchor.to_owned());
            domains.push(names.spiffe_trust_domains());
        }
        Ok(Self { anchors, domains })
    }

    /// The anchors, for a path search.
    pub(crate) fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// The trust domains the anchors name, each once, in the order the
    /// bundle names them.
    pub(crate) fn named(&self) -> Vec<TrustDomain> {
        let mut named: Vec<TrustDomain> = Vec::new();
        for domain in self.domains.iter().flatten() {
            if !named.contains(domain) {
                named.push(domain.clone());
            }
        }
        named
    }

    /// Whether an anchor naming `domains` vouches for `identity`.
    fn domains_vouch(domains: &[TrustDomain], identity: &Identity) -> bool {
        !identity.is_spiffe() || domains.is_empty() || domains.iter().any(|d| d.contains(identity))
    }

    /// Whether `anchor`, the one a path ends at, vouches for `identity`:
    /// a bundle certificate with its name and key does.
    fn vouches(&self, anchor: &TrustAnchor<'_>, identity: &Identity) -> bool {
        self.anchors
            .iter()
            .zip(&self.domains)
            .any(|(known, domains)| {
                known.subject == anchor.subject
                    && known.subject_public_key_info == anchor.subject_public_key_info
                    && Self::domains_vouch(domains, identity)
            })
    }

    /// How many anchors vouch for `identity`.
    pub(crate) fn vouching_for(&self, identity: &Identity) -> Vouching {
        let vouching = self
            .domains
            .iter()
            .filter(|domains| Self::domains_vouch(domains, identity))
            .count();
        match vouching {
            0 => Vouching::None,
            n if n == self.domains.len() => Vouching::All,
            _ => Vouching::Some,
        }
    }
}

/// Why [`ChainCheck`] refused a chain.
#[derive(Clone, Debug)]
pub(crate) struct ChainRefused {
    /// webpki's error for the search.
    webpki: webpki::Error,
    /// Whether the issuer key usage check refused a path webpki accepted.
    issuer_may_not_sign: bool,
    /// The identity, when the trust domain check refused a path webpki
    /// accepted: it ended at an anchor of another trust domain.
    outside_anchor_domains: Option<Identity>,
}

impl ChainRefused {
    /// The error rustls's own verification gives for the chain, or
    /// [`issuer_may_not_sign`] when only the key usage check refused it.
    fn to_rustls(&self) -> Error {
        if self.issuer_may_not_sign {
            return issuer_may_not_sign();
        }
        match &self.outside_anchor_domains {
            Some(identity) => Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(NoAnchorOfTrustDomain {
                    identity: identity.clone(),
                }),
            ))),
            None => webpki_to_rustls(self.webpki.clone()),
        }
    }

    /// The identity whose trust domain has no anchor the chain leads to,
    /// when that alone refused it.
    pub(crate) fn outside_anchor_domains(&self) -> Option<&Identity> {
        match self.issuer_may_not_sign {
            true => None,
            false => self.outside_anchor_domains.as_ref(),
        }
    }

    /// webpki's error for the search.
    pub(crate) fn into_webpki(self) -> webpki::Error {
        self.webpki
    }
}

/// The peer's certificate names a SPIFFE ID, but its chain leads only to
/// trust anchors of other trust domains, which do not vouch for it.
///
/// A trust anchor that names its trust domain (a URI SAN
/// `spiffe://<trust domain>`) vouches for the SPIFFE IDs of that trust
/// domain alone, as SPIFFE validates an SVID against the bundle of the
/// trust domain it names (go-spiffe's `x509svid.Verify` does); so a bundle
/// federating two trust domains does not let either CA name the other's
/// workloads (see [what a certificate
/// proves](crate::connect#what-a-certificate-proves)).
///
/// Both ends refuse the handshake with this error, inside rustls's
/// [`CertificateError::Other`], in the path search that verifies the
/// peer's chain, so that the peer receives the alert `certificate_unknown`
/// (rustls gives `unknown_ca` only to a bare
/// [`CertificateError::UnknownIssuer`], which could not say whose trust
/// domain lacked an anchor). The connector reports the refusal as
/// [`ConnectError::NoAnchorOfTrustDomain`](crate::ConnectError::NoAnchorOfTrustDomain),
/// the acceptor as
/// [`AcceptError::NoAnchorOfTrustDomain`](crate::accept::AcceptError::NoAnchorOfTrustDomain);
/// each holds this error and gives it as its source. Both count it in
/// `tls_handshake_failures_total` as `unknown_issuer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoAnchorOfTrustDomain {
    /// The identity the certificate names.
    pub identity: Identity,
}

impl fmt::Display for NoAnchorOfTrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is vouched for by no trust anchor of trust domain {}: the chain leads only to \
             anchors of other trust domains",
            self.identity,
            self.identity.trust_domain_name().unwrap_or_default()
        )
    }
}

impl std::error::Error for NoAnchorOfTrustDomain {}

impl fmt::Display for ChainRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use webpki::Error as E;
        let since_epoch =
            |t: UnixTime| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs());
        if self.issuer_may_not_sign {
            return IssuerMayNotSign.fmt(f);
        }
        if let Some(identity) = &self.outside_anchor_domains {
            return NoAnchorOfTrustDomain {
                identity: identity.clone(),
            }
            .fmt(f);
        }
        match &self.webpki {
            E::UnknownIssuer => f.write_str(
                "unknown issuer: no certificate on the path is signed by a trust anchor",
            ),
            E::CertExpired { not_after, .. } => write!(
                f,
                "a certificate on the path expired at {}",
                Utc(since_epoch(*not_after))
            ),
            E::CertNotValidYet { not_before, .. } => write!(
                f,
                "a certificate on the path is not valid until {}",
                Utc(since_epoch(*not_before))
            ),
            E::EndEntityUsedAsCa => {
                f.write_str("a certificate used as a ca on the path is not a ca certificate")
            }
            E::PathLenConstraintViolated => {
                f.write_str("a ca's path length constraint on the path is used up")
            }
            E::NameConstraintViolation => f.write_str("the path breaks a ca's name constraints"),
            E::InvalidSignatureForPublicKey => {
                f.write_str("a signature on the path does not verify")
            }
            #[allow(deprecated)]
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
                f.write_str("an extended key usage on the path leaves out the purpose required")
            }
            other => write!(f, "webpki refused the path: {other:?}"),
        }
    }
}

impl std::error::Error for ChainRefused {}

/// The [`rustls::Error`] rustls gives for a webpki error met verifying a
/// peer's certificate, as its own (private) mapping makes it, so that a
/// refusal reads the same to the peer, in its alert, and in the logs as
/// with rustls's verifiers. The revocation errors, which no verifier here
/// can meet (none checks revocation), are left to the fallback.
fn webpki_to_rustls(error: webpki::Error) -> Error {
    use webpki::Error as E;
    let certificate = match error {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        E::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        E::InvalidCertValidity => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertNotValidForName(webpki::InvalidNameContext {
            expected,
            presented,
        }) => CertificateError::NotValidForNameContext {
            expected,
            presented,
        },
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        #[allow(deprecated)]
        E::UnsupportedSignatureAlgorithm | E::UnsupportedSignatureAlgorithmForPublicKey => {
            CertificateError::UnsupportedSignatureAlgorithm
        }
        E::UnsupportedSignatureAlgorithmContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                supported_algorithms: cx.supported_algorithms,
            }
        }
        E::UnsupportedSignatureAlgorithmForPublicKeyContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                public_key_algorithm_id: cx.public_key_algorithm_id,
            }
        }
        #[allow(deprecated)]
        E::RequiredEkuNotFound => CertificateError::InvalidPurpose,
        E::RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext { required, present }) => {
            CertificateError::InvalidPurposeContext {
                required: purpose(required.oid_values().collect()),
                presented: present.into_iter().map(purpose).collect(),
            }
        }
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(certificate)
}

/// An extended key usage OID, named as rustls names it.
pub(crate) fn purpose(oid: Vec<usize>) -> ExtendedKeyPurpose {
    match &*oid {
        webpki::KeyUsage::CLIENT_AUTH_REPR => ExtendedKeyPurpose::ClientAuth,
        webpki::KeyUsage::SERVER_AUTH_REPR => ExtendedKeyPurpose::ServerAuth,
        _ => ExtendedKeyPurpose::Other(oid),
    }
}

/// The error for a chain that rustls's own verification accepts but
/// [`ChainCheck`] refuses: an issuer on every path may not sign
/// certificates.
fn issuer_may_not_sign() -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        IssuerMayNotSign,
    ))))
}

/// An issuer of the peer's chain is a CA whose key usage does not allow
/// certificate signing.
#[derive(Debug)]
struct IssuerMayNotSign;

impl fmt::Display for IssuerMayNotSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an issuer's key usage does not allow certificate signing (no keyCertSign)")
    }
}

impl std::error::Error for IssuerMayNotSign {}

/// Verifies a server's chain against the store's trust bundle and its
/// identity against the one expected for the target.
#[derive(Debug)]
pub(crate) struct ExpectedIdentity {
    store: CredentialStore,
    expected: Identity,
    algs: WebPkiSupportedAlgorithms,
}

impl ExpectedIdentity {
    pub(crate) fn new(store: CredentialStore, expected: Identity) -> Self {
        let algs = store.provider().signature_verification_algorithms;
        Self {
            store,
            expected,
            algs,
        }
    }
}

impl ServerCertVerifier for ExpectedIdentity {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let snapshot = self
            .store
            .snapshot()
            .ok_or_else(|| Error::General("no local credentials".into()))?;
        // The names first, so that the chain is checked through an anchor
        // of the trust domain of the SPIFFE ID the leaf names. One path
        // search: its refusal maps to the error rustls's own verification
        // would give (see `ChainCheck`).
        let names = CertNames::parse(end_entity);
        let named = names.as_ref().ok().and_then(|n| n.identity().ok());
        ChainCheck {
            end_entity,
            intermediates,
            anchors: &snapshot.roots.roots,
            now,
            usage: webpki::KeyUsage::server_auth(),
            algs: self.algs.all,
            scope: named.map(|identity| (identity, &**snapshot.creds.anchor_domains())),
        }
        .run()
        .map_err(|refused| refused.to_rustls())?;
        let names = names.map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.names(&self.expected) {
            return Ok(ServerCertVerified::assertion());
        }
        let presented = names.identity();
        let mismatch = IdentityMismatch {
            expected: self.expected.clone(),
            presented: presented.ok().cloned(),
            no_identity: presented.err(),
        };
        Err(Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// rustls's client certificate verifier, with the issuer key usage check
/// of [`ChainCheck`] on top, taking a client's SPIFFE ID only through a
/// trust anchor of its own trust domain ([`AnchorDomains`]).
///
/// The trust domain is checked inside the handshake, in the one path
/// search that verifies the chain, rather than once the handshake is done:
/// a bundle federating several trust domains then costs no second search,
/// and the client is told with an alert instead of seeing a handshake that
/// succeeded followed by a closed connection. The refusal is
/// [`NoAnchorOfTrustDomain`] inside rustls's [`CertificateError::Other`],
/// for which rustls sends the alert `certificate_unknown`. rustls picks
/// the alert from the error's variant alone, and `unknown_ca` belongs to
/// [`CertificateError::UnknownIssuer`], which carries nothing: returning it
/// would lose the identity the acceptor names in its error and log. The
/// client learns no less from `certificate_unknown` (RFC 8446 §6.2: the
/// certificate was unacceptable for an unspecified reason), and the
/// acceptor still counts the refusal as `unknown_issuer`.
#[derive(Debug)]
pub(crate) struct ClientChain {
    inner: Arc<dyn ClientCertVerifier>,
    domains: Arc<AnchorDomains>,
    /// Whether some anchor names a trust domain: otherwise every anchor
    /// vouches for every identity, and the leaf's names need not be read.
    scoped: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientChain {
    /// Wraps `inner`, a [`rustls::server::WebPkiClientVerifier`] built on
    /// the anchors of `domains` and on `algs`.
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        domains: Arc<AnchorDomains>,
        algs: WebPkiSupportedAlgorithms,
    ) -> Self {
        let scoped = !domains.named().is_empty();
        Self {
            inner,
            domains,
            scoped,
            algs,
        }
    }
}

impl ClientCertVerifier for ClientChain {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // One path search, as for servers: `inner`, rustls's verifier,
        // would search the same paths, so its error is mapped rather than
        // asked for. Scoped to the client's trust domain when the anchors
        // do not all vouch for it; a leaf naming no identity is verified
        // as by rustls, and refused by the acceptor once the handshake is
        // done, as no identity can be taken from it.
        let names = match self.scoped {
            true => CertNames::parse(end_entity).ok(),
            false => None,
        };
        let scope = names
            .as_ref()
            .and_then(|names| names.identity().ok())
            .filter(|identity| self.domains.vouching_for(identity) != Vouching::All)
            .map(|identity| (identity, &*self.domains));
        ChainCheck {
            end_entity,
            intermediates,
            anchors: self.domains.anchors(),
            now,
            usage: webpki::KeyUsage::client_auth(),
            algs: self.algs.all,
            scope,
        }
        .run()
        .map(|()| ClientCertVerified::assertion())
        .map_err(|refused| refused.to_rustls())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Presents the store's current certificate.
#[derive(Debug)]
pub(crate) struct StoreClientCert {
    store: CredentialStore,
}

impl StoreClientCert {
    pub(crate) fn new(store: CredentialStore) -> Self {
        Self { store }
    }
}

impl ResolvesClientCert for StoreClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.store
            .snapshot()
            .map(|s| s.creds.certified_key().clone())
    }

    fn has_certs(&self) -> bool {
        self.store.is_ready()
    }
}

/// The server's certificate chains to the trust bundle but names another
/// identity than the one expected for the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityMismatch {
    /// The identity configured for the target.
    pub expected: Identity,
    /// The identity the certificate names, if it names one.
    pub presented: Option<Identity>,
    /// Why the certificate names no identity, when it names none (two URI
    /// SANs, a malformed SPIFFE ID, a key usage that is not a leaf's...):
    /// the reason the acceptor gives for such a client certificate.
    pub no_identity: Option<NoIdentity>,
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.presented {
            Some(presented) => write!(
                f,
                "server identity {presented} is not the expected {}",
                self.expected
            ),
            None => match &self.no_identity {
                Some(why) => write!(
                    f,
                    "server certificate names no identity ({why}); expected {}",
                    self.expected
                ),
                None => write!(
                    f,
                    "server certificate names no identity; expected {}",
                    self.expected
                ),
            },
        }
    }
}

impl std::error::Error for IdentityMismatch {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.no_identity
            .as_ref()
            .map(|why| why as &(dyn std::error::Error + 'static))
    }
}

// Every test here signs its chains with rcgen, which comes with the CA.
#[cfg(test)]
#[cfg(feature = "ca")]
mod tests {
    use std::time::{Duration, SystemTime};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };
    use rustls::{
        RootCertStore,
        client::verify_server_cert_signed_by_trust_anchor,
        server::{ParsedCertificate, WebPkiClientVerifier},
    };

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn key() -> KeyPair {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
    }

    fn ca_params() -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "anchor");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params
    }

    /// A trust store holding an anchor named "anchor".
    fn anchor(key: &KeyPair) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(ca_params().self_signed(key).unwrap().der().clone())
            .unwrap();
        Arc::new(roots)
    }

    /// A leaf for `a.example`, valid for 10 days from `from`, signed by
    /// `key` under the name "anchor".
    fn leaf(key: KeyPair, from: SystemTime) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = from.into();
        params.not_after = (from + 10 * DAY).into();
        let issuer = Issuer::new(ca_params(), key);
        params
            .signed_by(&self::key(), &issuer)
            .unwrap()
            .der()
            .clone()
    }

    fn algs() -> WebPkiSupportedAlgorithms {
        crate::provider().signature_verification_algorithms
    }

    /// The error from the one search made here, and the errors rustls's
    /// own server and client verifiers give for the same chain.
    fn refusals(
        cert: &CertificateDer<'_>,
        roots: &Arc<RootCertStore>,
        now: SystemTime,
    ) -> (Error, Error, Error, Error) {
        let now = UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let ours = |usage| {
            ChainCheck {
                end_entity: cert,
                intermediates: &[],
                anchors: &roots.roots,
                now,
                usage,
                algs: algs().all,
                scope: None,
            }
            .run()
            .unwrap_err()
            .to_rustls()
        };
        let server = verify_server_cert_signed_by_trust_anchor(
            &ParsedCertificate::try_from(cert).unwrap(),
            roots,
            &[],
            now,
            algs().all,
        )
        .unwrap_err();
        let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), crate::provider())
            .build()
            .unwrap()
            .verify_client_cert(cert, &[], now)
            .unwrap_err();
        (
            ours(webpki::KeyUsage::server_auth()),
            server,
            ours(webpki::KeyUsage::client_auth()),
            client,
        )
    }

    #[track_caller]
    fn assert_as_rustls(
        cert: &CertificateDer<'_>,
        roots: &Arc<RootCertStore>,
        now: SystemTime,
        expected: impl Fn(&Error) -> bool,
    ) {
        let (ours_server, server, ours_client, client) = refusals(cert, roots, now);
        assert!(expected(&server), "{server:?}");
        assert_eq!(ours_server, server);
        assert_eq!(ours_client, client);
    }

    #[test]
    fn an_expired_chain_is_refused_as_rustls_refuses_it() {
        let anchor_key = key();
        let roots = anchor(&anchor_key);
        let start = SystemTime::now() - DAY;
        let cert = leaf(anchor_key, start);
        assert_as_rustls(&cert, &roots, start + 20 * DAY, |e| {
            matches!(
                e,
                Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            )
        });
        assert_as_rustls(&cert, &roots, start - DAY, |e| {
            matches!(
                e,
                Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
            )
        });
    }

    #[test]
    fn an_unknown_issuer_is_refused_as_rustls_refuses_it() {
        let roots = anchor(&key());
        let start = SystemTime::now() - DAY;
        // Signed under another anchor's name: no anchor's subject matches.
        let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.not_before = start.into();
        params.not_after = (start + 10 * DAY).into();
        let mut other = ca_params();
        other.distinguished_name = rcgen::DistinguishedName::new();
        other
            .distinguished_name
            .push(DnType::CommonName, "another anchor");
        let unknown = params
            .signed_by(&key(), &Issuer::new(other, key()))
            .unwrap()
            .der()
            .clone();
        assert_as_rustls(&unknown, &roots, start + DAY, |e| {
            *e == Error::InvalidCertificate(CertificateError::UnknownIssuer)
        });
    }

    #[test]
    fn a_bad_signature_is_refused_as_rustls_refuses_it() {
        // The anchor's name, another key: the signature does not verify.
        let roots = anchor(&key());
        let start = SystemTime::now() - DAY;
        assert_as_rustls(&leaf(key(), start), &roots, start + DAY, |e| {
            *e == Error::InvalidCertificate(CertificateError::BadSignature)
        });
    }

    #[test]
    fn a_name_mismatch_maps_as_rustls_maps_it() {
        let cert = leaf(key(), SystemTime::now() - DAY);
        let name = ServerName::try_from("b.example").unwrap();
        let ours = webpki::EndEntityCert::try_from(&cert)
            .unwrap()
            .verify_is_valid_for_subject_name(&name)
            .map_err(webpki_to_rustls)
            .unwrap_err();
        let theirs =
            rustls::client::verify_server_name(&ParsedCertificate::try_from(&cert).unwrap(), &name)
                .unwrap_err();
        assert!(
            matches!(
                theirs,
                Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{theirs:?}"
        );
        assert_eq!(ours, theirs);
    }

    /// An anchor certificate whose URI SANs are `uris`.
    fn anchor_naming(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = ca_params();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
            .collect();
        params.self_signed(&key()).unwrap().der().clone()
    }

    #[test]
    fn an_anchor_vouches_for_the_spiffe_ids_of_the_trust_domains_it_names() {
        let a = anchor_naming(&["spiffe://a.org"]);
        let b = anchor_naming(&["spiffe://b.org"]);
        let unnamed = anchor_naming(&[]);
        let both = anchor_naming(&["spiffe://a.org", "spiffe://b.org/issuer"]);
        let in_a: Identity = "spiffe://a.org/ns/x/sa/y".parse().unwrap();
        let in_b: Identity = "spiffe://b.org/ns/x/sa/y".parse().unwrap();
        let dns: Identity = "web.ns.serviceaccount.identity.linkerd.b.org"
            .parse()
            .unwrap();
        let vouching = |roots: &[&CertificateDer<'static>], id: &Identity| {
            let roots: Vec<_> = roots.iter().map(|r| (*r).clone()).collect();
            AnchorDomains::new(&roots).unwrap().vouching_for(id)
        };
        assert_eq!(vouching(&[&a], &in_a), Vouching::All);
        assert_eq!(vouching(&[&a], &in_b), Vouching::None);
        assert_eq!(vouching(&[&a, &b], &in_b), Vouching::Some);
        assert_eq!(vouching(&[&a, &unnamed], &in_b), Vouching::Some);
        assert_eq!(vouching(&[&unnamed], &in_b), Vouching::All);
        assert_eq!(vouching(&[&both], &in_b), Vouching::All);
        // A DNS-style identity names no trust domain: every anchor vouches.
        assert_eq!(vouching(&[&a, &b], &dns), Vouching::All);
    }

    /// An anchor whose `spiffe` URI SAN is no valid SPIFFE ID claims a
    /// trust domain that cannot be read; taken as naming none, it would
    /// vouch for every identity. The bundle is refused instead, naming the
    /// anchor and the rule broken. A URI of another scheme claims no trust
    /// domain: such an anchor names none, as before.
    #[test]
    fn an_anchor_whose_spiffe_id_is_malformed_is_refused_not_read_as_naming_none() {
        use mesh_core::identity::InvalidIdentity;
        let a = anchor_naming(&["spiffe://a.org"]);
        for (uri, expected) in [
            ("spiffe://A.org", InvalidIdentity::BadTrustDomainChar('A')),
            ("SPIFFE://a.org", InvalidIdentity::WrongScheme),
            ("spiffe://a.org:443", InvalidIdentity::PortPresent),
            ("spiffe://a.org/x//y", InvalidIdentity::EmptySegment),
            ("spiffe://", InvalidIdentity::MissingTrustDomain),
        ] {
            let bad = anchor_naming(&[uri]);
            let error = AnchorDomains::new(&[a.clone(), bad]).unwrap_err();
            assert_eq!(error.position, 2, "{uri}");
            assert!(error.subject.contains("CN="), "{uri}: {}", error.subject);
            assert_eq!(
                error.problem,
                AnchorDomainProblem::MalformedSpiffeId {
                    uri: uri.to_owned(),
                    error: expected,
                },
                "{uri}"
            );
            let text = error.to_string();
            assert!(
                text.starts_with("trust bundle certificate 2 (CN=")
                    && text.contains(&format!("{uri:?}"))
                    && text.contains(&expected.to_string()),
                "{text}"
            );
        }
        let https = anchor_naming(&["https://ca.example.com"]);
        let in_b: Identity = "spiffe://b.org/ns/x/sa/y".parse().unwrap();
        let domains = AnchorDomains::new(&[a, https]).unwrap();
        assert_eq!(domains.named(), ["a.org".parse::<TrustDomain>().unwrap()]);
        assert_eq!(domains.vouching_for(&in_b), Vouching::Some);
    }
}
