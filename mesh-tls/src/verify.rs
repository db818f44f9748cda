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
    CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme,
    client::{
        ResolvesClientCert,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor,
    },
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    server::ParsedCertificate,
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{cert::CertNames, store::CredentialStore};

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
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &snapshot.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
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
