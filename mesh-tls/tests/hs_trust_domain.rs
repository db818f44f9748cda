//! A client whose SPIFFE ID no trust anchor of its own trust domain vouches
//! for is refused inside the handshake, as a server is: the client learns
//! it from a fatal alert rather than from a connection closed after a
//! handshake that seemed to succeed, and the acceptor's error holds the
//! `NoAnchorOfTrustDomain` refusal, found in its chain of causes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use mesh_core::{BoxError, Tls};
use mesh_tls::{
    AcceptConfig, CredentialStore, InboundMode, NoAnchorOfTrustDomain, StoreConfig, TlsAccept,
    accept::AcceptError,
};
use rcgen::KeyPair;
use rustls::AlertDescription;
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";
const OTHER_WEB: &str = "spiffe://other.org/ns/shop/sa/web";

fn store_trusting(local: &Signer, identity: &str, bundle: &[&Signer]) -> CredentialStore {
    let bundle: Vec<_> = bundle.iter().map(|s| &s.ca).collect();
    CredentialStore::with_credentials(
        StoreConfig::default(),
        creds_trusting(&local.ca, identity, HOUR, &bundle),
    )
    .unwrap()
}

/// Presents `chain` and `key` as a client to a mesh acceptor in `mode`
/// serving `local`: the acceptor's verdict and the client's.
async fn present(
    local: CredentialStore,
    mode: InboundMode,
    (chain, key): (String, String),
) -> (Result<Tls, BoxError>, Result<Reply, BoxError>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = accept_one(
        listener,
        TlsAccept::new(local, AcceptConfig::with_mode(mode)),
    );
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain, &key)),
    );
    let client = tokio::spawn(raw_get(config, addr));
    let accepted = server.await.unwrap();
    // A connection the acceptor refused is dropped here, so that a client
    // it did not alert sees the connection close rather than hang.
    let verdict = accepted.map(|accepted| accepted.tls);
    (verdict, client.await.unwrap())
}

/// The alert the client received, if its handshake ended with one.
fn alert_received(client: &Result<Reply, BoxError>) -> Option<AlertDescription> {
    let err = client.as_ref().err()?;
    match find::<rustls::Error>(&**err)? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test]
async fn a_client_of_another_trust_domain_is_refused_in_the_handshake() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    for mode in [InboundMode::Permissive, InboundMode::Strict] {
        // The other trust domain's CA names a workload of ours, with both
        // anchors in the bundle; and our CA names one of theirs, with only
        // ours in it.
        for (local, presented, identity) in [
            (
                store_trusting(&ours, API, &[&ours, &theirs]),
                theirs.sign(WEB),
                WEB,
            ),
            (
                store_trusting(&ours, API, &[&ours]),
                ours.sign(OTHER_WEB),
                OTHER_WEB,
            ),
        ] {
            let (verdict, client) = present(local.clone(), mode, presented).await;
            let err = verdict.unwrap_err();
            let refusal = find::<NoAnchorOfTrustDomain>(&*err);
            assert_eq!(
                refusal.map(|r| r.identity.as_str()),
                Some(identity),
                "{mode:?}: {err}"
            );
            assert!(
                matches!(
                    err.downcast_ref::<AcceptError>(),
                    Some(AcceptError::NoAnchorOfTrustDomain(_))
                ),
                "{mode:?}: {err:?}"
            );
            // Refused by the client certificate verifier: the client gets
            // the alert rustls sends for a certificate refused for a reason
            // of the verifier's own.
            assert_eq!(
                alert_received(&client),
                Some(AlertDescription::CertificateUnknown),
                "{mode:?}: {:?}",
                client.as_ref().map(|reply| reply.status)
            );
            assert!(
                encode(&local).contains(
                    "tls_handshake_failures_total{direction=\"inbound\",reason=\"unknown_issuer\"} 1"
                ),
                "{mode:?}: {}",
                encode(&local)
            );
        }
    }
}

#[tokio::test]
async fn a_client_of_its_own_trust_domain_is_let_in_under_a_federated_bundle() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    for mode in [InboundMode::Permissive, InboundMode::Strict] {
        for (signer, identity) in [(&ours, WEB), (&theirs, OTHER_WEB)] {
            let local = store_trusting(&ours, API, &[&ours, &theirs]);
            let (verdict, client) = present(local, mode, signer.sign(identity)).await;
            match verdict.unwrap() {
                Tls::Mutual { peer } => assert_eq!(peer.as_str(), identity),
                other => panic!("{mode:?}: {other:?}"),
            }
            assert_eq!(
                alert_received(&client),
                None,
                "{mode:?}: {:?}",
                client.as_ref().map(|reply| reply.status)
            );
        }
    }
}

/// An anchor naming the trust domain `domain`, as the mesh's CA writes
/// one: its PEM and an issuer signing with it.
fn named_anchor(domain: &str) -> (String, rcgen::Issuer<'static, KeyPair>) {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{domain} anchor"));
    params.subject_alt_names = vec![uri_san(&format!("spiffe://{domain}"))];
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(params, key))
}

#[tokio::test]
async fn the_one_path_search_passes_over_a_path_to_another_trust_domains_anchor() {
    // One issuer (a subject and a key) certified by the anchors of both
    // trust domains, and a leaf naming a workload of example.org it signs.
    let (ours_pem, ours) = named_anchor("example.org");
    let (theirs_pem, theirs) = named_anchor("other.org");
    let mut issuer = rcgen::CertificateParams::default();
    issuer
        .distinguished_name
        .push(rcgen::DnType::CommonName, "an issuer under both anchors");
    issuer.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    issuer.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let under_ours = issuer.signed_by(&issuer_key, &ours).unwrap().pem();
    let under_theirs = issuer.signed_by(&issuer_key, &theirs).unwrap().pem();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(WEB)])
        .signed_by(&leaf_key, &rcgen::Issuer::new(issuer, issuer_key))
        .unwrap()
        .pem();
    let key = leaf_key.serialize_pem();

    // The acceptor's own credentials, from a mesh CA of example.org, with
    // both anchors in its bundle.
    let local_ca = Signer::new("example.org").ca;
    let issued = local_ca.issue(&id(API), HOUR).unwrap();
    let bundle = format!("{}{theirs_pem}{ours_pem}", local_ca.bundle_pem());
    let local = || {
        let creds = mesh_tls::Credentials::from_pem(
            issued.chain_pem().as_bytes(),
            issued.key_pem().as_bytes(),
            bundle.as_bytes(),
        )
        .unwrap();
        CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap()
    };

    // The path through the other trust domain's anchor comes first, so
    // that the search meets it before the path through ours.
    let chain = format!("{leaf}{under_theirs}{under_ours}");
    for mode in [InboundMode::Permissive, InboundMode::Strict] {
        let (verdict, client) = present(local(), mode, (chain.clone(), key.clone())).await;
        match verdict.unwrap() {
            Tls::Mutual { peer } => assert_eq!(peer.as_str(), WEB),
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(alert_received(&client), None, "{mode:?}");
    }

    // Without the path through ours, the other anchor alone does not prove
    // our workload.
    let (verdict, client) = present(
        local(),
        InboundMode::Strict,
        (format!("{leaf}{under_theirs}"), key),
    )
    .await;
    let err = verdict.unwrap_err();
    assert_eq!(
        find::<NoAnchorOfTrustDomain>(&*err).map(|r| r.identity.as_str()),
        Some(WEB),
        "{err}"
    );
    assert_eq!(
        alert_received(&client),
        Some(AlertDescription::CertificateUnknown)
    );
}
