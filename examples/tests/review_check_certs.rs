//! `sidecar check` on a chain that does not verify against its trust
//! bundle says which files it read and what is in them: who issued the
//! chain, which anchors the bundle holds, and what to put where. "caused
//! by: UnknownIssuer" alone leaves the operator to find out with openssl
//! which CA each file is of. Two CAs may well have anchors of one name
//! (Linkerd's guides make every one `root.linkerd.cluster.local`): then
//! the keys tell them apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::config::check_identity;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_examples::sidecar::check::{Report, Status};
use mesh_tls::ca::{self, CertificateAuthority, IssueRequest};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};

const TITLE: &str = "certificate chain verifies against the trust bundle";

fn request() -> IssueRequest {
    IssueRequest::new("spiffe://example.org/ns/shop/sa/web".parse().unwrap())
}

fn chain_detail(report: &Report) -> String {
    let check = report
        .find(TITLE)
        .unwrap_or_else(|| panic!("no chain check in\n{report}"));
    assert_eq!(check.status, Status::Fail, "{report}");
    check.detail.clone().unwrap()
}

/// A CA whose anchor and issuer are named `anchor` and `issuer`, made
/// with rcgen so that two of them may share names.
fn named_ca(anchor: &str, issuer: &str) -> CertificateAuthority {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start = (SystemTime::now() - Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .unwrap();
    let start = Duration::from_secs(start.as_secs());
    let params = |name: &str, path_len: u8| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = path_len == 0;
        params.not_before = epoch + start;
        params.not_after = epoch + start + Duration::from_secs(365 * 86_400);
        params
    };
    let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_cert = params(anchor, 1).self_signed(&anchor_key).unwrap();
    let signer = Issuer::new(params(anchor, 1), anchor_key);
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer_cert = params(issuer, 0).signed_by(&issuer_key, &signer).unwrap();
    CertificateAuthority::from_pem(
        &anchor_cert.pem(),
        &issuer_cert.pem(),
        &issuer_key.serialize_pem(),
    )
    .unwrap()
}

/// The trust anchor of `ca`, as PEM.
fn anchor_pem(ca: &CertificateAuthority, dir: &Path) -> String {
    ca.write(dir).unwrap();
    std::fs::read_to_string(dir.join("ca.crt")).unwrap()
}

#[tokio::test]
async fn a_bundle_of_another_ca_names_both_files_and_their_cas() {
    let dir = tempfile::tempdir().unwrap();
    let certs: PathBuf = dir.path().join("web");
    named_ca("shop root", "shop issuer")
        .issue_with(&request())
        .unwrap()
        .write(&certs)
        .unwrap();
    let other = anchor_pem(
        &named_ca("billing root", "billing issuer"),
        &dir.path().join("billing"),
    );
    std::fs::write(certs.join("ca.crt"), other).unwrap();

    let report = check_identity(dir.path(), &certs).await;
    let detail = chain_detail(&report);
    let cert = certs.join("tls.crt");
    let bundle = certs.join("ca.crt");
    // What it said before, first.
    assert!(
        detail.starts_with("certificate chain does not verify against the trust bundle"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "\nthe chain in {} was issued by CN=shop root (key ",
            cert.display()
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "\nthe trust bundle {} holds 1 trust anchor:\n  CN=billing root (key ",
            bundle.display()
        )),
        "{detail}"
    );
    assert!(
        detail.contains("\nno trust anchor of the bundle issued the chain: "),
        "{detail}"
    );
    assert!(!report.is_success());
}

#[tokio::test]
async fn an_anchor_of_the_same_name_and_another_key_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("web");
    const ROOT: &str = "root.linkerd.cluster.local";
    const ISSUER: &str = "identity.linkerd.cluster.local";
    named_ca(ROOT, ISSUER)
        .issue_with(&request())
        .unwrap()
        .write(&certs)
        .unwrap();
    let old = anchor_pem(&named_ca(ROOT, ISSUER), &dir.path().join("old"));
    std::fs::write(certs.join("ca.crt"), old).unwrap();

    let report = check_identity(dir.path(), &certs).await;
    let detail = chain_detail(&report);
    let lines: Vec<&str> = detail.lines().collect();
    let issued_by = lines
        .iter()
        .find(|line| line.starts_with("the chain in "))
        .unwrap();
    let held = lines
        .iter()
        .find(|line| line.starts_with(&format!("  CN={ROOT} (key ")))
        .unwrap();
    // One name, two keys, each shown.
    let key = |line: &str| line.rsplit_once("(key ").unwrap().1.to_owned();
    assert_ne!(key(issued_by), key(held), "{detail}");
    assert!(
        detail.contains(&format!(
            "\nthe bundle's anchor of that name has another key: it is of another CA of the \
             same name; put the anchor that issued {} in {}",
            certs.join("tls.crt").display(),
            certs.join("ca.crt").display()
        )),
        "{detail}"
    );
}

#[tokio::test]
async fn a_chain_that_verifies_says_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(&dir.path().join("ca"), &"example.org".parse().unwrap()).unwrap();
    let certs = dir.path().join("web");
    ca::issue_with(&dir.path().join("ca"), &request(), &certs).unwrap();
    let report = check_identity(dir.path(), &certs).await;
    let check = report.find(TITLE).unwrap();
    assert_eq!(check.status, Status::Pass, "{report}");
    assert_eq!(check.detail, None, "{report}");
}
