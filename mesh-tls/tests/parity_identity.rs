//! linkerd2-proxy's identity certificate families, line for line as it
//! writes them (`control_identity_cert_expiration_timestamp_seconds`,
//! `control_identity_cert_refresh_timestamp_seconds`,
//! `control_identity_cert_refreshes_total{result}`), beside the older
//! `identity_cert_*` families, which stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use crate::support::{HOUR, encode, leaf_outliving_its_issuer};
use crate::validity::{DAY, JAN_1, Pki, TestClock, WEB};

use mesh_tls::{CredentialStore, Credentials, StoreConfig};

const EXPIRATION: &str = "control_identity_cert_expiration_timestamp_seconds";
const REFRESH: &str = "control_identity_cert_refresh_timestamp_seconds";
const OK: &str = r#"control_identity_cert_refreshes_total{result="ok"}"#;
const ERROR: &str = r#"control_identity_cert_refreshes_total{result="error"}"#;

fn assert_lines(store: &CredentialStore, lines: &[String]) {
    let text = encode(store);
    for line in lines {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line}\nin\n{text}"
        );
    }
}

/// The four lines of Linkerd's families, with their values.
fn control(expiration: &str, refresh: &str, ok: u64, error: u64) -> Vec<String> {
    vec![
        format!("{EXPIRATION} {expiration}"),
        format!("{REFRESH} {refresh}"),
        format!("{OK} {ok}"),
        format!("{ERROR} {error}"),
    ]
}

#[test]
fn loads_and_refusals_count_as_linkerd_counts_refreshes() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1 + DAY / 2);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());

    // Before any credentials: both results at 0, both gauges at 0, with
    // the types Linkerd gives them.
    let mut before = control("0.0", "0.0", 0, 0);
    before.extend([
        format!("# TYPE {EXPIRATION} gauge"),
        format!("# UNIT {EXPIRATION} seconds"),
        format!("# TYPE {REFRESH} gauge"),
        "# TYPE control_identity_cert_refreshes counter".to_owned(),
    ]);
    assert_lines(&store, &before);

    // The first certificate counts as a refresh.
    store.update(pki.creds(WEB, JAN_1, JAN_1 + DAY)).unwrap();
    let first = control(
        &format!("{}.0", JAN_1 + DAY),
        &format!("{}.0", JAN_1 + DAY / 2),
        1,
        0,
    );
    assert_lines(&store, &first);

    // A refused update (a certificate expired by the store's clock)
    // counts an error and leaves both timestamps alone; the older
    // families count it as they did.
    clock.set(JAN_1 + DAY / 2 + 60);
    store
        .update(pki.creds(WEB, JAN_1 - DAY, JAN_1))
        .unwrap_err();
    let mut refused = control(
        &format!("{}.0", JAN_1 + DAY),
        &format!("{}.0", JAN_1 + DAY / 2),
        1,
        1,
    );
    refused.extend([
        r#"identity_cert_rejected_updates_total{reason="expired"} 1"#.to_owned(),
        "identity_cert_last_update_successful 0".to_owned(),
        format!("identity_cert_expiration_timestamp_seconds {}", JAN_1 + DAY),
    ]);
    assert_lines(&store, &refused);

    // A rotation: a refresh, with the new certificate's dates.
    clock.set(JAN_1 + DAY / 2 + 120);
    let rotated = pki.creds(WEB, JAN_1, JAN_1 + 2 * DAY);
    store.update(rotated.clone()).unwrap();
    let mut second = control(
        &format!("{}.0", JAN_1 + 2 * DAY),
        &format!("{}.0", JAN_1 + DAY / 2 + 120),
        2,
        1,
    );
    second.extend([
        "identity_cert_rotations_total 1".to_owned(),
        "identity_cert_last_update_successful 1".to_owned(),
        format!(
            "identity_cert_expiration_timestamp_seconds {}",
            JAN_1 + 2 * DAY
        ),
    ]);
    assert_lines(&store, &second);

    // The same credentials again put no certificate in service: no
    // refresh, and the refresh time stays the one of the certificate in
    // service.
    clock.set(JAN_1 + DAY / 2 + 180);
    store.update(rotated).unwrap();
    assert_lines(&store, &second);
}

/// Linkerd's expiration is the workload certificate's own `notAfter`;
/// the older gauge ends with an intermediate that expires first.
#[test]
fn the_expiration_is_the_workload_certificates_own() {
    let (ca, chain, key) = leaf_outliving_its_issuer(WEB, 2 * HOUR, 24 * HOUR);
    let creds = Credentials::from_pem(chain.as_bytes(), key.as_bytes(), ca.bundle_pem().as_bytes())
        .unwrap();
    let leaf_not_after = creds
        .not_after()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let store = CredentialStore::new(StoreConfig::default());
    store.update(creds).unwrap();
    assert_lines(
        &store,
        &[
            format!("{EXPIRATION} {leaf_not_after}.0"),
            format!("{OK} 1"),
        ],
    );
    let text = encode(&store);
    let older: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("identity_cert_expiration_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        older + 20 * 3600 < leaf_not_after,
        "the issuer's end, {older}, is not the older gauge's\n{text}"
    );
}
