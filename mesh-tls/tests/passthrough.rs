//! A ClientHello that names another server than a workload with a
//! DNS-style identity is the application's own TLS: a permissive acceptor
//! passes its bytes through untouched (`Tls::Passthrough`), and the
//! application's handshake then runs end to end over them. One with no
//! server name, or one the local certificate carries, is terminated as
//! before, and so is every one a workload with a SPIFFE ID receives (the
//! mesh's connector sends a SPIFFE target the host it dialled); a strict
//! port refuses a passthrough. Real sockets on 127.0.0.1, real rustls on
//! both ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::Arc};

use mesh_core::{BoxError, Tls, conn::Sni, serve::Accepted};
use mesh_tls::{
    AcceptConfig, CredentialStore, InboundMode, ServerIo, StoreConfig, TlsAccept,
    accept::AcceptError,
    ca::{CertificateAuthority, IssueRequest},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

const API: &str = "spiffe://example.org/ns/shop/sa/api";
const DNS_API: &str = "api.shop.serviceaccount.identity.linkerd.cluster.local";
const DNS_WEB: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";

type Served = JoinHandle<Result<Accepted<ServerIo<TcpStream>>, BoxError>>;

/// An application serving TLS of its own for `app.example`, with a
/// self-signed certificate its clients trust.
struct App {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn app() -> App {
    let issued = rcgen::generate_simple_self_signed(vec!["app.example".to_owned()]).unwrap();
    let cert = CertificateDer::from(issued.cert.der().to_vec());
    let key = PrivateKeyDer::try_from(issued.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    App {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// Accepts one connection with `store` in `mode`.
async fn accept(store: &CredentialStore, mode: InboundMode) -> (SocketAddr, Served) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store.clone(), AcceptConfig::with_mode(mode));
    (addr, accept_one(listener, accept))
}

/// A CA of the trust domain Linkerd's DNS-style identities end in.
fn dns_ca() -> CertificateAuthority {
    CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap()
}

fn app_sni() -> Sni {
    Sni::parse("app.example").unwrap()
}

/// The lines of the store's metrics that name `family`.
fn lines(store: &CredentialStore, family: &str) -> Vec<String> {
    encode(store)
        .lines()
        .filter(|l| l.starts_with(family))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_client_hello_for_another_server_is_passed_through_to_the_applications_tls() {
    let store = store(&dns_ca(), DNS_API);
    let (addr, served) = accept(&store, InboundMode::Permissive).await;
    let app = app();

    // The application behind the port: its own handshake over what the
    // acceptor passed on, then an echo of one message.
    let server = app.server.clone();
    let application = tokio::spawn(async move {
        let accepted = served.await.unwrap().unwrap();
        assert_eq!(accepted.tls, Tls::Passthrough { sni: app_sni() });
        assert!(accepted.alpn.is_none());
        assert!(accepted.io.tls().is_none(), "the mesh terminated nothing");
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(accepted.io)
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.unwrap();
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("App.Example").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(app.client)
        .connect(name, tcp)
        .await
        .expect("the application's handshake, end to end");
    tls.write_all(b"ping").await.unwrap();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.unwrap();
    assert_eq!(buf, b"pong");
    application.await.unwrap();

    assert_eq!(
        lines(&store, "tls_passthrough_connections_total"),
        ["tls_passthrough_connections_total 1"]
    );
    assert!(
        lines(&store, "tls_handshake_failures_total").is_empty(),
        "{}",
        encode(&store)
    );
}

/// The bytes reach the application as the client sent them, the
/// ClientHello whole, even when it came in pieces.
#[tokio::test]
async fn a_client_hello_in_pieces_is_passed_on_byte_for_byte() {
    let store = store(&dns_ca(), DNS_API);
    let (addr, served) = accept(&store, InboundMode::Permissive).await;
    let name = ServerName::try_from("app.example").unwrap();
    let mut hello = Vec::new();
    rustls::ClientConnection::new(app().client, name)
        .unwrap()
        .write_tls(&mut hello)
        .unwrap();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for piece in [&hello[..3], &hello[3..9], &hello[9..]] {
        tcp.write_all(piece).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    tcp.write_all(b"after").await.unwrap();
    let mut accepted = served.await.unwrap().unwrap();
    assert_eq!(accepted.tls, Tls::Passthrough { sni: app_sni() });
    let mut got = vec![0u8; hello.len() + 5];
    accepted.io.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..hello.len()], &hello[..]);
    assert_eq!(&got[hello.len()..], b"after");
}

/// Connects a raw TLS client asking for `name` to an acceptor of `store`
/// and returns how the acceptor took the connection.
async fn raw_hello(store: &CredentialStore, name: &str) -> Tls {
    let raw = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let (addr, served) = accept(store, InboundMode::Permissive).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _tls = tokio_rustls::TlsConnector::from(raw)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    served.await.unwrap().unwrap().tls
}

/// A mesh client names this workload's DNS-style identity; a tool may
/// name it in another case, another DNS name the certificate carries, or
/// no server at all (an address). Each is terminated.
#[tokio::test]
async fn a_client_hello_for_this_workload_or_for_no_name_is_terminated() {
    let ca = dns_ca();
    let issued = ca
        .issue_with(&IssueRequest::new(id(DNS_API)).with_dns_name("localhost"))
        .unwrap();
    let api =
        CredentialStore::with_credentials(StoreConfig::default(), issued.credentials().unwrap())
            .unwrap();

    let (addr, served) = accept(&api, InboundMode::Permissive).await;
    let connector = connector(store(&ca, DNS_WEB), addr, DNS_API);
    let uri = format!("http://127.0.0.1:{}/", addr.port());
    let _io = tower::ServiceExt::oneshot(connector, uri.parse().unwrap())
        .await
        .unwrap();
    let accepted = served.await.unwrap().unwrap();
    assert_eq!(accepted.tls, Tls::Mutual { peer: id(DNS_WEB) });

    for name in [&DNS_API.to_ascii_uppercase(), "LocalHost", "127.0.0.1"] {
        assert_eq!(raw_hello(&api, name).await, Tls::NoClientCert, "{name}");
    }
    assert_eq!(
        lines(&api, "tls_passthrough_connections_total"),
        ["tls_passthrough_connections_total 0"]
    );
}

/// A workload with a SPIFFE ID cannot tell a mesh client from the
/// application's by the name asked for: the mesh's connector sends a
/// SPIFFE target the host it dialled. It terminates every ClientHello.
#[tokio::test]
async fn a_workload_with_a_spiffe_id_terminates_every_client_hello() {
    let api = store(&ca(), API);
    for name in ["app.example", "api.shop.svc.cluster.local", "localhost"] {
        assert_eq!(raw_hello(&api, name).await, Tls::NoClientCert, "{name}");
    }
    assert_eq!(
        lines(&api, "tls_passthrough_connections_total"),
        ["tls_passthrough_connections_total 0"]
    );
}

/// A strict port admits mutual TLS with the mesh alone: TLS for another
/// server is closed, and counted as a refusal.
#[tokio::test]
async fn a_strict_port_refuses_a_client_hello_for_another_server() {
    let ca = dns_ca();
    let store = store(&ca, DNS_API);
    let (addr, served) = accept(&store, InboundMode::Strict).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tokio_rustls::TlsConnector::from(app().client)
        .connect(ServerName::try_from("app.example").unwrap(), tcp);
    let (client, accepted) = tokio::join!(client, served);
    assert!(client.is_err(), "the client's handshake cannot finish");
    let error = accepted.unwrap().unwrap_err();
    match error.downcast_ref::<AcceptError>() {
        Some(AcceptError::PassthroughRefused(sni)) => assert_eq!(*sni, app_sni()),
        other => panic!("{other:?}: {error}"),
    }
    assert_eq!(
        error.to_string(),
        "tls client hello for another server (app.example) refused on a strict port"
    );
    assert_eq!(
        lines(&store, "tls_handshake_failures_total"),
        ["tls_handshake_failures_total{direction=\"inbound\",reason=\"passthrough_refused\"} 1"]
    );
    assert_eq!(
        lines(&store, "tls_passthrough_connections_total"),
        ["tls_passthrough_connections_total 0"]
    );

    // A mesh client is still served.
    let (addr, served) = accept(&store, InboundMode::Strict).await;
    let connector = connector(support::store(&ca, DNS_WEB), addr, DNS_API);
    let uri = format!("http://127.0.0.1:{}/", addr.port());
    let _io = tower::ServiceExt::oneshot(connector, uri.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        served.await.unwrap().unwrap().tls,
        Tls::Mutual { peer: id(DNS_WEB) }
    );
}

/// Before any credentials load, the acceptor knows no name of its own,
/// so it cannot tell a mesh client from the application's: it refuses
/// every ClientHello, as before.
#[tokio::test]
async fn without_credentials_no_client_hello_is_passed_through() {
    let store = CredentialStore::default();
    let (addr, served) = accept(&store, InboundMode::Permissive).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tokio_rustls::TlsConnector::from(app().client)
        .connect(ServerName::try_from("app.example").unwrap(), tcp);
    let (client, accepted) = tokio::join!(client, served);
    assert!(client.is_err());
    let error = accepted.unwrap().unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<AcceptError>(),
            Some(AcceptError::NoCredentials)
        ),
        "{error}"
    );
}
