//! How long a certificate the CA issues is valid, and when the renewal
//! loop replaces it: a certificate is valid for its whole ttl from issue
//! (its backdate for slow clocks is added, not taken out of the ttl), and
//! it is renewed before it expires, however short the ttl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, SystemTime};

use mesh_tls::{
    CredentialSource, CredentialStore,
    ca::{self, CaError, CertificateAuthority, IssueRequest},
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// Lets the renewal task run everything that is due at the paused clock's
/// current time.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn a_certificate_is_valid_for_its_whole_ttl_from_issue() {
    let ca = ca();
    for ttl in [
        Duration::from_secs(30),
        Duration::from_secs(60),
        Duration::from_secs(120),
        HOUR,
    ] {
        let before = SystemTime::now();
        let issued = ca.issue(&id(WEB), ttl).unwrap();
        let creds = issued.credentials().unwrap();
        // Whole seconds: the end may round down by less than a second.
        assert!(
            creds.not_after() + Duration::from_secs(1) > before + ttl,
            "{ttl:?}: ends {:?} after issue",
            creds.not_after().duration_since(before)
        );
        assert!(creds.not_before() + ca::BACKDATE <= before + Duration::from_secs(1));
        creds.check(SystemTime::now()).unwrap();
        assert_eq!(issued.not_after(), creds.not_after());
        assert_eq!(issued.not_before(), creds.not_before());
    }
}

/// The defect this guards against: the backdate came out of the ttl while
/// renewal waited 70 % of the ttl, so a certificate of 100 s expired 40 s
/// after issue and was replaced only at 70 s.
#[tokio::test(start_paused = true)]
async fn a_renewing_ca_replaces_each_certificate_before_it_expires() {
    for ttl in [
        Duration::from_secs(15),
        Duration::from_secs(100),
        10 * 60 * Duration::from_secs(1),
    ] {
        let store = CredentialStore::default();
        let renew = tokio::spawn(ca().renew(store.clone(), id(WEB), ttl));
        wait_for(&store, 1, 0).await;
        let first = store.credentials().unwrap();
        let left = first
            .not_after()
            .duration_since(SystemTime::now())
            .expect("served expired at issue");

        // One second before the first certificate expires, the store
        // serves its successor.
        tokio::time::advance(left - Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(
            store.subscribe().borrow().loaded,
            2,
            "{ttl:?}: not renewed within the {left:?} the certificate had left"
        );
        assert_ne!(store.credentials().unwrap().chain()[0], first.chain()[0]);
        renew.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn renewal_waits_seventy_percent_of_what_the_certificate_has_left() {
    let ttl = Duration::from_secs(100);
    let store = CredentialStore::default();
    let renew = tokio::spawn(ca().renew(store.clone(), id(WEB), ttl));
    wait_for(&store, 1, 0).await;
    tokio::time::advance(Duration::from_secs(68)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 1, "renewed too early");
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 2, "not renewed at 70 %");
    renew.abort();
}

#[test]
fn an_issued_certificate_says_when_to_renew_it() {
    let issued = ca().issue(&id(WEB), Duration::from_secs(100)).unwrap();
    let now = SystemTime::now();
    let left = issued.not_after().duration_since(now).unwrap();
    assert_eq!(issued.renew_after(now), ca::renew_after(left));
    assert!(issued.renew_after(now) < left);
}

#[test]
fn a_certificate_valid_only_later_is_renewed_after_it_becomes_valid() {
    // Valid from an hour on, for ten hours: replacing it at 70 % of its
    // lifetime counted from now would replace it before it ever served.
    let now = SystemTime::now();
    let request = IssueRequest::new(id(WEB))
        .with_not_before(now + HOUR)
        .with_ttl(10 * HOUR);
    let issued = ca().issue_with(&request).unwrap();
    let until_valid = issued.not_before().duration_since(now).unwrap();
    let lifetime = issued
        .not_after()
        .duration_since(issued.not_before())
        .unwrap();
    assert_eq!(
        issued.renew_after(now),
        until_valid + ca::renew_after(lifetime)
    );
    assert!(issued.renew_after(now) > until_valid);
}

/// In the issuer's last `ttl`, a certificate ends with the issuer: not
/// later, and (now that the backdate is not taken out of the lifetime)
/// not a minute earlier either.
#[test]
fn near_the_issuers_end_a_certificate_ends_with_the_issuer() {
    let ca = CertificateAuthority::generate_with_lifetime("example.org".parse().unwrap(), 2 * HOUR)
        .unwrap();
    let (issued, given) = ca.issue_within_issuer(&id(WEB), 24 * HOUR).unwrap();
    assert!(given < 2 * HOUR);
    assert!(issued.not_after() <= ca.issuer_not_after());
    assert!(
        issued.not_after() + Duration::from_secs(2) > ca.issuer_not_after(),
        "ends {:?} before the issuer",
        ca.issuer_not_after().duration_since(issued.not_after())
    );
    assert!(matches!(
        ca.issue(&id(WEB), 2 * HOUR + Duration::from_secs(2)),
        Err(CaError::OutlivesIssuer { .. })
    ));
}

#[test]
fn a_ttl_below_a_second_is_refused_naming_the_allowed_range() {
    let ca = ca();
    let error = ca.issue(&id(WEB), Duration::from_millis(500)).unwrap_err();
    assert!(matches!(error, CaError::InvalidLifetime(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("500ms") && text.contains("1s"), "{text}");
}

/// A ttl whose 70 % is under the renewal loop's 10 s floor would be
/// renewed after it expired: refused when the source starts, not served.
#[tokio::test(start_paused = true)]
async fn a_ttl_too_short_to_renew_in_time_is_refused_when_the_source_starts() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    for ttl in [Duration::from_millis(500), Duration::from_secs(5)] {
        let store = CredentialStore::default();
        let source = CredentialSource::Ca {
            dir: dir.path().to_owned(),
            identity: id(WEB),
            ttl,
        };
        let Err(error) = store.start(source) else {
            panic!("{ttl:?} was accepted");
        };
        let CaError::UnrenewableTtl {
            ttl: given, min, ..
        } = &error
        else {
            panic!("{ttl:?}: {error:?}");
        };
        assert_eq!((*given, *min), (ttl, ca::MIN_RENEWED_TTL));
        assert!(error.to_string().contains(&format!("{ttl:?}")), "{error}");
        assert!(!store.is_ready());
    }
    let store = CredentialStore::default();
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: ca::MIN_RENEWED_TTL,
    };
    assert!(store.start(source).is_ok());
    assert!(store.is_ready());
}

/// A CA whose issuer ended an hour ago, as PEM (anchor, issuer, issuer
/// key): a development CA left on a disk for a year.
fn ca_with_an_expired_issuer() -> (String, String, String, SystemTime) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = SystemTime::now();
    let ended = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            (now - HOUR)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
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
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("anchor", 1, now + 48 * HOUR);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor = (anchor, rcgen::Issuer::new(anchor_params, anchor_key));
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = params("issuer", 0, ended)
        .signed_by(&issuer_key, &anchor.1)
        .unwrap()
        .pem();
    (anchor.0, issuer, issuer_key.serialize_pem(), ended)
}

/// An issuer that has expired can sign nothing that verifies: the CA
/// says that, and when it expired, rather than that the certificate asked
/// for would outlive it, whatever its ttl.
#[test]
fn a_ca_whose_issuer_has_expired_says_so() {
    let (anchor, issuer, key, ended) = ca_with_an_expired_issuer();
    let ca = CertificateAuthority::from_pem(&anchor, &issuer, &key).unwrap();
    assert_eq!(ca.issuer_not_after(), ended);
    let expired = |error: &CaError| matches!(error, CaError::IssuerExpired { not_after } if *not_after == ended);
    let error = ca.issue(&id(WEB), HOUR).unwrap_err();
    assert!(expired(&error), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("expired"), "{text}");
    let error = ca.issue_within_issuer(&id(WEB), HOUR).unwrap_err();
    assert!(expired(&error), "{error:?}");

    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        (ca::CA_CERT_FILE, &anchor),
        (ca::ISSUER_CERT_FILE, &issuer),
        (ca::ISSUER_KEY_FILE, &key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: HOUR,
    };
    // Loaded from a directory, the CA names the file at fault, as it does
    // for every other problem of its files: when a sidecar starts, and
    // when `sidecar certs issue` writes a certificate.
    let issuer_file = dir.path().join(ca::ISSUER_CERT_FILE);
    let in_issuer_file = |error: &CaError| matches!(error, CaError::InFile { path, source } if *path == issuer_file && expired(source));
    let error = CredentialStore::default().start(source).err().unwrap();
    assert!(in_issuer_file(&error), "{error:?}");
    let out = tempfile::tempdir().unwrap();
    let error = ca::issue(dir.path(), &id(WEB), HOUR, out.path()).unwrap_err();
    assert!(in_issuer_file(&error), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&issuer_file.display().to_string()),
        "{error}"
    );
}

/// A CA given a clock ([`CertificateAuthority::with_time_provider`]) dates
/// what it issues, and checks its issuer's validity, by that clock: a test
/// moves it to the issuer's last hour, or past its end, without waiting.
#[test]
fn a_ca_issues_and_checks_its_issuer_by_the_clock_it_is_given() {
    use crate::validity::{TestClock, at};
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let start = secs(SystemTime::now()) + 30 * 86_400;
    let clock = TestClock::at(start);
    let ca = ca().with_time_provider(clock.clone());
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    assert_eq!(issued.not_before(), at(start) - ca::BACKDATE);
    assert_eq!(issued.not_after(), at(start) + HOUR);

    // Half an hour before the issuer expires: a renewal ends with it, and
    // a plain issue of an hour is refused.
    let end = secs(ca.issuer_not_after());
    clock.set(end - 1_800);
    let (within, ttl) = ca.issue_within_issuer(&id(WEB), HOUR).unwrap();
    assert_eq!(ttl, Duration::from_secs(1_800));
    assert_eq!(within.not_after(), ca.issuer_not_after());
    assert!(matches!(
        ca.issue(&id(WEB), HOUR),
        Err(CaError::OutlivesIssuer { .. })
    ));

    clock.set(end);
    assert!(matches!(
        ca.issue(&id(WEB), Duration::from_secs(60)),
        Err(CaError::IssuerExpired { .. })
    ));
}

/// A CA whose `issuer.crt` holds the issuer and, after it, the
/// intermediate that signed it, which ends at `middle_ends` (whole
/// seconds), while the issuer lives two days: as PEM (anchor, issuer
/// chain, issuer key).
fn ca_under_an_intermediate(middle_ends: SystemTime) -> (String, String, String) {
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
    let anchor_params = params("anchor", 2, now + 96 * HOUR);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_issuer = rcgen::Issuer::new(anchor_params, anchor_key);
    let middle_key = key();
    let middle_params = params("middle", 1, middle_ends);
    let middle = middle_params
        .signed_by(&middle_key, &anchor_issuer)
        .unwrap()
        .pem();
    let middle_issuer = rcgen::Issuer::new(middle_params, middle_key);
    let issuer_key = key();
    let issuer = params("issuer", 0, now + 48 * HOUR)
        .signed_by(&issuer_key, &middle_issuer)
        .unwrap()
        .pem();
    (anchor, issuer + &middle, issuer_key.serialize_pem())
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The issuer's chain (`issuer.crt`) may hold the intermediates above the
/// issuer; a certificate the issuer signs verifies only while every one of
/// them is valid. So no certificate outlives the first of them to expire,
/// as Linkerd's CA clamps each certificate to the first expiry of its own
/// chain (linkerd2 `pkg/tls/ca.go`, `findFirstExpiration`): a renewal ends
/// with it, a plain issue past it is refused, and once it has expired the
/// CA says so.
#[test]
fn no_certificate_outlives_an_intermediate_of_the_issuers_chain() {
    let middle_ends = whole_seconds(SystemTime::now() + 2 * HOUR);
    let (anchor, chain, key) = ca_under_an_intermediate(middle_ends);
    let ca = CertificateAuthority::from_pem(&anchor, &chain, &key).unwrap();
    assert_eq!(ca.issuer_not_after(), middle_ends);
    let error = ca.issue(&id(WEB), 24 * HOUR).unwrap_err();
    assert!(
        matches!(error, CaError::OutlivesIssuer { issuer_not_after, .. } if issuer_not_after == middle_ends),
        "{error:?}"
    );
    let (issued, ttl) = ca.issue_within_issuer(&id(WEB), 24 * HOUR).unwrap();
    assert!(ttl <= 2 * HOUR, "{ttl:?}");
    assert!(issued.not_after() <= middle_ends);
    assert_eq!(issued.credentials().unwrap().chain().len(), 3);

    let middle_ended = whole_seconds(SystemTime::now() - HOUR);
    let (anchor, chain, key) = ca_under_an_intermediate(middle_ended);
    let ca = CertificateAuthority::from_pem(&anchor, &chain, &key).unwrap();
    let error = ca.issue(&id(WEB), HOUR).unwrap_err();
    assert!(
        matches!(error, CaError::IssuerExpired { not_after } if not_after == middle_ended),
        "{error:?}"
    );
}
