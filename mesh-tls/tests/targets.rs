//! A target configured for mutual TLS is reached over mutual TLS however a
//! request URI spells its authority: real sockets on 127.0.0.1, a
//! permissive mesh server that says how it saw the caller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_core::client::ClientConfig;
use mesh_tls::{
    ConnectError, CredentialStore, InboundMode, OutboundTls, ServerTls, TlsConnector, TlsTargets,
};
use support::*;
use tower::ServiceExt;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Sends a GET to `uri` and checks it went over mutual TLS: the server
/// saw the client as `WEB`, and the client the server as `API`.
async fn assert_mutual(client: &mut MeshClient, uri: &str) {
    let req = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let res = client.oneshot(req).await.unwrap();
    let tls = res.extensions().get::<ServerTls>().cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("mutual {WEB}"), "{uri}");
    assert_eq!(tls.unwrap().server_identity().as_str(), API, "{uri}");
}

#[tokio::test]
async fn userinfo_in_the_uri_does_not_turn_an_mtls_target_into_plaintext() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let mut client = client(connector(store(&ca, WEB), server.addr, API));

    for uri in [
        format!("http://user@{}/", server.addr),
        format!("http://user:secret@{}/", server.addr),
    ] {
        assert_mutual(&mut client, &uri).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_uri_without_a_port_reaches_the_target_at_its_schemes_port_over_mtls() {
    // Nothing listens on port 80 in the test, so reaching it in plaintext
    // fails to connect; as an mtls target without local credentials it
    // fails closed before connecting.
    let targets = TlsTargets::new(OutboundTls::Plaintext)
        .with_endpoint("127.0.0.1:80".parse().unwrap(), OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::new(
        &ClientConfig::default(),
        CredentialStore::default(),
        targets,
    )
    .unwrap();
    for uri in [
        "http://127.0.0.1/",
        "http://127.0.0.1:80/",
        "http://u@127.0.0.1/",
    ] {
        let error = connector
            .clone()
            .oneshot(uri.parse().unwrap())
            .await
            .expect_err("no credentials");
        assert!(
            matches!(error, ConnectError::NoCredentials { .. }),
            "{uri}: {error:?}"
        );
    }
}

/// The C library's resolver, which hyper-util's connector asks, reads
/// `127.1`, `2130706433`, `0x7f.0.0.1` and `0177.0.0.1` as 127.0.0.1, and a
/// dual-stack socket dialled at `[::ffff:127.0.0.1]` reaches 127.0.0.1 too.
/// Each of these spellings connects to the mtls target, so each must get
/// mutual TLS, never the plaintext default.
#[tokio::test]
async fn an_ipv4_target_spelled_as_the_resolver_also_reads_it_gets_mtls() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    assert!(server.addr.ip().is_loopback() && server.addr.is_ipv4());
    let port = server.addr.port();
    let mut client = client(connector(store(&ca, WEB), server.addr, API));

    for host in [
        "[::ffff:127.0.0.1]",
        "[::FFFF:7F00:1]",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f.0.0.1",
        "0X7F000001",
        "0177.0.0.1",
        "0177.0.0.01",
    ] {
        let uri = format!("http://{host}:{port}/");
        assert_mutual(&mut client, &uri).await;
    }
    server.stop().await;
}

/// A host name, or the unspecified address (which Linux dials as the
/// local host), connects to the mtls target without spelling its address
/// at all. What decides is where the connection went: the connector checks
/// the address it connected to against the targets before it sends a byte.
#[tokio::test]
async fn a_name_or_unspecified_address_that_connects_to_an_mtls_target_gets_mtls() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let port = server.addr.port();
    let mut client = client(connector(store(&ca, WEB), server.addr, API));

    for host in ["localhost", "LocalHost", "0.0.0.0", "0"] {
        let uri = format!("http://{host}:{port}/");
        assert_mutual(&mut client, &uri).await;
    }

    // Without local credentials, the check fails closed too.
    let bare = connector(CredentialStore::default(), server.addr, API);
    let error = bare
        .oneshot(format!("http://localhost:{port}/").parse().unwrap())
        .await
        .expect_err("no credentials");
    assert!(
        matches!(error, ConnectError::NoCredentials { .. }),
        "{error:?}"
    );
    server.stop().await;
}

/// Linkerd's proxy sends the server's identity as the TLS server name
/// (SNI) and its inbound side terminates only a ClientHello that names its
/// own identity, passing any other through to the application. So a
/// DNS-style identity goes out as the SNI, whatever host the URI names: an
/// address (which TLS cannot carry as a server name, so no SNI at all
/// would go out), a host name, or a host reached by where it connected.
#[tokio::test]
async fn a_dns_style_identity_is_sent_as_the_server_name() {
    let ca =
        mesh_tls::ca::CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap();
    let api = "api.shop.serviceaccount.identity.linkerd.cluster.local";
    let web = "web.shop.serviceaccount.identity.linkerd.cluster.local";
    let server_store = store(&ca, api);
    let client_store = store(&ca, web);
    for host in ["127.0.0.1", "localhost"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = mesh_tls::TlsAccept::new(
            server_store.clone(),
            mesh_tls::AcceptConfig::with_mode(InboundMode::Strict),
        );
        let server = accept_one(listener, accept);
        let connector = connector(client_store.clone(), addr, api);
        let uri = format!("http://{host}:{}/", addr.port());
        let _io = connector.oneshot(uri.parse().unwrap()).await.unwrap();
        let accepted = server.await.unwrap().unwrap();
        let sni = accepted.io.tls().unwrap().server_name().map(str::to_owned);
        assert_eq!(sni.as_deref(), Some(api), "{host}");
    }
}

/// A SPIFFE ID is no DNS name and cannot be a server name: the URI's host
/// name goes out instead, as for any TLS client.
#[tokio::test]
async fn a_spiffe_identity_sends_the_uris_host_name() {
    let ca = ca();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = mesh_tls::TlsAccept::new(
        store(&ca, API),
        mesh_tls::AcceptConfig::with_mode(InboundMode::Strict),
    );
    let server = accept_one(listener, accept);
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::new(&ClientConfig::default(), store(&ca, WEB), targets).unwrap();
    let uri = format!("http://localhost:{}/", addr.port());
    let _io = connector.oneshot(uri.parse().unwrap()).await.unwrap();
    let accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.io.tls().unwrap().server_name(), Some("localhost"));
}
