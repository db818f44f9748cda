//! What a connector offers through ALPN decides how a mesh server serves
//! the connection: a negotiated `http/1.1` or `h2` is served as HTTP
//! unread, and a connector that offers nothing leaves the server to
//! detect the protocol from the decrypted bytes. Real sockets on
//! 127.0.0.1, real TLS handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ConnectionInfo, Tls,
    serve::{self, OpaqueConnection, Server, ServerConfig, shutdown::ShutdownTrigger},
};
use mesh_tls::{
    AcceptConfig, ClientIo, ConnectConfig, CredentialStore, InboundMode, OutboundTls, TlsAccept,
    TlsConnector, TlsTargets, connect::Alpn,
};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Bytes of no protocol the server knows, the client speaking first.
const OPAQUE: &[u8] = b"\x00\x01not http\r\n\xff";

/// A connector to `API` that offers `alpn`.
fn connector_offering(store: CredentialStore, alpn: Alpn) -> TlsConnector {
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let config = ConnectConfig {
        alpn,
        ..ConnectConfig::default()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    TlsConnector::with_connector(http, store, targets, config).unwrap()
}

async fn open(connector: TlsConnector, addr: SocketAddr) -> ClientIo<TokioIo<TcpStream>> {
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector, uri).await.unwrap()
}

/// Writes `bytes` to `io`, and the end of the stream when `end`, and
/// returns all it reads back until the server's end.
async fn exchange(io: ClientIo<TokioIo<TcpStream>>, bytes: &[u8], end: bool) -> Vec<u8> {
    let mut io = TokioIo::new(io);
    io.write_all(bytes).await.unwrap();
    if end {
        io.shutdown().await.unwrap();
    }
    let mut back = Vec::new();
    io.read_to_end(&mut back).await.unwrap();
    back
}

/// A strict mutual TLS server whose port detects its protocol: HTTP
/// requests are answered with how the server saw the caller, and opaque
/// connections get the same line and then their own bytes back.
async fn serve_detect(store: CredentialStore) -> DetectServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = serve::shutdown::channel();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        let body = format!(
            "http {}",
            describe(req.extensions().get::<ConnectionInfo>())
        );
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(body)))
    });
    let opaque = tower::service_fn(|conn: OpaqueConnection| async move {
        let OpaqueConnection { mut io, info } = conn;
        let line = format!("opaque {}\n", describe(Some(&info)));
        io.write_all(line.as_bytes()).await?;
        let (mut r, mut w) = tokio::io::split(io);
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await
    });
    let accept = TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict));
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    let task = tokio::spawn(server.serve(listener, http, opaque, shutdown));
    DetectServer { addr, stop, task }
}

struct DetectServer {
    addr: SocketAddr,
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl DetectServer {
    async fn stop(self) {
        self.stop.trigger();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn a_connector_offering_no_alpn_completes_mutual_tls_with_none_negotiated() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(
        store(&ca, API),
        AcceptConfig::with_mode(InboundMode::Strict),
    );
    let server = accept_one(listener, accept);
    let io = open(connector_offering(store(&ca, WEB), Alpn::None), addr).await;
    assert_eq!(io.tls().unwrap().alpn_protocol(), None);
    assert!(!io.is_h2());
    assert_eq!(io.server_identity().unwrap().as_str(), API);

    let accepted = server.await.unwrap().unwrap();
    assert_eq!(accepted.alpn, None, "the server was told no HTTP version");
    assert_eq!(accepted.tls, Tls::Mutual { peer: id(WEB) });
}

#[tokio::test]
async fn with_no_alpn_a_detecting_server_serves_opaque_bytes_as_opaque() {
    let ca = ca();
    let server = serve_detect(store(&ca, API)).await;
    let connector = connector_offering(store(&ca, WEB), Alpn::None);
    let back = exchange(open(connector, server.addr).await, OPAQUE, true).await;
    let mut expected = format!("opaque mutual {WEB}\n").into_bytes();
    expected.extend_from_slice(OPAQUE);
    assert_eq!(back, expected);
    server.stop().await;
}

#[tokio::test]
async fn with_no_alpn_a_detecting_server_still_serves_http_as_http() {
    let ca = ca();
    let server = serve_detect(store(&ca, API)).await;
    let connector = connector_offering(store(&ca, WEB), Alpn::None);
    // Over the raw stream (the server, as hyper's does by default, takes
    // a client's end as its leaving, so the request asks for the close),
    // and through hyper's client, which speaks HTTP/1.1 when ALPN chose
    // nothing.
    let req = b"GET / HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n";
    let back = exchange(open(connector.clone(), server.addr).await, req, false).await;
    let back = String::from_utf8(back).unwrap();
    assert!(back.starts_with("HTTP/1.1 200 OK\r\n"), "{back}");
    assert!(
        back.ends_with(&format!("\r\n\r\nhttp mutual {WEB}")),
        "{back}"
    );
    let reply = get(&mut client(connector), server.addr).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, format!("http mutual {WEB}"));
    server.stop().await;
}

#[tokio::test]
async fn with_http1_offered_a_detecting_server_takes_opaque_bytes_for_http() {
    let ca = ca();
    let server = serve_detect(store(&ca, API)).await;
    let connector = connector_offering(store(&ca, WEB), Alpn::Http1);
    let io = open(connector, server.addr).await;
    assert_eq!(
        io.tls().unwrap().alpn_protocol(),
        Some(mesh_tls::ALPN_HTTP1)
    );
    // The negotiated protocol is the client's word: the bytes go to the
    // HTTP server, which rejects them, and never reach the opaque handler.
    let back = String::from_utf8_lossy(&exchange(io, OPAQUE, true).await).into_owned();
    assert!(back.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{back}");
    assert!(!back.contains("opaque"), "{back}");
    server.stop().await;
}

/// A client whose ALPN offers only protocols the mesh does not speak (here
/// Linkerd's transport header protocol, which a Linkerd proxy offers to a
/// peer it believes reads the header) is refused in the handshake with
/// the alert `no_application_protocol` (RFC 7301 §3.2), on every port:
/// the acceptor cannot read what the client would send.
#[tokio::test]
async fn a_client_offering_only_protocols_the_mesh_does_not_speak_is_refused() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(
        listener,
        TlsAccept::new(
            store(&ca, API),
            AcceptConfig::with_mode(InboundMode::Permissive),
        ),
    );
    let web = ca.issue(&id(WEB), support::HOUR).unwrap();
    let mut config = std::sync::Arc::unwrap_or_clone(raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((web.chain_pem(), web.key_pem())),
    ));
    config.alpn_protocols = vec![b"transport.l5d.io/v1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            find::<rustls::Error>(&client),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        ),
        "{client:?}"
    );
    let error = match server.await.unwrap() {
        Ok(_) => panic!("the acceptor served the connection"),
        Err(e) => e,
    };
    assert!(
        matches!(
            find::<rustls::Error>(&*error),
            Some(rustls::Error::NoApplicationProtocol)
        ),
        "{error:?}"
    );
}
