//! Inbound modes: what permissive, strict and disabled ports let through,
//! and how the TLS status reaches requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_core::{
    BoxError, Tls,
    conn::NoTlsReason,
    io::PrefixedIo,
    serve::{Accept, HttpVersion},
};
use mesh_tls::{
    AcceptConfig, InboundMode, ServerIo, TlsAccept, accept::AcceptError, metrics::HandshakeFailure,
};
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

async fn one(
    mode: InboundMode,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<mesh_core::serve::Accepted<ServerIo<TcpStream>>, BoxError>>,
    mesh_tls::CredentialStore,
) {
    let ca = ca();
    let store = store(&ca, API);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(
        listener,
        TlsAccept::new(store.clone(), AcceptConfig::with_mode(mode)),
    );
    (addr, server, store)
}

#[tokio::test]
async fn permissive_serves_plaintext_tls_and_mutual_tls_and_records_each() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;

    let plain = get_plaintext(server.addr).await.unwrap();
    assert_eq!(plain.body, "plaintext no_tls_from_remote");

    let no_cert = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let tls = raw_get(no_cert, server.addr).await.unwrap();
    assert_eq!(tls.body, "no_client_cert");

    let mut mesh = client(connector(store(&ca, WEB), server.addr, API));
    let mutual = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(mutual.body, format!("mutual {WEB}"));
    server.stop().await;
}

#[tokio::test]
async fn strict_closes_plaintext_connections() {
    let (addr, server, store) = one(InboundMode::Strict).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: api\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Closed without a response (a reset also counts as closed).
    let read = tcp.read_to_end(&mut buf).await;
    assert!(read.is_err() || buf.is_empty(), "{read:?} {buf:?}");
    let error = accept_error(server.await.unwrap());
    assert!(matches!(error, AcceptError::PlaintextRefused), "{error:?}");
    assert!(encode(&store).contains(
        "tls_handshake_failures_total{direction=\"inbound\",reason=\"plaintext_refused\"} 1"
    ));
}

#[tokio::test]
async fn strict_closes_tls_connections_without_a_client_certificate() {
    let (addr, server, _store) = one(InboundMode::Strict).await;
    let no_cert = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    assert!(raw_get(no_cert, addr).await.is_err());
    let error = accept_error(server.await.unwrap());
    assert_eq!(
        error.failure(),
        Some(HandshakeFailure::NoClientCertificate),
        "{error:?}"
    );
}

#[tokio::test]
async fn strict_serves_mutual_tls_through_the_server() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    assert!(get_plaintext(server.addr).await.is_err());
    let no_cert = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    assert!(raw_get(no_cert, server.addr).await.is_err());
    let mut mesh = client(connector(store(&ca, WEB), server.addr, API));
    assert_eq!(
        get(&mut mesh, server.addr).await.unwrap().body,
        format!("mutual {WEB}")
    );
    server.stop().await;
}

#[tokio::test]
async fn disabled_serves_plaintext_and_passes_tls_bytes_on_untouched() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Disabled).await;
    assert_eq!(
        get_plaintext(server.addr).await.unwrap().body,
        "plaintext disabled"
    );
    server.stop().await;

    let (addr, server, _store) = one(InboundMode::Disabled).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05];
    tcp.write_all(&hello).await.unwrap();
    let accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.tls, Tls::Plaintext(NoTlsReason::Disabled));
    let mut io = accepted.io;
    let mut buf = [0u8; 5];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, hello, "the bytes reach the handler as they were sent");
}

#[tokio::test]
async fn a_tls_client_before_credentials_load_is_closed_and_plaintext_still_served() {
    let empty = mesh_tls::CredentialStore::default();
    let server = serve(empty.clone(), InboundMode::Permissive).await;
    assert_eq!(
        get_plaintext(server.addr).await.unwrap().body,
        "plaintext no_tls_from_remote"
    );
    let no_cert = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    assert!(raw_get(no_cert, server.addr).await.is_err());
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_disconnected_after_the_handshake_timeout() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AcceptConfig {
        handshake_timeout: Duration::from_secs(3),
        ..AcceptConfig::default()
    };
    let server = accept_one(listener, TlsAccept::new(store(&ca, API), config));
    let _silent = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let error = accept_error(server.await.unwrap());
    assert!(matches!(error, AcceptError::Timeout(_)), "{error:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn the_acceptor_works_over_any_stream_and_reports_the_alpn_choice() {
    let ca = ca();
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    // A stream that is not a socket, and has already been read from.
    let wrapped = PrefixedIo::new(bytes::Bytes::new(), server_io);
    let accept = TlsAccept::new(store(&ca, API), AcceptConfig::default());
    let server = tokio::spawn(async move { accept.accept(wrapped).await });

    let mut config = (*raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((web.chain_pem(), web.key_pem())),
    ))
    .clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("api").unwrap();
    let client = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, client_io)
        .await
        .unwrap();

    let accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.tls, Tls::Mutual { peer: id(WEB) });
    assert_eq!(accepted.alpn, Some(HttpVersion::Http2));
    let session = accepted.io.tls().unwrap();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    drop(client);
}

/// A workload whose identity is a SPIFFE ID terminates every ClientHello,
/// whatever server it names: it presents the mesh certificate to a client
/// that asked for another server, since a mesh client dialling a SPIFFE
/// identity sends the host it dialled. A workload with a DNS-style
/// identity passes such a connection through to the application instead,
/// as Linkerd's proxy does (see the `accept` module docs, "Server names").
#[tokio::test]
async fn a_client_hello_naming_another_server_is_terminated_with_the_mesh_certificate() {
    let creds = creds(&ca(), API);
    let store =
        mesh_tls::CredentialStore::with_credentials(Default::default(), creds.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(listener, TlsAccept::new(store, AcceptConfig::default()));
    let config = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from("shop.example.com").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented, creds.chain()[0]);
    let accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.tls, Tls::NoClientCert);
    let conn = accepted.io.tls().unwrap();
    assert_eq!(conn.server_name(), Some("shop.example.com"));
}
