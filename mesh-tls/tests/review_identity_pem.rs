//! Credential files put together by hand: what the store says of a chain
//! whose certificates are in the wrong order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{CredentialError, CredentialFiles, CredentialStore, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// The error and its causes, as a log line shows them.
fn causes(error: &CredentialError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

/// A chain file written issuer first, as concatenating the PEM files in
/// the wrong order leaves it, is refused naming the chain file and saying
/// that the workload certificate must come first: the first certificate
/// is the issuer's, and to say that it names a trust domain rather than a
/// workload sends its reader looking for a wrong certificate where there
/// is none.
#[test]
fn a_chain_written_issuer_first_is_refused_as_out_of_order() {
    let ca = ca();
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let certs: Vec<&str> = issued.chain_pem().split_inclusive(end).collect();
    assert_eq!(certs.len(), 2, "leaf and issuer");

    let dir = tempfile::tempdir().unwrap();
    let files = CredentialFiles::in_dir(dir.path());
    std::fs::write(&files.cert, format!("{}{}", certs[1], certs[0])).unwrap();
    std::fs::write(&files.key, issued.key_pem()).unwrap();
    std::fs::write(&files.bundle, issued.bundle_pem()).unwrap();
    let store = CredentialStore::new(StoreConfig::default());
    let error = store.load_files(&files).unwrap_err();

    let text = causes(&error);
    assert!(
        matches!(&error, CredentialError::InFiles { paths, .. } if *paths == [files.cert.clone()]),
        "{text}"
    );
    assert!(
        text.contains("out of order") && text.contains("certificate 2"),
        "{text}"
    );
    assert!(!store.is_ready());

    // Put right, the same certificates load.
    std::fs::write(&files.cert, issued.chain_pem()).unwrap();
    store.load_files(&files).unwrap();
    assert_eq!(store.credentials().unwrap().identity(), &id(WEB));
}

/// An EC key encrypted the way `openssl ec -aes256` writes it (and
/// `openssl genrsa -aes256 -traditional` an RSA key): the older OpenSSL
/// form, a `Proc-Type: 4,ENCRYPTED` header inside an `EC PRIVATE KEY`
/// section.
const LEGACY_ENCRYPTED_KEY: &str = "\
-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-256-CBC,D5E034F873266C7FC04D9428CF5E29A6

Qixf1fjranXX+erF/O5JXuuPL2yNISi1L5YH04tP0w9Ppk2AhSWCiLfeJmORWbsT
TTk0UcNFW7QpMYxDOBnvFIWjhPh13Y3E8gjEoCjNlVJbQSirQkp6AapTLDnw8q35
8a/LnjQcIWnD14YDR+LHDkVxjJN69x/XPPL2aq1GPpk=
-----END EC PRIVATE KEY-----
";

/// A key encrypted in OpenSSL's older form is refused as encrypted,
/// naming the key file, as one in PKCS#8's `ENCRYPTED PRIVATE KEY` form
/// is: not as a PEM file whose base64 holds a bad character, which is
/// what its headers read as.
#[test]
fn a_key_encrypted_in_the_older_openssl_form_is_refused_as_encrypted() {
    let ca = ca();
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = issued.write(dir.path()).unwrap();
    std::fs::write(&files.key, LEGACY_ENCRYPTED_KEY).unwrap();
    let store = CredentialStore::new(StoreConfig::default());
    let error = store.load_files(&files).unwrap_err();
    let text = causes(&error);
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
            if *paths == [files.key.clone()]
                && matches!(**source, CredentialError::EncryptedKey)),
        "{text}"
    );
    assert!(text.contains("private key is encrypted"), "{text}");
}

/// Files saved by Windows tools (Notepad, PowerShell 5's `Out-File
/// -Encoding utf8`) start with a UTF-8 byte order mark. Before a PEM
/// file's first line, it hid that line from the PEM reader, which then
/// skipped the section: the workload certificate was dropped from the
/// chain, which was refused as starting with its issuer, and the key file
/// was refused as holding no key. Each file is read as the text it holds.
#[test]
fn files_starting_with_a_byte_order_mark_load() {
    let ca = ca();
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = issued.write(dir.path()).unwrap();
    for (path, pem) in [
        (&files.cert, issued.chain_pem()),
        (&files.key, issued.key_pem()),
        (&files.bundle, issued.bundle_pem()),
    ] {
        std::fs::write(path, format!("\u{feff}{pem}")).unwrap();
    }
    let store = CredentialStore::new(StoreConfig::default());
    if let Err(error) = store.load_files(&files) {
        panic!("{}", causes(&error));
    }
    let creds = store.credentials().unwrap();
    assert_eq!(creds.identity(), &id(WEB));
    assert_eq!(creds.chain().len(), 2);
}

/// Credential files whose workload certificate is valid for an hour more,
/// signed by an issuer valid from `issuer_from` until `issuer_until`
/// under an anchor valid throughout.
fn files_with_issuer_valid(
    dir: &std::path::Path,
    issuer_from: std::time::SystemTime,
    issuer_until: std::time::SystemTime,
) -> CredentialFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = std::time::SystemTime::now();
    let ca_params = |name: &str, from: std::time::SystemTime, until: std::time::SystemTime| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = from.into();
        params.not_after = until.into();
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = ca_params("anchor", now - 48 * HOUR, now + 48 * HOUR);
    let anchor_pem = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer_params = ca_params("issuer", issuer_from, issuer_until);
    let issuer_pem = issuer_params.signed_by(&issuer_key, &anchor).unwrap().pem();
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(WEB)])
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    let files = CredentialFiles::in_dir(dir);
    std::fs::write(&files.cert, leaf + &issuer_pem).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.bundle, anchor_pem).unwrap();
    files
}

/// A chain whose workload certificate is valid but whose issuer has
/// expired, or is not valid yet, is refused naming the issuer: the
/// certificate an operator reads first in the chain file (`openssl x509`
/// reads no other) is the workload's, whose dates are fine, so an error
/// that said "certificate has expired" sent them looking at the wrong
/// one. The metric's reason stays `expired` (or `not_yet_valid`).
#[test]
fn an_issuer_outside_its_validity_is_named_as_the_certificate_at_fault() {
    let now = std::time::SystemTime::now();
    for (from, until, says, reason) in [
        (now - 24 * HOUR, now - HOUR, "has expired", "expired"),
        (
            now + HOUR,
            now + 24 * HOUR,
            "is not valid yet",
            "not_yet_valid",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = files_with_issuer_valid(dir.path(), from, until);
        let store = CredentialStore::new(StoreConfig::default());
        let error = store.load_files(&files).unwrap_err();
        let text = causes(&error);
        assert!(
            matches!(&error, CredentialError::InFiles { paths, .. } if *paths == [files.cert.clone()]),
            "{text}"
        );
        assert!(
            text.contains("certificate 2 of the chain") && text.contains(says),
            "{text}"
        );
        assert_eq!(error.reason().as_label(), reason, "{text}");
    }
}
