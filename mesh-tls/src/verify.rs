//! Certificate checks rustls runs during a client handshake.
//!
//! A mesh client does not care which hostname it dialled: it dialled an
//! endpoint of a service, and the service's workloads all hold certificates
//! naming one identity. So the server's certificate is checked the way
//! rustls's own verifier checks it (the chain, to a trust anchor in the
//! current bundle, at the current time), and then its SAN is compared with
//! the identity configured for the target instead of with the hostname.
//!
//! Both the verifier and the client certificate resolver read the store on
//! every handshake, so a client config built once per target keeps working
//! across rotations.
//!
//! What a certificate proves to a client is set out in the
//! [`connect`](crate::connect#what-a-certificate-proves) module docs.

use std::{fmt, sync::Arc};

use mesh_core::Identity;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor,
    },
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    server::{
        ParsedCertificate,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};

use crate::{
    cert::{CertNames, may_sign_certificates},
    store::CredentialStore,
};

/// Verifies `end_entity`'s chain to one of `anchors` at `now` for `usage`,
/// as webpki does for rustls, and on top requires every issuer on the path
/// below the anchor to be allowed to sign certificates by its key usage.
///
/// webpki reads an issuer's basic constraints (it must be a CA, within its
/// path length) but not its key usage: a CA certificate whose key usage
/// leaves out `keyCertSign`, which RFC 5280 §4.2.1.3 says must not be used
/// to verify certificates and the SPIFFE X.509-SVID spec (§4.3) says every
/// signing certificate sets, would otherwise vouch for any leaf its key
/// signed. The check runs inside webpki's path building, so that a path
/// through another, proper, issuer is still found.
pub(crate) fn verify_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[rustls_pki_types::TrustAnchor<'_>],
    now: UnixTime,
    usage: webpki::KeyUsage,
    algs: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), webpki::Error> {
    let issuers_may_sign = |path: &webpki::VerifiedPath<'_>| {
        match path
            .intermediate_certificates()
            .all(|cert| may_sign_certificates(cert.der().as_ref()))
        {
            true => Ok(()),
            // The webpki error closest to the fault: a certificate used
            // as a CA that may not be one.
            false => Err(webpki::Error::EndEntityUsedAsCa),
        }
    };
    webpki::EndEntityCert::try_from(end_entity)?
        .verify_for_usage(
            algs,
            anchors,
            intermediates,
            now,
            usage,
            None,
            Some(&issuers_may_sign),
        )
        .map(|_| ())
}

/// The error for a chain that rustls's own verification accepts but
/// [`verify_chain`] refuses: an issuer on every path may not sign
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
        let verified = verify_chain(
            end_entity,
            intermediates,
            &snapshot.roots.roots,
            now,
            webpki::KeyUsage::server_auth(),
            self.algs.all,
        );
        if verified.is_err() {
            // rustls's own verification says why, in the error it gives
            // for each fault; if it finds none, the fault was an issuer's
            // key usage.
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &snapshot.roots,
                intermediates,
                now,
                self.algs.all,
            )?;
            return Err(issuer_may_not_sign());
        }
        let names = CertNames::parse(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.names(&self.expected) {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = IdentityMismatch {
            expected: self.expected.clone(),
            presented: names.identity().ok().cloned(),
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
/// of [`verify_chain`] on top.
#[derive(Debug)]
pub(crate) struct ClientChain {
    inner: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientChain {
    /// Wraps `inner`, a [`rustls::server::WebPkiClientVerifier`] built on
    /// `roots` and `algs`.
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        roots: Arc<RootCertStore>,
        algs: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self { inner, roots, algs }
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
        let verified = verify_chain(
            end_entity,
            intermediates,
            &self.roots.roots,
            now,
            webpki::KeyUsage::client_auth(),
            self.algs.all,
        );
        match verified {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            // As for servers: rustls's error when it has one.
            Err(_) => {
                self.inner
                    .verify_client_cert(end_entity, intermediates, now)?;
                Err(issuer_may_not_sign())
            }
        }
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
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.presented {
            Some(presented) => write!(
                f,
                "server identity {presented} is not the expected {}",
                self.expected
            ),
            None => write!(
                f,
                "server certificate names no identity; expected {}",
                self.expected
            ),
        }
    }
}

impl std::error::Error for IdentityMismatch {}
