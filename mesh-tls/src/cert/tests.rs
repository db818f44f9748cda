//! The certificates here are made with rcgen, which comes with the `ca`
//! feature: without it, only the tests that need none run.

use super::*;

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

#[cfg(feature = "ca")]
fn cert_with(sans: Vec<rcgen::SanType>) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.self_signed(&key).unwrap().der().clone()
}

#[cfg(feature = "ca")]
fn uri(s: &str) -> rcgen::SanType {
    rcgen::SanType::URI(s.try_into().unwrap())
}

#[cfg(feature = "ca")]
fn dns(s: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(s.try_into().unwrap())
}

#[test]
#[cfg(feature = "ca")]
fn the_identity_is_the_one_spiffe_id_or_the_first_dns_identity() {
    let spiffe = "spiffe://example.org/ns/a/sa/b";
    let names = CertNames::parse(&cert_with(vec![
        dns("localhost"),
        uri(spiffe),
        dns("a.b.svc"),
    ]))
    .unwrap();
    assert_eq!(names.identity(), Ok(&id(spiffe)));
    assert!(names.names(&id(spiffe)) && names.names(&id("a.b.svc")));
    assert!(!names.names(&id("spiffe://example.org/ns/a/sa/c")));

    let names = CertNames::parse(&cert_with(vec![dns("localhost"), dns("web.ns.svc")])).unwrap();
    assert_eq!(names.identity(), Ok(&id("web.ns.svc")));

    // A DNS SAN spelling a SPIFFE ID is skipped like any DNS name that is
    // no identity.
    let names = CertNames::parse(&cert_with(vec![dns(spiffe), dns("web.ns.svc")])).unwrap();
    assert_eq!(names.identity(), Ok(&id("web.ns.svc")));
    assert!(!names.names(&id(spiffe)));
    let names = CertNames::parse(&cert_with(vec![dns(spiffe)])).unwrap();
    assert_eq!(names.identity(), Err(NoIdentity::Missing));

    let names = CertNames::parse(&cert_with(vec![
        uri("https://example.org/x"),
        dns("localhost"),
    ]))
    .unwrap();
    assert_eq!(names.identity(), Err(NoIdentity::Missing));

    let two = vec![uri(spiffe), uri("spiffe://example.org/ns/a/sa/c")];
    assert_eq!(
        CertNames::parse(&cert_with(two)).unwrap().identity(),
        Err(NoIdentity::Ambiguous)
    );
    assert_eq!(
        CertNames::parse(&CertificateDer::from(vec![0x30, 0x00])).err(),
        Some(BadCertificate)
    );
}

#[test]
#[cfg(feature = "ca")]
fn a_spiffe_id_beside_another_uri_san_is_no_identity_and_names_nothing() {
    let spiffe = "spiffe://example.org/ns/a/sa/b";
    for other in ["https://example.org/x", "spiffe://example.org/ns/a/sa/c"] {
        let names = CertNames::parse(&cert_with(vec![uri(spiffe), uri(other)])).unwrap();
        assert_eq!(names.identity(), Err(NoIdentity::Ambiguous), "{other}");
        assert!(!names.names(&id(spiffe)), "{other}");
    }
}

#[test]
#[cfg(feature = "ca")]
fn a_uri_san_of_another_scheme_leaves_a_dns_identity_in_place_and_a_bad_spiffe_one_does_not() {
    let names = CertNames::parse(&cert_with(vec![
        uri("https://example.org/x"),
        dns("web.ns.svc"),
    ]))
    .unwrap();
    assert_eq!(names.identity(), Ok(&id("web.ns.svc")));
    for bad in [
        "spiffe://example.org/w/",
        "Spiffe://example.org/w",
        "spiffe:example.org/w",
    ] {
        let names = CertNames::parse(&cert_with(vec![uri(bad), dns("web.ns.svc")])).unwrap();
        assert_eq!(
            names.identity(),
            Err(NoIdentity::MalformedSpiffeId),
            "{bad}"
        );
        assert!(!names.names(&id("web.ns.svc")), "{bad}");
    }
}

#[test]
#[cfg(feature = "ca")]
fn a_spiffe_id_without_a_path_names_a_trust_domain_not_a_workload() {
    let names = CertNames::parse(&cert_with(vec![uri("spiffe://example.org")])).unwrap();
    assert_eq!(names.identity(), Err(NoIdentity::TrustDomainOnly));
    assert!(!names.names(&id("spiffe://example.org")));
    assert_eq!(
        names.signing_trust_domain(),
        Some(TrustDomain::parse("example.org").unwrap())
    );
    let workload = CertNames::parse(&cert_with(vec![uri("spiffe://example.org/w")])).unwrap();
    assert_eq!(workload.signing_trust_domain(), None);
}

#[test]
fn dns_names_belong_to_the_trust_domain_they_end_with() {
    let td = TrustDomain::parse("cluster.local").unwrap();
    assert!(in_trust_domain(
        &td,
        &id("web.ns.serviceaccount.identity.linkerd.cluster.local")
    ));
    assert!(!in_trust_domain(&td, &id("web.evilcluster.local")));
    assert!(!in_trust_domain(&td, &id("cluster.local")));
    assert!(in_trust_domain(
        &td,
        &id("spiffe://cluster.local/ns/a/sa/b")
    ));
    assert!(!in_trust_domain(&td, &id("spiffe://other.local/ns/a/sa/b")));
}

/// A CA certificate named `name`, valid from an hour ago for `life`,
/// signed by `issuer` (self-signed without one).
#[cfg(feature = "ca")]
fn ca_cert(
    name: &str,
    life: Duration,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (
    CertificateDer<'static>,
    rcgen::Issuer<'static, rcgen::KeyPair>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + life).into();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.der().clone(), rcgen::Issuer::new(params, key))
}

#[test]
#[cfg(feature = "ca")]
fn a_chains_validity_is_its_path_to_an_anchor_and_the_shorter_of_two_same_named_links() {
    const HOUR: Duration = Duration::from_secs(3600);
    let (anchor, anchor_issuer) = ca_cert("anchor", 1000 * HOUR, None);
    let (issuer, issuer_issuer) = ca_cert("issuer", 5 * HOUR, Some(&anchor_issuer));
    // Same name as the issuer, later dates: a copy a peer might send to
    // look valid for longer.
    let (long_copy, _) = ca_cert("issuer", 100 * HOUR, Some(&anchor_issuer));
    // Same name as the anchor, expired: not on the path, never read.
    let (expired_anchor_copy, _) = ca_cert("anchor", Duration::ZERO, None);
    let mut params = rcgen::CertificateParams::default();
    params.not_after = (SystemTime::now() + 10 * HOUR).into();
    let leaf = params
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &issuer_issuer)
        .unwrap()
        .der()
        .clone();
    let anchors = anchor_subjects(&[anchor]);
    let not_after = |chain: &[CertificateDer<'static>]| {
        path_validity(chain, &anchors, SystemTime::now()).map(|(_, not_after)| not_after)
    };
    let issuer_expiry = not_after(&[leaf.clone(), issuer.clone()]).unwrap();
    let leaf_expiry = not_after(std::slice::from_ref(&leaf)).unwrap();
    assert!(issuer_expiry < leaf_expiry);
    assert_eq!(
        not_after(&[leaf.clone(), long_copy, issuer.clone(), expired_anchor_copy]),
        Some(issuer_expiry)
    );
    assert_eq!(not_after(&[]), None);
}

#[test]
#[cfg(feature = "ca")]
fn of_two_same_named_links_the_one_valid_by_the_given_clock_is_taken() {
    const HOUR: Duration = Duration::from_secs(3600);
    let (anchor, anchor_issuer) = ca_cert("anchor", 1000 * HOUR, None);
    // An issuer's old certificate, two hours left, and its reissue.
    let (old, old_issuer) = ca_cert("issuer", 2 * HOUR, Some(&anchor_issuer));
    let (reissued, _) = ca_cert("issuer", 100 * HOUR, Some(&anchor_issuer));
    let mut params = rcgen::CertificateParams::default();
    params.not_after = (SystemTime::now() + 10 * HOUR).into();
    let leaf = params
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &old_issuer)
        .unwrap()
        .der()
        .clone();
    let anchors = anchor_subjects(&[anchor]);
    let chain = [leaf.clone(), old.clone(), reissued];
    let not_after = |now| path_validity(&chain, &anchors, now).map(|(_, end)| end);
    let leaf_end =
        path_validity(std::slice::from_ref(&leaf), &anchors, SystemTime::now()).map(|(_, end)| end);
    let old_end = path_validity(&[leaf, old], &anchors, SystemTime::now()).map(|(_, end)| end);

    // Both copies valid: the one that expires first.
    assert_eq!(not_after(SystemTime::now()), old_end);
    // Three hours on by the store's clock the old one has expired, and the
    // path goes through the reissue: the leaf ends it.
    assert_eq!(not_after(SystemTime::now() + 3 * HOUR), leaf_end);
}
