//! The CA: file layout, permissions, and what it refuses to issue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{path::Path, time::Duration};

use mesh_tls::{
    CredentialFiles,
    ca::{self, CaError, CertificateAuthority, IssueRequest},
};
use support::*;
use x509_parser::{extensions::GeneralName, prelude::FromDer};

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn write_ca_and_issue_write_the_documented_files_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_dir, out) = (dir.path().join("ca"), dir.path().join("web"));
    let ca = ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    assert_eq!(ca.trust_domain().as_str(), "example.org");
    let issued = ca::issue(&ca_dir, &id(WEB), ca::DEFAULT_WORKLOAD_TTL, &out).unwrap();

    for file in ["ca.crt", "ca.key", "issuer.crt", "issuer.key"] {
        assert!(ca_dir.join(file).is_file(), "{file}");
    }
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&ca_dir.join("ca.key")), 0o600);
        assert_eq!(mode(&ca_dir.join("issuer.key")), 0o600);
        assert_eq!(mode(&out.join("tls.key")), 0o600);
        assert_eq!(mode(&out.join("tls.crt")), 0o644);
    }
    assert_eq!(
        std::fs::read(out.join("ca.crt")).unwrap(),
        std::fs::read(ca_dir.join("ca.crt")).unwrap(),
        "the bundle is the trust anchor"
    );
    let creds = CredentialFiles::in_dir(&out).read().unwrap();
    assert_eq!(creds.identity(), &id(WEB));
    assert_eq!(creds.chain().len(), 2, "workload certificate then issuer");
    creds.check(std::time::SystemTime::now()).unwrap();
    let lifetime = creds
        .not_after()
        .duration_since(creds.not_before())
        .unwrap();
    // Valid for the whole ttl from issue, plus the backdate before it.
    assert_eq!(lifetime, ca::DEFAULT_WORKLOAD_TTL + ca::BACKDATE);
    assert_eq!(issued.not_after(), creds.not_after());
}

/// A private key is written through a temporary file beside it, then
/// renamed. Whatever already sits at the temporary file's name (left
/// there, or planted by someone who can write to the directory) is not
/// written through: a symbolic link there must not send the key to the
/// file it points at, nor leave the key file a link to it.
#[cfg(unix)]
#[test]
fn a_key_is_never_written_through_a_link_at_its_temporary_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("web");
    std::fs::create_dir(&out).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "not a key").unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join(".tls.key.tmp")).unwrap();

    let issued = ca().issue(&id(WEB), HOUR).unwrap();
    issued.write(&out).unwrap();
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "not a key");
    let key = out.join("tls.key");
    assert!(std::fs::symlink_metadata(&key).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), issued.key_pem());
    assert_eq!(mode(&key), 0o600);
    CredentialFiles::in_dir(&out).read().unwrap();
}

/// An extra DNS name that is no host name is refused by name (RFC 5280
/// §4.2.1.6 wants a host name in a dNSName SAN), before the rule below.
#[test]
fn extra_dns_names_that_are_not_host_names_are_refused_by_name() {
    let ca = ca();
    for bad in [
        "",
        "spiffe://example.org/ns/shop/sa/admin",
        "web shop.svc",
        "web.shop.svc.",
        "a..b",
        "-a.b",
        "*.",
        "*",
        "a.*.b",
        "10.0.0.1",
        "h\u{e9}llo.example",
    ] {
        let request = IssueRequest::new(id(WEB)).with_dns_name(bad);
        let error = ca.issue_with(&request).unwrap_err();
        assert!(
            matches!(&error, CaError::InvalidDnsName(name) if name == bad),
            "{bad:?}: {error:?}"
        );
        assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
    }
}

/// A certificate names its identity and no other, as Linkerd's identity
/// service issues them (its CSR check wants exactly one DNS name, the
/// identity's, and no other SAN): a client expecting a DNS-style identity
/// accepts any DNS name of a certificate, so an extra name, within the
/// trust domain or not, would let the workload pass for whoever that name
/// identifies. A single-label name such as `localhost`, which no identity
/// can be (a DNS-style identity has two labels at least), is still written
/// for the tools that check it.
#[test]
fn extra_dns_names_that_could_be_identities_are_refused_naming_both() {
    let ca = ca();
    for extra in [
        "api.shop.svc.cluster.local",
        "api.emojivoto.serviceaccount.identity.linkerd.example.org",
        "*.example.org",
        "*.localhost",
        "my_host.local",
        "evil.com",
    ] {
        let request = IssueRequest::new(id(WEB)).with_dns_name(extra);
        let error = ca.issue_with(&request).unwrap_err();
        assert!(
            matches!(&error, CaError::ExtraDnsName { name, identity }
                if name == extra && *identity == id(WEB)),
            "{extra:?}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{extra:?}")), "{message}");
        assert!(message.contains(WEB), "{message}");
    }

    let issued = ca
        .issue_with(
            &IssueRequest::new(id(WEB))
                .with_dns_name("localhost")
                .with_dns_name("web"),
        )
        .unwrap();
    let creds = issued.credentials().unwrap();
    assert_eq!(
        sans(creds.chain()[0].as_ref()),
        (
            vec![WEB.to_owned()],
            vec!["localhost".to_owned(), "web".to_owned()]
        )
    );
    assert_eq!(creds.identity(), &id(WEB));

    // A DNS-style identity's own name, in any case, is what the
    // certificate carries anyway: it is written once.
    let dns_ca = CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap();
    let dns_id = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
    let issued = dns_ca
        .issue_with(
            &IssueRequest::new(id(dns_id))
                .with_dns_name(dns_id)
                .with_dns_name(dns_id.to_uppercase()),
        )
        .unwrap();
    let creds = issued.credentials().unwrap();
    assert_eq!(
        sans(creds.chain()[0].as_ref()),
        (vec![], vec![dns_id.to_owned()])
    );
    let other = "api.emojivoto.serviceaccount.identity.linkerd.cluster.local";
    let error = dns_ca
        .issue_with(&IssueRequest::new(id(dns_id)).with_dns_name(other))
        .unwrap_err();
    assert!(
        matches!(&error, CaError::ExtraDnsName { name, .. } if name == other),
        "{error:?}"
    );
}

#[test]
fn write_ca_refuses_to_replace_an_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let td = "example.org".parse().unwrap();
    ca::write_ca(dir.path(), &td).unwrap();
    let before = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let error = ca::write_ca(dir.path(), &td).unwrap_err();
    assert!(matches!(error, CaError::AlreadyExists(_)), "{error:?}");
    assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), before);
}

#[test]
fn identities_outside_the_trust_domain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    for outsider in [
        "spiffe://other.org/ns/emojivoto/sa/web",
        "spiffe://example.org.evil/ns/a/sa/b",
        "web.emojivoto.serviceaccount.identity.linkerd.other.org",
    ] {
        let error = ca::issue(&ca_dir, &id(outsider), HOUR, &dir.path().join("out")).unwrap_err();
        assert!(
            matches!(&error, CaError::OutsideTrustDomain { identity, trust_domain }
                if *identity == id(outsider) && trust_domain.as_str() == "example.org"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("identity {outsider} is outside the ca's trust domain example.org")
        );
    }
    assert!(!dir.path().join("out").exists(), "nothing was written");
}

/// The trust domain's own name, as a SPIFFE ID or as a DNS-style name,
/// names no workload: the CA refuses both for that reason, not as an
/// identity "outside" the trust domain it spells.
#[test]
fn the_trust_domains_own_name_is_refused_as_no_workload() {
    let ca = ca();
    for name in ["spiffe://example.org", "example.org"] {
        let error = ca.issue(&id(name), HOUR).unwrap_err();
        assert!(
            matches!(&error, CaError::NoWorkloadPath(identity) if *identity == id(name)),
            "{name}: {error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains(name) && text.contains("not a workload"),
            "{text}"
        );
    }
}

fn sans(der: &[u8]) -> (Vec<String>, Vec<String>) {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    let (mut uris, mut dns) = (Vec::new(), Vec::new());
    for name in &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
    {
        match name {
            GeneralName::URI(u) => uris.push(u.to_string()),
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            _ => {}
        }
    }
    (uris, dns)
}

#[test]
fn workload_certificates_carry_the_identity_both_purposes_and_a_p256_key() {
    let ca = ca();
    let issued = ca.issue_with(&IssueRequest::new(id(WEB))).unwrap();
    let creds = issued.credentials().unwrap();
    let der = creds.chain()[0].as_ref();
    assert_eq!(sans(der), (vec![WEB.to_owned()], vec![]));
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!cert.is_ca());
    assert_eq!(
        cert.public_key()
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap(),
        x509_parser::oid_registry::OID_EC_P256
    );
    assert!(issued.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    let dns_ca = CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap();
    let dns_id = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
    let dns = dns_ca
        .issue(&id(dns_id), HOUR)
        .unwrap()
        .credentials()
        .unwrap();
    assert_eq!(
        sans(dns.chain()[0].as_ref()),
        (vec![], vec![dns_id.to_owned()])
    );
    assert_eq!(dns.identity(), &id(dns_id));
}

#[test]
fn a_loaded_ca_issues_into_the_same_trust_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let written = ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let loaded = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(loaded.trust_domain(), written.trust_domain());
    assert_eq!(loaded.bundle_pem(), written.bundle_pem());
    let creds = loaded.issue(&id(WEB), HOUR).unwrap().credentials().unwrap();
    assert_eq!(
        creds.roots()[0].as_ref(),
        written
            .issue(&id(WEB), HOUR)
            .unwrap()
            .credentials()
            .unwrap()
            .roots()[0]
            .as_ref()
    );
    creds.check(std::time::SystemTime::now()).unwrap();

    // An issuer key from another CA is refused.
    let other = tempfile::tempdir().unwrap();
    ca::write_ca(other.path(), &"example.org".parse().unwrap()).unwrap();
    std::fs::copy(
        other.path().join("issuer.key"),
        dir.path().join("issuer.key"),
    )
    .unwrap();
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, CaError::InFile { source, .. }
            if matches!(**source, CaError::InvalidCa(ca::InvalidCa::KeyMismatch))),
        "{error:?}"
    );
}

#[test]
fn lifetimes_that_are_zero_overlong_or_past_the_issuer_are_refused() {
    let ca = CertificateAuthority::generate_with_lifetime("example.org".parse().unwrap(), 2 * HOUR)
        .unwrap();
    for ttl in [Duration::ZERO, ca::MAX_LIFETIME + Duration::from_secs(1)] {
        assert!(matches!(
            ca.issue(&id(WEB), ttl),
            Err(CaError::InvalidLifetime(_))
        ));
    }
    // The refusal says when the certificate would end and when the issuer
    // does, so that the operator knows what ttl would do, or that the
    // issuer needs renewing.
    let asked = std::time::SystemTime::now() + 3 * HOUR;
    match ca.issue(&id(WEB), 3 * HOUR) {
        Err(CaError::OutlivesIssuer {
            not_after,
            issuer_not_after,
        }) => {
            assert_eq!(issuer_not_after, ca.issuer_not_after());
            assert!(not_after > issuer_not_after);
            assert!(not_after <= asked + Duration::from_secs(1));
            assert!(not_after + Duration::from_secs(2) > asked);
        }
        other => panic!("{other:?}"),
    }
    assert!(ca.issue(&id(WEB), HOUR).is_ok());
}

#[test]
fn a_ca_whose_issuer_the_trust_anchor_does_not_vouch_for_is_refused_when_loaded() {
    // An issuer (certificate and its key) from another CA beside this
    // CA's anchor: everything it signed would be untrusted.
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ca::write_ca(other.path(), &"example.org".parse().unwrap()).unwrap();
    for file in [ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE] {
        std::fs::copy(other.path().join(file), dir.path().join(file)).unwrap();
    }
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, CaError::InFile { path, source }
            if path.ends_with(ca::ISSUER_CERT_FILE)
                && matches!(**source, CaError::IssuerNotTrusted(_))),
        "{error:?}"
    );

    // A workload certificate as the issuer: the anchor signed it, but it
    // may not sign certificates.
    let raw = RawIssuer::new();
    let (chain, key) = raw.sign(&RawIssuer::params(vec![uri_san("spiffe://example.org")]));
    let error = CertificateAuthority::from_pem(raw.bundle_pem(), &chain, &key).unwrap_err();
    assert!(matches!(error, CaError::IssuerNotTrusted(_)), "{error:?}");

    // The CA as written still loads.
    let fresh = tempfile::tempdir().unwrap();
    ca::write_ca(fresh.path(), &"example.org".parse().unwrap()).unwrap();
    CertificateAuthority::load(fresh.path()).unwrap();
}

/// A trust anchor that is not a CA certificate makes a trust bundle the
/// credential store refuses (CredentialError::AnchorNotCa): the CA refuses
/// it when loaded, naming ca.crt, rather than issue credentials that can
/// never be put in service.
#[test]
fn a_ca_whose_trust_anchor_is_no_ca_certificate_is_refused_when_loaded() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let params = |name: &str, is_ca| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = is_ca;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("not a ca", IsCa::ExplicitNoCa);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = params("issuer", IsCa::Ca(BasicConstraints::Constrained(0)))
        .signed_by(&issuer_key, &anchor_signer)
        .unwrap()
        .pem();

    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        (ca::CA_CERT_FILE, anchor),
        (ca::ISSUER_CERT_FILE, issuer),
        (ca::ISSUER_KEY_FILE, issuer_key.serialize_pem()),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, CaError::InFile { path, source }
            if path.ends_with(ca::CA_CERT_FILE)
                && matches!(**source, CaError::InvalidCa(ca::InvalidCa::AnchorNotCa))),
        "{error:?}"
    );
}

#[test]
fn a_ca_directory_that_cannot_be_loaded_names_the_file_at_fault() {
    let other = tempfile::tempdir().unwrap();
    ca::write_ca(other.path(), &"example.org".parse().unwrap()).unwrap();
    let other_key = std::fs::read(other.path().join(ca::ISSUER_KEY_FILE)).unwrap();
    let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
    let cases: Vec<(&str, Vec<u8>, ca::InvalidCa)> = vec![
        (
            ca::CA_CERT_FILE,
            garbage.to_vec(),
            ca::InvalidCa::BadCertificate,
        ),
        (ca::CA_CERT_FILE, Vec::new(), ca::InvalidCa::BadCertificate),
        (
            ca::ISSUER_CERT_FILE,
            b"not pem".to_vec(),
            ca::InvalidCa::BadCertificate,
        ),
        (
            ca::ISSUER_KEY_FILE,
            b"not pem".to_vec(),
            ca::InvalidCa::BadKey,
        ),
        (ca::ISSUER_KEY_FILE, Vec::new(), ca::InvalidCa::BadKey),
        (ca::ISSUER_KEY_FILE, other_key, ca::InvalidCa::KeyMismatch),
    ];
    for (file, contents, problem) in cases {
        let dir = tempfile::tempdir().unwrap();
        ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
        std::fs::write(dir.path().join(file), contents).unwrap();
        let error = CertificateAuthority::load(dir.path()).unwrap_err();
        match &error {
            CaError::InFile { path, source } => {
                assert_eq!(path, &dir.path().join(file), "{file}");
                assert!(
                    matches!(**source, CaError::InvalidCa(found) if found == problem),
                    "{file}: {source:?}"
                );
            }
            other => panic!("{file}: the file is not named: {other:?}"),
        }
        assert!(error.to_string().contains(file), "{file}: {error}");
    }
}

/// An issuer whose extended key usage leaves out server authentication
/// signs workload certificates that no client accepts from a server (webpki
/// checks the purposes of every certificate on the path), and that every
/// credential store refuses, since a mesh certificate serves both ends. The
/// CA refuses it when loaded, naming issuer.crt, rather than issue
/// credentials that can never be put in service; and the same for client
/// authentication.
#[test]
fn a_ca_whose_issuer_may_not_vouch_for_both_ends_is_refused_when_loaded() {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let params = |name: &str, path_len, ekus| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = ekus;
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("anchor", 1, Vec::new());
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_signer = rcgen::Issuer::new(anchor_params, anchor_key);
    for eku in [
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ] {
        let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = params("issuer", 0, vec![eku.clone()])
            .signed_by(&issuer_key, &anchor_signer)
            .unwrap()
            .pem();
        let dir = tempfile::tempdir().unwrap();
        for (name, pem) in [
            (ca::CA_CERT_FILE, anchor.clone()),
            (ca::ISSUER_CERT_FILE, issuer),
            (ca::ISSUER_KEY_FILE, issuer_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let error = match CertificateAuthority::load(dir.path()) {
            Ok(ca) => {
                let issued = ca.issue(&id(WEB), HOUR).unwrap();
                let refused = mesh_tls::CredentialStore::default()
                    .update(issued.credentials().unwrap())
                    .unwrap_err();
                panic!(
                    "an issuer limited to {eku:?} loaded; the store refuses what it issues: {refused}"
                );
            }
            Err(error) => error,
        };
        assert!(
            matches!(&error, CaError::InFile { path, source }
                if path.ends_with(ca::ISSUER_CERT_FILE)
                    && matches!(**source, CaError::IssuerNotTrusted(_))),
            "{eku:?}: {error:?}"
        );
    }

    // Both purposes, as some corporate CAs set them, is fine.
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let both = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let issuer = params("issuer", 0, both)
        .signed_by(&issuer_key, &anchor_signer)
        .unwrap()
        .pem();
    let ca = CertificateAuthority::from_pem(&anchor, &issuer, &issuer_key.serialize_pem()).unwrap();
    mesh_tls::CredentialStore::default()
        .update(ca.issue(&id(WEB), HOUR).unwrap().credentials().unwrap())
        .unwrap();
}

/// A CA file is read with the bound of a credential file
/// (`creds::MAX_FILE_SIZE`): one larger is refused, naming it, rather than
/// read until memory runs out when the path names something endless.
#[test]
fn a_ca_file_larger_than_any_certificate_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let anchor = dir.path().join(ca::CA_CERT_FILE);
    let mut contents = std::fs::read(&anchor).unwrap();
    contents.resize(5 * 1024 * 1024, b'\n');
    std::fs::write(&anchor, contents).unwrap();
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, CaError::Io { path, source } if *path == anchor && source.to_string().contains("MiB")),
        "{error:?}"
    );
}

/// `write_ca` takes an existing `ca.crt` for a CA and refuses to replace
/// it. A write that fails part-way (a full disk, an interrupted command)
/// must not leave `ca.crt` behind without the keys: the CA could then
/// neither be loaded nor written again, and the anchor's key would be lost
/// beside a certificate that looks like a CA. So `ca.crt` is written last,
/// and a failed write can be run again.
#[test]
fn a_ca_write_that_fails_part_way_leaves_no_trust_anchor_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    // Something in the way of the issuer key.
    let obstacle = dir.path().join(ca::ISSUER_KEY_FILE);
    std::fs::create_dir(&obstacle).unwrap();
    std::fs::write(obstacle.join("keep"), "x").unwrap();
    let domain = "example.org".parse().unwrap();
    let error = ca::write_ca(dir.path(), &domain).unwrap_err();
    assert!(
        matches!(&error, CaError::Io { path, .. } if *path == obstacle),
        "{error:?}"
    );
    assert!(!dir.path().join(ca::CA_CERT_FILE).exists());

    std::fs::remove_dir_all(&obstacle).unwrap();
    ca::write_ca(dir.path(), &domain).unwrap();
    CertificateAuthority::load(dir.path()).unwrap();
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A write that fails part-way leaves no temporary file behind: the one
/// beside the issuer key holds the key, which must not lie about under
/// another name once the write is given up.
#[test]
fn a_failed_write_leaves_no_temporary_file_holding_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let obstacle = dir.path().join(ca::ISSUER_KEY_FILE);
    std::fs::create_dir(&obstacle).unwrap();
    std::fs::write(obstacle.join("keep"), "x").unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap_err();
    assert_eq!(
        names_in(dir.path()),
        [ca::CA_KEY_FILE, ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE],
        "no temporary file is left"
    );
}

/// A renewal replaces the files of the last one: each is renamed over the
/// old, so a reader that opened the old file reads it whole, the new file
/// has its own mode whatever the old one had (a key copied in with 0644
/// becomes 0600), a link at a file's name is replaced rather than written
/// through, and no temporary file is left.
#[cfg(unix)]
#[test]
fn a_renewal_renames_each_file_over_the_last_with_keys_0600() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("web");
    let ca = ca();
    let first = ca.issue(&id(WEB), HOUR).unwrap();
    first.write(&out).unwrap();
    let key = out.join("tls.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut old_key = std::fs::File::open(&key).unwrap();
    let elsewhere = dir.path().join("elsewhere.crt");
    std::fs::write(&elsewhere, first.chain_pem()).unwrap();
    std::fs::remove_file(out.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("tls.crt")).unwrap();

    let second = ca.issue(&id(WEB), HOUR).unwrap();
    second.write(&out).unwrap();
    let mut read = String::new();
    old_key.read_to_string(&mut read).unwrap();
    assert_eq!(
        read,
        first.key_pem(),
        "the old file stays whole for its readers"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), second.key_pem());
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&out.join("tls.crt")), 0o644);
    assert!(
        std::fs::symlink_metadata(out.join("tls.crt"))
            .unwrap()
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        first.chain_pem()
    );
    assert_eq!(names_in(&out), ["ca.crt", "tls.crt", "tls.key"]);
    let creds = CredentialFiles::in_dir(&out).read().unwrap();
    assert_eq!(creds.not_after(), second.not_after());
}

/// The issuer's and the anchor's certificate files are copied into every
/// workload's `tls.crt` and `ca.crt`, which are readable by all. A file
/// that also holds a private key (the issuer's, appended as some tools
/// write a certificate and its key into one PEM file) would hand that key
/// to every workload, and every workload could then sign any identity: the
/// CA refuses to load it, naming the file, rather than copy the key out.
#[test]
fn a_ca_certificate_file_holding_a_private_key_is_refused_naming_it() {
    for (file, key_file) in [
        (ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE),
        (ca::CA_CERT_FILE, ca::CA_KEY_FILE),
        (ca::ISSUER_CERT_FILE, ca::CA_KEY_FILE),
    ] {
        let dir = tempfile::tempdir().unwrap();
        ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
        let mut contents = std::fs::read_to_string(dir.path().join(file)).unwrap();
        contents.push_str(&std::fs::read_to_string(dir.path().join(key_file)).unwrap());
        std::fs::write(dir.path().join(file), &contents).unwrap();

        let loaded = CertificateAuthority::load(dir.path());
        if let Ok(ca) = &loaded {
            let issued = ca.issue(&id(WEB), HOUR).unwrap();
            assert!(
                !issued.chain_pem().contains("PRIVATE KEY")
                    && !issued.bundle_pem().contains("PRIVATE KEY"),
                "{file}: a key was handed out"
            );
        }
        let error = loaded.unwrap_err();
        assert!(
            matches!(&error, CaError::InFile { path, source }
                if *path == dir.path().join(file)
                    && matches!(**source, CaError::InvalidCa(ca::InvalidCa::KeyInCertificateFile))),
            "{file}: {error:?}"
        );
        let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(message.contains(file), "{message}");
        assert!(message.contains("private key"), "{message}");
    }
}

/// An issuer renewed on a machine whose clock runs ahead is not valid yet
/// here: everything it signs now fails to verify until then, as "not
/// valid yet". The CA says so, naming the issuer and when it becomes
/// valid, rather than issue credentials that every check refuses, as
/// Linkerd's identity service checks its issuer before each certificate.
#[test]
fn an_issuer_not_valid_yet_is_named_when_issuing() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = std::time::SystemTime::now();
    let params = |name: &str, path_len, not_before: std::time::SystemTime| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before.into();
        params.not_after = (now + 30 * 24 * HOUR).into();
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("anchor", 1, now - HOUR);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let starts = now + 2 * HOUR;
    let issuer = params("issuer", 0, starts)
        .signed_by(&issuer_key, &anchor_signer)
        .unwrap()
        .pem();
    let ca = CertificateAuthority::from_pem(&anchor, &issuer, &issuer_key.serialize_pem()).unwrap();

    let error = ca.issue(&id(WEB), HOUR).unwrap_err();
    assert!(
        matches!(&error, CaError::IssuerNotYetValid { not_before }
            if not_before.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs()
                == starts.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs()),
        "{error:?}"
    );
    assert!(error.to_string().contains("not valid until"), "{error}");
    let error = ca.issue_within_issuer(&id(WEB), HOUR).unwrap_err();
    assert!(
        matches!(&error, CaError::IssuerNotYetValid { .. }),
        "{error:?}"
    );
}

/// The shape of what the CA signs, as a Linkerd trust anchor and issuer
/// are made (`step certificate create --profile root-ca`, then
/// `--profile intermediate-ca`): the anchor may sign one CA below it, the
/// issuer none, both only certificates and CRLs besides signatures, with
/// critical basic constraints and key usage (RFC 5280 §4.2.1.3, §4.2.1.9);
/// a workload certificate is no CA and may only sign (its ECDSA key
/// encrypts nothing), for both ends of a connection.
#[test]
fn anchors_issuers_and_workloads_carry_their_constraints_and_key_usages() {
    use x509_parser::certificate::X509Certificate;
    let ca = ca();
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    let creds = issued.credentials().unwrap();
    let anchor = creds.roots()[0].clone();
    let (leaf, issuer) = (&creds.chain()[0], &creds.chain()[1]);
    fn parse(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).unwrap().1
    }
    let (anchor, issuer, leaf) = (
        parse(anchor.as_ref()),
        parse(issuer.as_ref()),
        parse(leaf.as_ref()),
    );
    for (name, cert, path_len) in [("anchor", &anchor, 1), ("issuer", &issuer, 0)] {
        let constraints = cert.basic_constraints().unwrap().unwrap();
        assert!(constraints.critical, "{name}");
        assert!(constraints.value.ca, "{name}");
        assert_eq!(
            constraints.value.path_len_constraint,
            Some(path_len),
            "{name}"
        );
        let usage = cert.key_usage().unwrap().unwrap();
        assert!(usage.critical, "{name}");
        assert!(
            usage.value.key_cert_sign() && usage.value.crl_sign(),
            "{name}: {}",
            usage.value
        );
    }
    let constraints = leaf.basic_constraints().unwrap().unwrap();
    assert!(!constraints.value.ca);
    let usage = leaf.key_usage().unwrap().unwrap();
    assert!(usage.critical);
    assert_eq!(usage.value.to_string(), "Digital Signature");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.any);
    assert_eq!(
        leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp(),
        (HOUR + ca::BACKDATE).as_secs() as i64
    );
}

/// A trust anchor's path length constraint says how many CA certificates
/// may stand below it. webpki, which the mesh verifies with, reads no
/// constraint of a trust anchor, but OpenSSL and Go's crypto/x509 (curl,
/// Linkerd's own checks) enforce it, and refuse every certificate an
/// issuer below an anchor of path length 0 signs. The CA refuses such a
/// directory when loaded, naming ca.crt and both counts.
#[test]
fn a_trust_anchor_whose_path_length_leaves_no_room_for_the_issuer_is_refused() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = std::time::SystemTime::now();
    let params = |name: &str, path_len| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = (now - HOUR).into();
        params.not_after = (now + 30 * 24 * HOUR).into();
        params
    };
    let key = || KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    for (anchor_len, refused) in [(0, true), (1, false)] {
        let anchor_key = key();
        let anchor_params = params("anchor", anchor_len);
        let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
        let anchor_signer = rcgen::Issuer::new(anchor_params, anchor_key);
        let issuer_key = key();
        let issuer = params("issuer", 0)
            .signed_by(&issuer_key, &anchor_signer)
            .unwrap()
            .pem();
        let dir = tempfile::tempdir().unwrap();
        for (name, pem) in [
            (ca::CA_CERT_FILE, anchor),
            (ca::ISSUER_CERT_FILE, issuer),
            (ca::ISSUER_KEY_FILE, issuer_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let loaded = CertificateAuthority::load(dir.path());
        if !refused {
            loaded.unwrap();
            continue;
        }
        let error = loaded.unwrap_err();
        match &error {
            CaError::InFile { path, source } => {
                assert_eq!(path, &dir.path().join(ca::CA_CERT_FILE));
                assert!(
                    matches!(
                        **source,
                        CaError::InvalidCa(ca::InvalidCa::AnchorPathLength {
                            allows: 0,
                            needs: 1
                        })
                    ),
                    "{source:?}"
                );
                let text = source.to_string();
                assert!(text.contains("path length"), "{text}");
            }
            other => panic!("ca.crt is not named: {other:?}"),
        }
    }
}
