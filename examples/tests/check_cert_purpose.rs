//! `sidecar check` on a workload certificate whose extended key usage
//! leaves out one end of a connection blames the certificate file and
//! names the purpose left out. The chain may lead to the bundle all right:
//! who issued it and which anchors the bundle holds, what the check says
//! of a chain from another CA, would send the operator to the wrong file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::config::check_identity;

use std::path::Path;
use std::time::{Duration, SystemTime};

use mesh_examples::sidecar::check::Status;
use mesh_tls::ca::{CA_CERT_FILE, CertificateAuthority, ISSUER_CERT_FILE, ISSUER_KEY_FILE};
use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

const TITLE: &str = "certificate chain verifies against the trust bundle";
const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// Writes into `certs` a workload certificate for `WEB`, from the mesh's
/// CA, whose extended key usage is `usages` alone, with that CA's bundle.
fn write_limited_to(usages: Vec<ExtendedKeyUsagePurpose>, ca_dir: &Path, certs: &Path) {
    let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
    ca.write(ca_dir).unwrap();
    let read = |name| std::fs::read_to_string(ca_dir.join(name)).unwrap();
    let issuer_key = KeyPair::from_pem(&read(ISSUER_KEY_FILE)).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&read(ISSUER_CERT_FILE), issuer_key).unwrap();
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(WEB.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(3600)).into();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = params.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(certs).unwrap();
    std::fs::write(certs.join("tls.key"), key.serialize_pem()).unwrap();
    std::fs::write(certs.join("tls.crt"), leaf.pem() + &read(ISSUER_CERT_FILE)).unwrap();
    std::fs::write(certs.join("ca.crt"), read(CA_CERT_FILE)).unwrap();
}

#[tokio::test]
async fn a_certificate_limited_to_server_auth_is_blamed_on_tls_crt_without_the_bundle_listing() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("web");
    write_limited_to(
        vec![ExtendedKeyUsagePurpose::ServerAuth],
        &dir.path().join("ca"),
        &certs,
    );

    let report = check_identity(dir.path(), &certs).await;
    let check = report
        .find(TITLE)
        .unwrap_or_else(|| panic!("no chain check in\n{report}"));
    assert_eq!(check.status, Status::Fail, "{report}");
    let detail = check.detail.clone().unwrap();
    assert!(
        detail.contains("leaves out client authentication"),
        "{detail}"
    );
    assert!(
        detail.starts_with(&format!(
            "in {}, the workload certificate (certificate 1 of the chain) has an extended key \
             usage that leaves out client authentication",
            certs.join("tls.crt").display()
        )),
        "names the certificate file: {detail}"
    );
    // Nothing about who issued the chain or what the bundle holds: the
    // bundle is not at fault.
    assert!(!detail.contains("the trust bundle"), "{detail}");
    assert!(!detail.contains("was issued by"), "{detail}");
    assert!(!detail.contains("ca.crt"), "{detail}");
    assert!(check.hint.is_none(), "{report}");
    assert!(!report.is_success());
}
