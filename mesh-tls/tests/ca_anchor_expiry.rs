//! No certificate the CA signs outlives the trust anchor its issuer chains
//! to. webpki never reads an anchor's dates, so the mesh's own peers would
//! take such a certificate; OpenSSL (curl) and Go refuse a chain whose
//! root has expired. So a plain issue past the anchor is refused, a
//! renewal in the anchor's last ttl ends with it, nothing is signed once
//! it has expired (the error naming `ca.crt`), and a CA source warns when
//! it loads an anchor that expires within its ttl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity::TestClock;

use std::time::{Duration, SystemTime};

use mesh_tls::{
    CredentialSource, CredentialStore, StoreConfig,
    ca::{self, CaError, CertificateAuthority},
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A CA whose trust anchor ends at `anchor_ends` (whole seconds) while
/// its issuer, signed two days ago, lives four days more: an issuer renewed
/// under an anchor near its end. As PEM: anchor, issuer, issuer key.
fn ca_under_an_anchor_ending(anchor_ends: SystemTime) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = SystemTime::now();
    let params = |name: &str, path_len, not_after: SystemTime| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = (now - 48 * HOUR).into();
        params.not_after = not_after.into();
        params
    };
    let key = || KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_key = key();
    let anchor_params = params("anchor", 1, anchor_ends);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_issuer = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = key();
    let issuer = params("issuer", 0, now + 96 * HOUR)
        .signed_by(&issuer_key, &anchor_issuer)
        .unwrap()
        .pem();
    (anchor, issuer, issuer_key.serialize_pem())
}

/// Writes the CA into a new directory.
fn written((anchor, issuer, key): &(String, String, String)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        (ca::CA_CERT_FILE, anchor),
        (ca::ISSUER_CERT_FILE, issuer),
        (ca::ISSUER_KEY_FILE, key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    dir
}

/// The certificate ends with the anchor, not with the issuer that lives
/// on: what the CA issued before ended a day after its anchor, and curl
/// refused it from then on.
#[test]
fn no_certificate_outlives_the_trust_anchor() {
    let anchor_ends = at(secs(SystemTime::now() + 2 * HOUR));
    let pems = ca_under_an_anchor_ending(anchor_ends);
    let ca = CertificateAuthority::from_pem(&pems.0, &pems.1, &pems.2).unwrap();
    assert_eq!(ca.anchor_not_after(), anchor_ends);
    assert!(ca.issuer_not_after() > anchor_ends + 24 * HOUR);

    // As the renewal loop issues: shortened to end with the anchor.
    let (issued, ttl) = ca.issue_within_issuer(&id(WEB), 24 * HOUR).unwrap();
    assert!(ttl <= 2 * HOUR, "{ttl:?}");
    assert!(
        issued.not_after() <= anchor_ends,
        "ends {:?} after the anchor",
        issued.not_after().duration_since(anchor_ends)
    );
    assert!(issued.not_after() + Duration::from_secs(2) > anchor_ends);
    issued.credentials().unwrap();

    // A plain issue past the anchor is refused, saying when it ends; one
    // within it is not.
    let error = ca.issue(&id(WEB), 24 * HOUR).unwrap_err();
    assert!(
        matches!(error, CaError::OutlivesAnchor { anchor_not_after, .. } if anchor_not_after == anchor_ends),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("after the trust anchor") && text.contains("openssl and go"),
        "{text}"
    );
    assert!(ca.issue(&id(WEB), HOUR).unwrap().not_after() <= anchor_ends);
}

/// Once the anchor has expired, by the CA's clock or the store's, the CA
/// signs nothing, and says why naming `ca.crt`: when it issues, and when
/// a CA source would start from it.
#[test]
fn once_the_trust_anchor_has_expired_the_ca_signs_nothing_naming_it() {
    let anchor_ends = at(secs(SystemTime::now() + 2 * HOUR));
    let pems = ca_under_an_anchor_ending(anchor_ends);
    let dir = written(&pems);
    let anchor_file = dir.path().join(ca::CA_CERT_FILE);
    let expired = |error: &CaError| {
        matches!(error, CaError::InFile { path, source }
            if *path == anchor_file
                && matches!(**source, CaError::AnchorExpired { not_after } if not_after == anchor_ends))
    };
    let clock = TestClock::at(secs(anchor_ends));
    let ca = CertificateAuthority::load(dir.path())
        .unwrap()
        .with_time_provider(clock.clone());
    for error in [
        ca.issue(&id(WEB), Duration::from_secs(60)).unwrap_err(),
        ca.issue_within_issuer(&id(WEB), HOUR).unwrap_err(),
    ] {
        assert!(expired(&error), "{error:?}");
        assert_eq!(error.reason().map(|r| r.as_label()), Some("expired"));
        let text = joined(&error);
        assert!(
            text.contains(&anchor_file.display().to_string())
                && text.contains("trust anchor expired at"),
            "{text}"
        );
    }
    // A second before, the last second is still signed.
    clock.set(secs(anchor_ends) - 1);
    let (issued, ttl) = ca.issue_within_issuer(&id(WEB), HOUR).unwrap();
    assert_eq!(
        (ttl, issued.not_after()),
        (Duration::from_secs(1), anchor_ends)
    );

    let store = CredentialStore::with_time_provider(
        StoreConfig::default(),
        TestClock::at(secs(anchor_ends) + 60),
    );
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let error = store.start(source).err().unwrap();
    assert!(expired(&error), "{error:?}");
    assert!(!store.is_ready());
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // A renewal reads the CA directory on the blocking pool; the paused
    // clock does not move on while that read runs, so this waits for it.
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A CA source whose anchor expires within its ttl warns when it starts,
/// naming `ca.crt` and when; its certificates end with the anchor, and
/// once the anchor has expired the directory is refused as `expired`
/// and nothing more is put in service.
#[tokio::test(start_paused = true)]
async fn a_ca_source_warns_of_an_anchor_ending_within_its_ttl_and_ends_with_it() {
    let start = secs(SystemTime::now());
    let anchor_ends = at(start + 2 * 3_600);
    let dir = written(&ca_under_an_anchor_ending(anchor_ends));
    let anchor_file = dir.path().join(ca::CA_CERT_FILE);
    let clock = TestClock::at(start);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: 24 * HOUR,
    };
    let (events, guard) = Logs::capture();
    let task = tokio::spawn(store.start(source).unwrap());
    let warned = events.find_at(
        tracing::Level::WARN,
        "the ca's trust anchor expires within the certificate ttl",
    );
    assert_eq!(warned.len(), 1, "{:#?}", events.all());
    assert!(
        warned[0].contains(&anchor_file.display().to_string()),
        "{}",
        warned[0]
    );
    settle().await;
    assert_eq!(store.credentials().unwrap().not_after(), anchor_ends);

    // The renewal, at 70 % of the two hours left, ends with the anchor
    // too.
    let mut now = start;
    let step = 5_100;
    now += step;
    clock.set(now);
    tokio::time::advance(Duration::from_secs(step)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 2);
    assert_eq!(store.credentials().unwrap().not_after(), anchor_ends);

    // Past the anchor's end, nothing more is signed: the directory is
    // refused as expired, naming ca.crt.
    now = secs(anchor_ends) + 1;
    clock.set(now);
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    drop(guard);
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (2, 1));
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
    let refused = events.find_at(tracing::Level::ERROR, "refused the reloaded ca");
    assert_eq!(refused.len(), 1, "{:#?}", events.all());
    assert!(
        refused[0].contains(&anchor_file.display().to_string())
            && refused[0].contains("trust anchor expired"),
        "{}",
        refused[0]
    );
    task.abort();
}
