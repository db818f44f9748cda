//! The check that a loaded CA's issuer signs certificates its anchor
//! vouches for.
//!
//! A CA directory is assembled by hand more often than generated: an
//! issuer renewed from another anchor, or a workload certificate copied
//! into `issuer.crt` by mistake, loads and signs without complaint, and
//! every certificate it issues is then refused by every peer. So loading
//! signs one certificate with the issuer and verifies it against the
//! anchor, as a peer would, and refuses the CA when that fails, or when
//! the anchor is no CA certificate, which every credential store refuses
//! in a trust bundle.
//!
//! As a peer would means through an anchor of the trust domain the CA
//! issues for (the issuer's): an anchor that names trust domains vouches
//! only for their SPIFFE IDs (see [what a certificate
//! proves](crate::connect#what-a-certificate-proves)), so an issuer of
//! `example.org` under an anchor of `other.org` signs certificates that
//! every peer refuses. The error names both trust domains, since either
//! file may be the wrong one.
//!
//! The anchor's path length constraint is checked too, since webpki
//! reads none of a trust anchor's constraints while OpenSSL and Go's
//! crypto/x509 enforce it: an anchor of path length 0 above the issuer
//! would make a CA whose certificates the mesh accepts and every other
//! tool refuses.
//!
//! The trust anchor the path ends at is read too: webpki reads none of
//! its dates, while OpenSSL and Go refuse a chain whose root has expired,
//! so the CA signs nothing that outlives that anchor (see [validity and
//! renewal](super#validity-and-renewal)).
//!
//! The certificate is verified for both purposes, server and client
//! authentication, as every credential store verifies a workload's chain:
//! a mesh certificate serves both ends of a connection, and webpki checks
//! the extended key usage of every certificate on the path, so an issuer
//! limited to one purpose signs certificates that are refused for the
//! other.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use super::{CaError, CaInput, CertificateAuthority, InvalidCa, UntrustedIssuer};
use crate::{creds::unix_time, verify::AnchorDomains};

impl CertificateAuthority {
    /// Verifies a certificate the issuer signs against the anchor, at a
    /// moment within the issuer's validity (its dates are checked when it
    /// issues, with a better error), and returns when the trust anchor the
    /// path ends at expires.
    pub(super) fn check_issuer(
        &self,
        issuer_not_before: SystemTime,
    ) -> Result<SystemTime, (CaInput, CaError)> {
        let bad = |input| (input, CaError::InvalidCa(InvalidCa::BadCertificate));
        let rcgen = |e: rcgen::Error| (CaInput::Issuer, CaError::Certificate(e));
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let name = self.trust_domain.id().as_str().try_into().map_err(rcgen)?;
        params.subject_alt_names = vec![SanType::URI(name)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = issuer_not_before.into();
        params.not_after = self.issuer_not_after.into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen)?;
        let probe = params.signed_by(&key, &self.issuer).map_err(rcgen)?;

        let anchors = CertificateDer::pem_slice_iter(self.anchor_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad(CaInput::Anchor))?;
        // The bundle the CA hands out is its anchor: one a credential store
        // would refuse as no CA's is refused here, where it can be named.
        if !anchors
            .iter()
            .all(|anchor| crate::cert::is_ca_certificate(anchor))
        {
            return Err((CaInput::Anchor, CaError::InvalidCa(InvalidCa::AnchorNotCa)));
        }
        for anchor in &anchors {
            webpki::anchor_from_trusted_cert(anchor).map_err(|_| bad(CaInput::Anchor))?;
        }
        // Each anchor with the trust domains it vouches for, so that the
        // path is checked as a peer checks a workload's: through an anchor
        // of the trust domain the CA issues for.
        let domains = AnchorDomains::new(&anchors)
            .map_err(|unreadable| (CaInput::Anchor, CaError::AnchorDomainUnreadable(unreadable)))?;
        let issued = self.trust_domain.id();
        let intermediates = CertificateDer::pem_slice_iter(self.issuer_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad(CaInput::Issuer))?;
        let at = SystemTime::now().clamp(
            issuer_not_before,
            self.issuer_not_after
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(issuer_not_before)
                .max(issuer_not_before),
        );
        let mut path_anchor = None;
        for (usage, purpose) in [
            (webpki::KeyUsage::server_auth(), "server authentication"),
            (webpki::KeyUsage::client_auth(), "client authentication"),
        ] {
            let verified = crate::verify::ChainCheck {
                end_entity: probe.der(),
                intermediates: &intermediates,
                anchors: domains.anchors(),
                now: unix_time(at),
                usage,
                algs: crate::provider().signature_verification_algorithms.all,
                scope: Some((&issued, &domains)),
            }
            .anchor()
            .map_err(|refused| {
                let error = match refused.outside_anchor_domains() {
                    Some(_) => CaError::IssuerOutsideAnchorTrustDomain {
                        issuer: self.trust_domain.clone(),
                        // An anchor of the issuer's own trust domain is
                        // not on the refused paths: naming it would only
                        // confuse.
                        anchor: domains
                            .named()
                            .into_iter()
                            .filter(|named| *named != self.trust_domain)
                            .collect(),
                    },
                    None => CaError::IssuerNotTrusted(UntrustedIssuer::new(purpose, refused)),
                };
                (CaInput::Issuer, error)
            })?;
            path_anchor = path_anchor.or(verified);
        }
        check_anchor_path_length(&anchors, &intermediates)?;
        anchor_not_after(&anchors, path_anchor.as_ref()).ok_or_else(|| bad(CaInput::Anchor))
    }
}

/// When `anchor`, the trust anchor the issuer's path ends at, expires: the
/// latest `notAfter` of the certificates in `anchors` with its name and
/// key (a root renewed with the same key and name verifies the path as
/// long as either copy is valid). The earliest `notAfter` of all the
/// anchors when the path's anchor is not known. webpki reads no anchor's
/// dates, but OpenSSL and Go's crypto/x509 refuse a chain whose root has
/// expired, so nothing the CA signs may outlive it. `None` when a date
/// cannot be read.
fn anchor_not_after(
    anchors: &[CertificateDer<'_>],
    anchor: Option<&rustls_pki_types::TrustAnchor<'_>>,
) -> Option<SystemTime> {
    let mut same = None;
    let mut earliest = None;
    for cert in anchors {
        let not_after = crate::cert::Link::parse(cert)?.not_after;
        earliest = Some(earliest.map_or(not_after, |e: SystemTime| e.min(not_after)));
        let is_path_anchor = anchor.is_some_and(|anchor| {
            webpki::anchor_from_trusted_cert(cert).is_ok_and(|known| {
                known.subject == anchor.subject
                    && known.subject_public_key_info == anchor.subject_public_key_info
            })
        });
        if is_path_anchor {
            same = Some(same.map_or(not_after, |s: SystemTime| s.max(not_after)));
        }
    }
    same.or(earliest)
}

/// Refuses an anchor whose path length constraint leaves less room below
/// it than the issuer's chain takes: webpki reads no constraint of a trust
/// anchor (only its name, key and name constraints), so the verification
/// above passes, while OpenSSL and Go's crypto/x509 enforce it and refuse
/// everything the issuer signs. The certificate at `i` in `issuer.crt`
/// (the issuer first) has `i + 1` CA certificates at or below it, which
/// the anchor that signed it must allow; a self-signed copy of an anchor
/// in the file stands below nothing.
fn check_anchor_path_length(
    anchors: &[CertificateDer<'_>],
    intermediates: &[CertificateDer<'_>],
) -> Result<(), (CaInput, CaError)> {
    use x509_parser::{certificate::X509Certificate, prelude::FromDer};
    fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
        X509Certificate::from_der(der.as_ref())
            .ok()
            .map(|(_, cert)| cert)
    }
    let anchors: Vec<_> = anchors.iter().filter_map(parse).collect();
    let signed = intermediates
        .iter()
        .filter_map(parse)
        .filter(|cert| cert.subject().as_raw() != cert.issuer().as_raw());
    for (i, cert) in signed.enumerate() {
        let needs = i + 1;
        for anchor in &anchors {
            if anchor.subject().as_raw() != cert.issuer().as_raw() {
                continue;
            }
            let allows = anchor
                .basic_constraints()
                .ok()
                .flatten()
                .and_then(|constraints| constraints.value.path_len_constraint);
            if let Some(allows) = allows
                && usize::try_from(allows).is_ok_and(|allows| allows < needs)
            {
                return Err((
                    CaInput::Anchor,
                    CaError::InvalidCa(InvalidCa::AnchorPathLength { allows, needs }),
                ));
            }
        }
    }
    Ok(())
}
