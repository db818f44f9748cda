//! What the credential store logs when it refuses credentials: the log is
//! all an operator sees of a rotation the file watcher refused, so it
//! carries the files at fault and the whole cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::CredentialStore;
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// What refusing the files logs: the whole cause, down to the PEM parser's
/// or webpki's own words, since the log is all an operator sees of a
/// rotation the watcher refused.
fn logged_refusal(store: &CredentialStore, files: &mesh_tls::CredentialFiles) -> String {
    let (events, guard) = Logs::capture();
    store.load_files(files).unwrap_err();
    drop(guard);
    let events = events.all();
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

#[test]
fn a_refusal_is_logged_with_its_cause_and_the_files() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.issue(&id(WEB), HOUR).unwrap();
    let files = good.write(dir.path()).unwrap();
    let store = CredentialStore::default();
    store.load_files(&files).unwrap();

    // A certificate file cut off as it was being written, in the middle
    // of the workload certificate.
    let next = ca.issue(&id(WEB), HOUR).unwrap();
    let chain = next.chain_pem();
    let leaf_end = chain.find("-----END CERTIFICATE-----").unwrap();
    std::fs::write(&files.cert, &chain[..leaf_end / 2]).unwrap();
    let logged = logged_refusal(&store, &files);
    assert!(
        logged.contains("invalid pem") && logged.contains("-----END CERTIFICATE-----"),
        "{logged}"
    );
    assert!(logged.contains("tls.crt"), "{logged}");
    assert!(!logged.contains("[45, 45"), "pem lines as bytes: {logged}");

    // A bundle that does not vouch for the chain: webpki's reason.
    good.write(dir.path()).unwrap();
    std::fs::write(&files.bundle, support::ca().bundle_pem()).unwrap();
    let logged = logged_refusal(&store, &files);
    assert!(
        logged.contains("does not verify against the trust bundle: UnknownIssuer"),
        "{logged}"
    );
    assert!(
        logged.contains("tls.crt") && logged.contains("ca.crt"),
        "{logged}"
    );
}

#[test]
fn a_refusal_with_nothing_in_service_says_so() {
    // No credentials loaded yet: the log must not promise that earlier
    // ones go on serving, when the workload has no identity at all.
    let dir = tempfile::tempdir().unwrap();
    let files = ca()
        .issue(&id(WEB), HOUR)
        .unwrap()
        .write(dir.path())
        .unwrap();
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let store = CredentialStore::default();
    let logged = logged_refusal(&store, &files);
    assert!(!logged.contains("previous"), "{logged}");
    assert!(logged.contains("none are in service yet"), "{logged}");

    // Once some are, a refusal keeps them, and says that.
    let good = ca().issue(&id(WEB), HOUR).unwrap();
    let files = good.write(dir.path()).unwrap();
    store.load_files(&files).unwrap();
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let logged = logged_refusal(&store, &files);
    assert!(
        logged.contains("the previous ones stay in service"),
        "{logged}"
    );
}
