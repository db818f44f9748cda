//! Handshakes that go wrong on the wire, as a careful operator meets them:
//! a client without the certificate a strict port requires, one that goes
//! silent halfway through its handshake, one that sends garbage where a
//! ClientHello belongs, and a server that speaks none of the protocols the
//! connector offers. Each failure is told apart, and says what failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{sync::Arc, time::Duration};

use mesh_core::BoxError;
use mesh_tls::{
    AcceptConfig, ConnectError, InboundMode, TlsAccept, accept::AcceptError,
    metrics::HandshakeFailure,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn accept_error(result: Result<impl Sized, BoxError>) -> AcceptError {
    match result {
        Ok(_) => panic!("the server accepted the connection"),
        Err(e) => *e.downcast::<AcceptError>().unwrap(),
    }
}

/// One connection accepted on a fresh port by an acceptor for `API`.
async fn acceptor(
    config: AcceptConfig,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<
        Result<mesh_core::serve::Accepted<mesh_tls::ServerIo<TcpStream>>, BoxError>,
    >,
    mesh_tls::CredentialStore,
) {
    let store = store(&ca(), API);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(listener, TlsAccept::new(store.clone(), config));
    (addr, server, store)
}

/// The first flight of a TLS 1.3 client on the mesh's provider: its
/// ClientHello records.
fn client_hello() -> Vec<u8> {
    let config = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let name = rustls_pki_types::ServerName::try_from("api.example").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

// A strict port requires a client certificate. rustls refuses a client
// that sends none inside the handshake; the acceptor's error must still
// be the one that says so, `AcceptError::NoClientCertificate`, not a
// generic handshake failure a caller has to dig rustls's error out of.
#[tokio::test]
async fn a_client_without_a_certificate_on_a_strict_port_is_refused_as_such() {
    let (addr, server, store) = acceptor(AcceptConfig::with_mode(InboundMode::Strict)).await;
    let no_cert = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let client = raw_get(no_cert, addr).await;
    assert!(client.is_err(), "the client was served");
    let error = accept_error(server.await.unwrap());
    assert!(
        matches!(error, AcceptError::NoClientCertificate),
        "{error:?}"
    );
    let message = joined(&error);
    assert!(message.contains("without a certificate"), "{message}");
    assert_eq!(error.failure(), Some(HandshakeFailure::NoClientCertificate));
    assert!(
        encode(&store).contains(
            "tls_handshake_failures_total{direction=\"inbound\",reason=\"no_client_certificate\"} 1"
        ),
        "{}",
        encode(&store)
    );
}

// A client that sends its ClientHello and then nothing more (it never
// answers the server's flight) holds a handshake open: the handshake
// timeout covers the handshake, not only detection.
#[tokio::test(start_paused = true)]
async fn a_client_silent_after_its_client_hello_is_cut_off_at_the_handshake_timeout() {
    let timeout = Duration::from_secs(4);
    let config = AcceptConfig {
        handshake_timeout: timeout,
        ..AcceptConfig::with_mode(InboundMode::Strict)
    };
    let (addr, server, store) = acceptor(config).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&client_hello()).await.unwrap();
    let started = tokio::time::Instant::now();
    let error = accept_error(server.await.unwrap());
    assert!(
        matches!(error, AcceptError::Timeout(t) if t == timeout),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), timeout);
    assert!(joined(&error).contains("timed out after 4s"), "{error}");
    assert!(
        encode(&store)
            .contains("tls_handshake_failures_total{direction=\"inbound\",reason=\"timeout\"} 1")
    );
    // The server's flight reached the client before the cut.
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    assert_eq!(buf.first(), Some(&0x16), "{buf:?}");
}

// A record header that announces TLS and then garbage where the
// ClientHello belongs: refused by the handshake as soon as it arrives,
// not left to the handshake timeout (an hour here), with rustls's reason
// in the error's causes, and the connection closed.
#[tokio::test]
async fn garbage_where_the_client_hello_belongs_fails_the_handshake_at_once() {
    // A handshake message of an unknown type and a huge length, and a
    // ClientHello of the right length whose body is garbage.
    let mut unknown = vec![0x16, 0x03, 0x01, 0x00, 0x20];
    unknown.extend_from_slice(&[0xAB; 0x20]);
    let mut bad_hello = vec![0x16, 0x03, 0x01, 0x00, 0x24, 0x01, 0x00, 0x00, 0x20];
    bad_hello.extend_from_slice(&[0xAB; 0x20]);
    for mode in [InboundMode::Permissive, InboundMode::Strict] {
        for garbage in [&unknown, &bad_hello] {
            let config = AcceptConfig {
                handshake_timeout: HOUR,
                ..AcceptConfig::with_mode(mode)
            };
            let (addr, server, _store) = acceptor(config).await;
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(garbage).await.unwrap();
            let error = accept_error(server.await.unwrap());
            assert!(matches!(error, AcceptError::Handshake(_)), "{error:?}");
            let message = joined(&error);
            assert!(message.starts_with("tls handshake failed: "), "{message}");
            assert!(message.len() > "tls handshake failed: ".len(), "{message}");
            let mut buf = Vec::new();
            let _ = tcp.read_to_end(&mut buf).await;
        }
    }
}

// A record header announcing more than TLS allows in one record.
#[tokio::test]
async fn an_oversized_first_record_fails_the_handshake_at_once() {
    let (addr, server, _store) = acceptor(AcceptConfig::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0xFF, 0xFF, 0x01, 0x00])
        .await
        .unwrap();
    let error = accept_error(server.await.unwrap());
    assert!(matches!(error, AcceptError::Handshake(_)), "{error:?}");
}

/// A TLS 1.3 server on 127.0.0.1 presenting `chain` and `key`, with ALPN
/// `protocols`, that records each handshake's result.
async fn serve_tls_with_alpn(
    chain: &str,
    key: &str,
    protocols: &[&[u8]],
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        acceptor.accept(tcp).await.map(drop)
    });
    (addr, task)
}

// A server that speaks none of the protocols the connector offers
// refuses the handshake (RFC 7301 §3.2): the connector's error names the
// server's address and the identity expected, and says why.
#[tokio::test]
async fn a_server_speaking_no_offered_protocol_fails_the_connect_naming_it() {
    let ca = ca();
    let issued = ca.issue(&id(API), HOUR).unwrap();
    let (addr, server) =
        serve_tls_with_alpn(issued.chain_pem(), issued.key_pem(), &[b"spdy/3"]).await;
    let local = store(&ca, WEB);
    let uri = format!("http://{addr}/").parse().unwrap();
    let error = tower::ServiceExt::oneshot(connector(local.clone(), addr, API), uri)
        .await
        .expect_err("no protocol in common");
    assert!(matches!(error, ConnectError::Handshake { .. }), "{error:?}");
    assert_eq!(error.server().unwrap().addr, Some(addr));
    let message = joined(&error);
    assert!(
        message.contains(&format!(
            "tls handshake with {addr} (expecting {API}) failed"
        )),
        "{message}"
    );
    assert!(message.contains("NoApplicationProtocol"), "{message}");
    assert!(server.await.unwrap().is_err());
    assert!(
        encode(&local).contains(
            "tls_handshake_failures_total{direction=\"outbound\",reason=\"alert_received\"} 1"
        ),
        "{}",
        encode(&local)
    );
}

// A server that negotiates no protocol at all (ALPN is optional) is
// reached, and the connection is HTTP/1.1, not taken for HTTP/2.
#[tokio::test]
async fn a_server_without_alpn_is_reached_without_http2() {
    let ca = ca();
    let issued = ca.issue(&id(API), HOUR).unwrap();
    let (addr, server) = serve_tls_with_alpn(issued.chain_pem(), issued.key_pem(), &[]).await;
    let uri = format!("http://{addr}/").parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector(store(&ca, WEB), addr, API), uri)
        .await
        .unwrap();
    assert!(!io.is_h2());
    server.await.unwrap().unwrap();
}

/// A server on 127.0.0.1 that accepts one connection, then holds it
/// without reading or writing.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    (addr, silent)
}

// A target dialled by host name whose server goes silent: the timeout
// names the address the connection reached, as one dialled by address
// does, so that a log line tells which endpoint stalled.
#[tokio::test(start_paused = true)]
async fn a_handshake_timeout_to_a_named_host_names_the_address_reached() {
    let (addr, silent) = silent_server().await;
    let authority: http::uri::Authority = format!("localhost:{}", addr.port()).parse().unwrap();
    let targets = mesh_tls::TlsTargets::new(mesh_tls::OutboundTls::Plaintext)
        .with_target(authority.clone(), mesh_tls::OutboundTls::Mtls(id(API)));
    let config = mesh_tls::ConnectConfig {
        handshake_timeout: Duration::from_secs(3),
        ..mesh_tls::ConnectConfig::default()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let connector =
        mesh_tls::TlsConnector::with_connector(http, store(&ca(), WEB), targets, config).unwrap();
    let uri = format!("http://{authority}/").parse().unwrap();
    let error = tokio::time::timeout(HOUR, tower::ServiceExt::oneshot(connector, uri))
        .await
        .expect("the handshake never timed out")
        .unwrap_err();
    assert!(matches!(error, ConnectError::Timeout { .. }), "{error:?}");
    assert_eq!(error.server().unwrap().addr, Some(addr), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("tls handshake with {addr} (expecting {API}) timed out after 3s")
    );
    silent.abort();
}

// A server that answers the ClientHello with something that is not TLS
// (a plaintext HTTP server on the port an `mtls` target names): the
// connect fails at once, naming the server and rustls's reason, and is
// never taken for plaintext.
#[tokio::test]
async fn a_server_answering_the_client_hello_with_garbage_fails_the_connect_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = tcp.read(&mut buf).await;
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let _ = tcp.read(&mut buf).await;
    });
    let local = store(&ca(), WEB);
    let uri = format!("http://{addr}/").parse().unwrap();
    let error = tower::ServiceExt::oneshot(connector(local.clone(), addr, API), uri)
        .await
        .expect_err("garbage is no handshake");
    assert!(matches!(error, ConnectError::Handshake { .. }), "{error:?}");
    let message = joined(&error);
    assert!(
        message.starts_with(&format!(
            "tls handshake with {addr} (expecting {API}) failed: "
        )),
        "{message}"
    );
    assert!(find::<rustls::Error>(&error).is_some(), "{error:?}");
    server.abort();
}

// What the acceptor logs of a refused handshake says what failed: the
// whole cause (here webpki's unknown issuer; for a certificate naming no
// one, why), not only that a handshake failed, as the connector's line
// does for its side.
#[tokio::test]
async fn the_acceptors_log_of_a_refused_handshake_carries_its_cause() {
    let (events, _guard) = Logs::capture();
    let stranger = ca().issue(&id(WEB), HOUR).unwrap();
    let (addr, server, _store) = acceptor(AcceptConfig::default()).await;
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((stranger.chain_pem(), stranger.key_pem())),
    );
    let client = tokio::spawn(raw_get(config, addr));
    accept_error(server.await.unwrap());
    client.abort();
    let refused = events.find_at(tracing::Level::DEBUG, "inbound tls refused");
    assert_eq!(refused.len(), 1, "{:#?}", events.all());
    assert!(
        refused[0].contains("tls handshake failed: invalid peer certificate: UnknownIssuer"),
        "{refused:?}"
    );

    let raw = RawIssuer::new();
    let (events, _guard) = Logs::capture();
    let nameless = raw.sign(&RawIssuer::params(vec![]));
    accept_error(present_client_cert(&raw, API, nameless).await);
    let refused = events.find_at(tracing::Level::DEBUG, "inbound tls refused");
    assert_eq!(refused.len(), 1, "{:#?}", events.all());
    assert!(
        refused[0].contains(
            "client certificate names no identity: certificate names no identity in its subject alternative names"
        ),
        "{refused:?}"
    );
}
