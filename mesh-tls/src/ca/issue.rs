use std::{
    fmt,
    time::{Duration, SystemTime},
};

use mesh_core::Identity;
use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};

use super::{CaError, CertificateAuthority, DEFAULT_WORKLOAD_TTL, serial, set_validity};
use crate::{
    cert::in_trust_domain,
    creds::{CredentialError, Credentials},
};

/// What to put in a workload certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    /// The identity the certificate names.
    pub identity: Identity,
    /// How long it lives from issue (or from `not_before` when set).
    /// Default [`DEFAULT_WORKLOAD_TTL`] (24 hours).
    pub ttl: Duration,
    /// When it becomes valid. Default: now, backdated by a minute for
    /// peers whose clocks run behind (the minute is added to the lifetime,
    /// not taken out of it).
    pub not_before: Option<SystemTime>,
    /// DNS names to add beside the identity, for tools that check
    /// hostnames (curl wants `localhost` when it dials localhost). Default
    /// none.
    ///
    /// Only single-label host names (`localhost`) are written, and a
    /// DNS-style identity's own name (in any case), which the certificate
    /// carries anyway; any other name is refused
    /// ([`CaError::ExtraDnsName`]). A certificate names no identity but
    /// its own, as Linkerd's identity service issues them (it signs a
    /// request only when its one DNS name is the identity's): a client
    /// expecting a DNS-style identity accepts any DNS name of a
    /// certificate, as Linkerd's clients do (see
    /// [what a certificate proves](crate::connect#what-a-certificate-proves)),
    /// so a service hostname or another workload's name would let the
    /// workload pass for whoever that name identifies. A single label is
    /// no identity (a DNS-style identity has two labels at least), and
    /// proves nothing to a mesh client. A name that is no host name is
    /// refused first, as [`CaError::InvalidDnsName`].
    ///
    /// [`CaError::ExtraDnsName`]: super::CaError::ExtraDnsName
    /// [`CaError::InvalidDnsName`]: super::CaError::InvalidDnsName
    pub dns_names: Vec<String>,
}

impl IssueRequest {
    /// A request for `identity` with the defaults.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            ttl: DEFAULT_WORKLOAD_TTL,
            not_before: None,
            dns_names: Vec::new(),
        }
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets when the certificate becomes valid.
    #[must_use]
    pub fn with_not_before(mut self, not_before: SystemTime) -> Self {
        self.not_before = Some(not_before);
        self
    }

    /// Adds a DNS name beside the identity: a single-label one such as
    /// `localhost`, since the CA refuses any name that could be an identity
    /// (see [`dns_names`](Self::dns_names)).
    #[must_use]
    pub fn with_dns_name(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }
}

/// Whether `name` may go into a dNSName SAN: a host name in the preferred
/// name syntax (RFC 5280 §4.2.1.6, which has no final dot), as
/// rustls-pki-types reads one (underscores allowed, a numeric last label
/// not, since that is an IPv4 address), optionally under one leading `*.`
/// wildcard label.
fn is_host_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.ends_with('.') && rustls_pki_types::DnsName::try_from(host).is_ok()
}

/// A workload certificate, its key and the trust bundle, as PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    identity: Identity,
    chain_pem: String,
    key_pem: String,
    bundle_pem: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl IssuedCertificate {
    /// The identity the certificate names.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The workload certificate then the issuer certificate, PEM.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The workload's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The trust anchor, PEM.
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }

    /// When the certificate becomes valid: a minute before it was issued,
    /// unless the request said otherwise.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// How long after `now` to replace this certificate: at 70 % of the
    /// time it has left to serve, within
    /// [`renew_after`](super::renew_after)'s bounds. A certificate valid
    /// now serves from now; one valid only from a later `notBefore` serves
    /// from then, and the wait counts from then too, so that it is not
    /// replaced before (or soon after) it begins to serve. The wait comes
    /// from the certificate's own dates rather than the ttl asked for, so
    /// that a certificate shortened to end with its issuer is renewed in
    /// time too.
    pub fn renew_after(&self, now: SystemTime) -> Duration {
        let serves_from = now.max(self.not_before);
        let until_valid = serves_from.duration_since(now).unwrap_or_default();
        let left = self
            .not_after
            .duration_since(serves_from)
            .unwrap_or_default();
        until_valid.saturating_add(super::renew_after(left))
    }

    /// The certificate, key and bundle as [`Credentials`].
    ///
    /// # Errors
    ///
    /// Only if the CA produced something unusable, which its tests rule out.
    pub fn credentials(&self) -> Result<Credentials, CredentialError> {
        Credentials::from_pem(
            self.chain_pem.as_bytes(),
            self.key_pem.as_bytes(),
            self.bundle_pem.as_bytes(),
        )
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("identity", &self.identity)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Issues a certificate for `identity` living `ttl`.
    ///
    /// # Errors
    ///
    /// See [`CertificateAuthority::issue_with`].
    pub fn issue(&self, identity: &Identity, ttl: Duration) -> Result<IssuedCertificate, CaError> {
        self.issue_with(&IssueRequest::new(identity.clone()).with_ttl(ttl))
    }

    /// Issues a workload certificate as `request` describes, with a new
    /// ECDSA P-256 key.
    ///
    /// # Errors
    ///
    /// [`CaError::OutsideTrustDomain`] for an identity in another trust
    /// domain (a DNS-style identity must end with `.<trust domain>`);
    /// [`CaError::NoWorkloadPath`] for the trust domain's own SPIFFE ID, or
    /// its own name as a DNS-style identity;
    /// [`CaError::InvalidLifetime`] for a `ttl` under
    /// [`MIN_LIFETIME`](super::MIN_LIFETIME) (a second) or over
    /// [`MAX_LIFETIME`](super::MAX_LIFETIME);
    /// [`CaError::IssuerExpired`] once the issuer has expired, and
    /// [`CaError::IssuerNotYetValid`] before it is valid (each inside a
    /// [`CaError::InFile`] naming `issuer.crt` for a CA
    /// [loaded](Self::load) from a directory);
    /// [`CaError::AnchorExpired`] once the trust anchor has expired (inside
    /// a [`CaError::InFile`] naming `ca.crt` for a loaded CA);
    /// [`CaError::OutlivesIssuer`] when the certificate would expire after
    /// the issuer, and [`CaError::OutlivesAnchor`] after the trust anchor,
    /// when that expires first; [`CaError::InvalidDnsName`] for an extra
    /// DNS name that is no host name, and [`CaError::ExtraDnsName`] for one
    /// of more than one label that is not the identity's own.
    pub fn issue_with(&self, request: &IssueRequest) -> Result<IssuedCertificate, CaError> {
        self.issue_with_at(request, self.now())
    }

    /// [`issue_with`](Self::issue_with) at `now`.
    pub(crate) fn issue_with_at(
        &self,
        request: &IssueRequest,
        now: SystemTime,
    ) -> Result<IssuedCertificate, CaError> {
        let identity = &request.identity;
        // The trust domain's own name is no workload's, whether spelled as
        // a SPIFFE ID without a path or as a DNS-style name; refused as
        // such rather than as outside the trust domain it spells.
        if identity.path() == Some("")
            || (!identity.is_spiffe() && identity.as_str() == self.trust_domain.as_str())
        {
            return Err(CaError::NoWorkloadPath(identity.clone()));
        }
        if !in_trust_domain(&self.trust_domain, identity) {
            return Err(CaError::OutsideTrustDomain {
                identity: identity.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        self.check_issuer_valid(now)?;
        let mut params = CertificateParams::default();
        // The identity lives in the SAN; the subject stays empty, as in a
        // SPIFFE X.509-SVID, and rcgen marks the SAN critical for it.
        params.distinguished_name = DistinguishedName::new();
        let name = identity.as_str().try_into()?;
        params.subject_alt_names = vec![if identity.is_spiffe() {
            SanType::URI(name)
        } else {
            SanType::DnsName(name)
        }];
        // No name that could be an identity is written but the identity,
        // as Linkerd's identity service writes only the identity's: a
        // client expecting a DNS-style identity accepts any DNS name of a
        // certificate, so such a name would let this workload pass for
        // whoever it names. A single-label name (`localhost`) is no
        // identity, and proves nothing to a mesh client.
        for dns in &request.dns_names {
            if !is_host_name(dns) {
                return Err(CaError::InvalidDnsName(dns.clone()));
            }
            if !identity.is_spiffe() && dns.eq_ignore_ascii_case(identity.as_str()) {
                continue;
            }
            if dns.contains('.') {
                return Err(CaError::ExtraDnsName {
                    name: dns.clone(),
                    identity: identity.clone(),
                });
            }
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into()?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial()?);
        let (not_before, not_after) =
            set_validity(&mut params, now, request.not_before, request.ttl)?;
        let (until, outlives) = self.signs_until(not_after);
        if not_after > until {
            return Err(outlives);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut chain_pem = cert.pem();
        chain_pem.push_str(&self.issuer_pem);
        Ok(IssuedCertificate {
            identity: identity.clone(),
            chain_pem,
            key_pem: key.serialize_pem(),
            bundle_pem: self.anchor_pem.clone(),
            not_before,
            not_after,
        })
    }
}
