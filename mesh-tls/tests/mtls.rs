//! Mutual TLS end to end: real sockets on 127.0.0.1, certificates from the
//! mesh's CA, hyper-util's client through the mesh connector.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use mesh_core::BoxError;
use mesh_tls::{
    AcceptConfig, ConnectError, IdentityMismatch, InboundMode, TlsAccept, accept::AcceptError,
    ca::IssueRequest, metrics::HandshakeFailure,
};
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn accept_error(result: Result<impl Sized, BoxError>) -> AcceptError {
    match result {
        Ok(_) => panic!("the server accepted the connection"),
        Err(e) => *e.downcast::<AcceptError>().unwrap(),
    }
}

#[tokio::test]
async fn mutual_tls_succeeds_and_each_side_sees_the_other() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    let mut client = client(connector(store(&ca, WEB), server.addr, API));

    let reply = get(&mut client, server.addr).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        format!("mutual {WEB}"),
        "the server sees the client"
    );
    let tls = reply.server.expect("the response names the server");
    assert_eq!(
        tls.server_identity().as_str(),
        API,
        "the client sees the server"
    );
    server.stop().await;
}

#[tokio::test]
async fn alpn_settles_on_http2_and_requests_share_the_connection() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    let connector = connector(store(&ca, WEB), server.addr, API);
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector.clone(), uri)
        .await
        .unwrap();
    assert!(io.is_h2());
    let tls = io.tls().unwrap();
    assert_eq!(
        tls.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        tls.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
    drop(io);

    let mut client = client(connector);
    let first = get(&mut client, server.addr).await.unwrap().server.unwrap();
    let second = get(&mut client, server.addr).await.unwrap().server.unwrap();
    assert_eq!(first.connection_id(), second.connection_id());
    server.stop().await;
}

#[tokio::test]
async fn the_server_rejects_a_client_certificate_from_another_ca() {
    let ca = ca();
    let stranger = support::ca().issue(&id(WEB), HOUR).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store(&ca, API), AcceptConfig::default());
    let server = accept_one(listener, accept);

    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((stranger.chain_pem(), stranger.key_pem())),
    );
    assert!(raw_get(config, addr).await.is_err());
    let error = accept_error(server.await.unwrap());
    // Each CA names its certificates apart, so path building finds no
    // issuer for the stranger's chain: the failure a foreign CA should
    // count as, not a certificate whose signature is bad.
    assert_eq!(
        error.failure(),
        Some(HandshakeFailure::UnknownIssuer),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_server_rejects_an_expired_client_certificate() {
    let ca = ca();
    let two_hours_ago = SystemTime::now() - 2 * HOUR;
    let expired = ca
        .issue_with(
            &IssueRequest::new(id(WEB))
                .with_not_before(two_hours_ago)
                .with_ttl(HOUR),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store(&ca, API), AcceptConfig::default());
    let server = accept_one(listener, accept);

    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((expired.chain_pem(), expired.key_pem())),
    );
    assert!(raw_get(config, addr).await.is_err());
    let error = accept_error(server.await.unwrap());
    assert_eq!(
        error.failure(),
        Some(HandshakeFailure::CertificateExpired),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_rejects_a_server_with_another_identity() {
    let ca = ca();
    let impostor = "spiffe://example.org/ns/shop/sa/impostor";
    let server = serve(store(&ca, impostor), InboundMode::Permissive).await;
    let web = store(&ca, WEB);
    let mut client = client(connector(web.clone(), server.addr, API));

    let error = get(&mut client, server.addr)
        .await
        .err()
        .expect("the request fails");
    let connect = find::<ConnectError>(&*error).expect("a connect error");
    assert!(connect.is_identity_mismatch(), "{connect:?}");
    let mismatch = find::<IdentityMismatch>(&*error).unwrap();
    assert_eq!(mismatch.expected, id(API));
    assert_eq!(mismatch.presented, Some(id(impostor)));
    let metrics = encode(&web);
    assert!(
        metrics.contains(
            "tls_handshake_failures_total{direction=\"outbound\",reason=\"identity_mismatch\"} 1"
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_mtls_target_fails_closed_without_local_credentials() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let empty = mesh_tls::CredentialStore::default();
    let mut client = client(connector(empty, server.addr, API));

    let error = get(&mut client, server.addr)
        .await
        .err()
        .expect("no plaintext fallback");
    assert!(matches!(
        find::<ConnectError>(&*error),
        Some(ConnectError::NoCredentials { .. })
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_plaintext_target_is_reached_in_plaintext() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let targets = mesh_tls::TlsTargets::new(mesh_tls::OutboundTls::Plaintext);
    let connector = mesh_tls::TlsConnector::new(
        &mesh_core::client::ClientConfig::default(),
        store(&ca, WEB),
        targets,
    )
    .unwrap();
    let reply = get(&mut client(connector), server.addr).await.unwrap();
    assert_eq!(reply.body, "plaintext no_tls_from_remote");
    assert!(reply.server.is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_tls_1_2_client_is_refused() {
    let ca = ca();
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store(&ca, API), AcceptConfig::default());
    let server = accept_one(listener, accept);

    // rustls's full aws-lc-rs provider, which still has TLS 1.2 suites.
    let tls12 = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = raw_client(
        tls12,
        &[&rustls::version::TLS12],
        Some((web.chain_pem(), web.key_pem())),
    );
    let error = raw_get(config, addr)
        .await
        .err()
        .expect("the handshake fails");
    let rustls_error = find::<rustls::Error>(&*error).expect("a tls error");
    assert!(
        matches!(
            rustls_error,
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        ),
        "{rustls_error:?}"
    );
    let error = accept_error(server.await.unwrap());
    assert_eq!(
        error.failure(),
        Some(HandshakeFailure::Incompatible),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_dns_style_identity_is_matched_against_a_dns_san() {
    let ca =
        mesh_tls::ca::CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap();
    let api = "api.shop.serviceaccount.identity.linkerd.cluster.local";
    let web = "web.shop.serviceaccount.identity.linkerd.cluster.local";
    let server = serve(store(&ca, api), InboundMode::Strict).await;
    let mut client = client(connector(store(&ca, web), server.addr, api));
    let reply = get(&mut client, server.addr).await.unwrap();
    assert_eq!(reply.body, format!("mutual {web}"));
    assert_eq!(reply.server.unwrap().server_identity().as_str(), api);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_closed_when_its_certificate_expires() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    let connector = connector(store(&ca, WEB), server.addr, API);
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut io = hyper_util::rt::TokioIo::new(io);

    // Both certificates live an hour: past that, reads fail.
    tokio::time::advance(HOUR + Duration::from_secs(1)).await;
    let mut buf = [0u8; 1];
    let error = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
        .await
        .unwrap_err();
    assert!(
        find::<mesh_tls::connect::ConnectionExpired>(&error).is_some(),
        "{error:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connector_that_does_not_offer_http2_gets_http1() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    let targets = mesh_tls::TlsTargets::new(mesh_tls::OutboundTls::Mtls(id(API)));
    let config = mesh_tls::ConnectConfig {
        alpn: mesh_tls::connect::Alpn::Http1,
        ..Default::default()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let connector =
        mesh_tls::TlsConnector::with_connector(http, store(&ca, WEB), targets, config).unwrap();
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector.clone(), uri)
        .await
        .unwrap();
    assert!(!io.is_h2());
    assert_eq!(
        io.tls().unwrap().alpn_protocol(),
        Some(mesh_tls::ALPN_HTTP1)
    );
    drop(io);
    let reply = get(&mut client(connector), server.addr).await.unwrap();
    assert_eq!(reply.body, format!("mutual {WEB}"));
    server.stop().await;
}

#[tokio::test]
async fn a_client_connection_is_closed_when_the_servers_intermediate_expires_before_its_leaf() {
    let (short_ca, chain, key) = leaf_outliving_its_issuer(API, 2 * HOUR, 12 * HOUR);
    let addr = serve_raw_tls(&chain, &key).await;
    let long_ca = ca();
    let local = creds_trusting(&long_ca, WEB, 24 * HOUR, &[&long_ca, &short_ca]);
    let local = mesh_tls::CredentialStore::with_credentials(Default::default(), local).unwrap();
    let uri = format!("http://{addr}/").parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector(local, addr, API), uri)
        .await
        .unwrap();
    let mut io = hyper_util::rt::TokioIo::new(io);

    tokio::time::pause();
    let paused = tokio::time::Instant::now();
    let left = short_ca
        .issuer_not_after()
        .duration_since(SystemTime::now())
        .unwrap();
    let error = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1])
        .await
        .unwrap_err();
    let elapsed = paused.elapsed();
    assert!(
        find::<mesh_tls::connect::ConnectionExpired>(&error).is_some(),
        "{error:?}"
    );
    assert!(
        elapsed.abs_diff(left) < Duration::from_secs(1),
        "closed after {elapsed:?}, the server's issuer expired after {left:?}"
    );
}
