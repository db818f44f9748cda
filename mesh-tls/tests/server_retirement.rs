//! Server-side retirement: TLS connections the acceptor let in are drained
//! when the credentials rotate or a certificate nears expiry, and closed
//! at expiry.
//!
//! The expiry tests pause tokio's clock once a request is inside the
//! handler: from then on only the retirement's timers are pending, and the
//! paused clock jumps to them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::reissued;
use crate::support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use mesh_tls::{AcceptConfig, CredentialStore, InboundMode, TlsAccept, ca::CertificateAuthority};
use rustls_pki_types::ServerName;
use support::*;
use tokio::{net::TcpStream, sync::Notify, task::JoinHandle};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Lets a test hold a request inside the handler.
#[derive(Default)]
struct Gate {
    arrived: Notify,
    release: Notify,
}

/// A strict mTLS server whose handler answers `/` at once and holds `/slow`
/// at the gate.
async fn serve(store: CredentialStore, config: AcceptConfig, gate: Arc<Gate>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = tower::service_fn(move |req: Request<Incoming>| {
        let gate = gate.clone();
        async move {
            if req.uri().path() == "/slow" {
                gate.arrived.notify_one();
                gate.release.notified().await;
            }
            Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
        }
    });
    let (stop, signal) = shutdown::channel();
    let server = Server::new(ServerConfig::default()).with_accept(TlsAccept::new(store, config));
    tokio::spawn(async move {
        server.serve_http(listener, handler, signal).await;
        drop(stop);
    });
    addr
}

/// One HTTP/1.1 connection over mutual TLS as `WEB`; the task ends when
/// the server closes the connection.
async fn connect(
    ca: &CertificateAuthority,
    addr: SocketAddr,
) -> (SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let (send, task, _) = connect_seeing(ca, addr).await;
    (send, task)
}

/// [`connect`], and the certificate the server presented in the handshake.
async fn connect_seeing(
    ca: &CertificateAuthority,
    addr: SocketAddr,
) -> (SendRequest<Empty<Bytes>>, JoinHandle<()>, Vec<u8>) {
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((web.chain_pem(), web.key_pem())),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task, presented)
}

async fn request(
    send: &mut SendRequest<Empty<Bytes>>,
    path: &str,
) -> Result<StatusCode, hyper::Error> {
    send.ready().await?;
    let req = Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await?;
    let status = res.status();
    res.into_body().collect().await?;
    Ok(status)
}

/// Waits for the connection to be closed by the server.
async fn closed(task: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server never closed the connection")
        .unwrap();
}

fn retired(store: &CredentialStore, reason: &str) -> bool {
    encode(store).lines().any(|line| {
        line == format!(
            "tls_connections_retired_total{{direction=\"inbound\",reason=\"{reason}\"}} 1"
        )
    })
}

/// Sends `/slow` and waits until the handler holds it.
async fn hold(
    mut send: SendRequest<Empty<Bytes>>,
    gate: &Gate,
) -> JoinHandle<Result<StatusCode, hyper::Error>> {
    let slow = tokio::spawn(async move { request(&mut send, "/slow").await });
    gate.arrived.notified().await;
    slow
}

/// Waits until the server counted a retirement for `reason`.
async fn wait_retired(store: &CredentialStore, reason: &str) {
    while !retired(store, reason) {
        tokio::task::yield_now().await;
    }
}

/// Strict mTLS, draining connections when the credentials rotate.
fn draining_on_rotation() -> AcceptConfig {
    AcceptConfig {
        drain_on_rotation: true,
        ..AcceptConfig::with_mode(InboundMode::Strict)
    }
}

#[tokio::test]
async fn by_default_a_rotation_leaves_open_connections_alone() {
    let ca = ca();
    let server_store = store(&ca, API);
    let config = AcceptConfig::with_mode(InboundMode::Strict);
    let addr = serve(server_store.clone(), config, Arc::default()).await;
    let (mut send, task) = connect(&ca, addr).await;
    assert_eq!(request(&mut send, "/").await.unwrap(), StatusCode::OK);

    server_store.update(creds(&ca, API)).unwrap();
    // The old certificate is still valid: the client may go on using the
    // connection it authenticated.
    for _ in 0..3 {
        assert_eq!(request(&mut send, "/").await.unwrap(), StatusCode::OK);
    }
    assert!(!task.is_finished());
    assert!(
        !retired(&server_store, "rotation"),
        "{}",
        encode(&server_store)
    );
}

#[tokio::test]
async fn with_drain_on_rotation_a_rotation_drains_open_connections_and_new_ones_use_the_new_certificate()
 {
    let ca = ca();
    let server_store = store(&ca, API);
    let config = draining_on_rotation();
    let addr = serve(server_store.clone(), config, Arc::default()).await;
    let old = server_store.credentials().unwrap().chain()[0].to_vec();
    let (mut send, task, presented) = connect_seeing(&ca, addr).await;
    assert_eq!(presented, old);
    assert_eq!(request(&mut send, "/").await.unwrap(), StatusCode::OK);

    let next = creds(&ca, API);
    let new = next.chain()[0].to_vec();
    server_store.update(next).unwrap();
    closed(task).await;
    assert!(
        request(&mut send, "/").await.is_err(),
        "the drained connection is gone"
    );
    assert!(
        retired(&server_store, "rotation"),
        "{}",
        encode(&server_store)
    );

    let (mut send, _task, presented) = connect_seeing(&ca, addr).await;
    assert_eq!(
        presented, new,
        "a new handshake presents the new certificate"
    );
    assert_eq!(request(&mut send, "/").await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_in_flight_finishes_before_a_drained_connection_closes() {
    let ca = ca();
    let server_store = store(&ca, API);
    let gate = Arc::new(Gate::default());
    let config = draining_on_rotation();
    let addr = serve(server_store.clone(), config, gate.clone()).await;
    let (send, task) = connect(&ca, addr).await;
    let slow = hold(send, &gate).await;

    server_store.update(creds(&ca, API)).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        wait_retired(&server_store, "rotation"),
    )
    .await
    .expect("the connection was never drained");
    assert!(!task.is_finished(), "closed with a request in flight");
    gate.release.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    closed(task).await;
}

#[tokio::test]
async fn a_connection_still_busy_when_a_certificate_expires_is_closed() {
    let ca = ca();
    let server_store = store(&ca, API);
    let gate = Arc::new(Gate::default());
    let config = AcceptConfig::with_mode(InboundMode::Strict);
    let addr = serve(server_store.clone(), config, gate.clone()).await;
    let (send, task) = connect(&ca, addr).await;
    let slow = hold(send, &gate).await;

    // The handler never answers, so draining alone would wait for ever.
    tokio::time::pause();
    let paused = tokio::time::Instant::now();
    // The server's certificate, issued first, expires first.
    let expiry = server_store.credentials().unwrap().not_after();
    let left = expiry.duration_since(SystemTime::now()).unwrap();
    let error = slow.await.unwrap().unwrap_err();
    let elapsed = paused.elapsed();
    task.await.unwrap();
    // Drained a minute ahead (which cannot end the held request), and
    // closed at the certificate's notAfter.
    assert!(
        elapsed.abs_diff(left) < Duration::from_secs(1),
        "closed after {elapsed:?}, the certificate expired after {left:?}: {error}"
    );
    assert!(
        retired(&server_store, "expiry"),
        "{}",
        encode(&server_store)
    );
}

#[tokio::test]
async fn without_close_at_expiry_a_busy_connection_is_only_drained() {
    let ca = ca();
    let server_store = store(&ca, API);
    let gate = Arc::new(Gate::default());
    let config = AcceptConfig {
        close_at_expiry: false,
        ..AcceptConfig::with_mode(InboundMode::Strict)
    };
    let addr = serve(server_store.clone(), config, gate.clone()).await;
    let (send, task) = connect(&ca, addr).await;
    let slow = hold(send, &gate).await;

    tokio::time::pause();
    tokio::time::sleep(2 * HOUR).await;
    assert!(retired(&server_store, "expiry"), "drained a minute ahead");
    assert!(!task.is_finished(), "closed with a request in flight");
    gate.release.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    task.await.unwrap();
}

#[tokio::test]
async fn a_rotation_that_drops_the_anchor_a_client_chains_to_drains_that_clients_connections() {
    // The bundle trusts two CAs; a rotation drops `old`, as after its
    // key leaked. Its clients' connections must not live on for the rest
    // of their certificates' lifetime.
    let (kept, old) = (ca(), ca());
    let server_store = CredentialStore::with_credentials(
        mesh_tls::StoreConfig::default(),
        creds_trusting(&kept, API, HOUR, &[&kept, &old]),
    )
    .unwrap();
    let config = AcceptConfig::with_mode(InboundMode::Strict);
    let addr = serve(server_store.clone(), config, Arc::default()).await;
    let (mut distrusted, distrusted_task) = connect(&old, addr).await;
    let (mut trusted, trusted_task) = connect(&kept, addr).await;
    assert_eq!(request(&mut distrusted, "/").await.unwrap(), StatusCode::OK);
    assert_eq!(request(&mut trusted, "/").await.unwrap(), StatusCode::OK);

    server_store
        .update(creds_trusting(&kept, API, HOUR, &[&kept]))
        .unwrap();
    closed(distrusted_task).await;
    assert!(request(&mut distrusted, "/").await.is_err());
    assert!(
        retired(&server_store, "rotation"),
        "{}",
        encode(&server_store)
    );
    // The client the new bundle still trusts keeps its connection.
    for _ in 0..3 {
        assert_eq!(request(&mut trusted, "/").await.unwrap(), StatusCode::OK);
    }
    assert!(!trusted_task.is_finished());
    // And the distrusted CA's clients cannot come back.
    let (mut again, _task) = connect(&old, addr).await;
    assert!(request(&mut again, "/").await.is_err());
}

#[tokio::test]
async fn a_connection_is_closed_when_the_clients_intermediate_expires_before_its_leaf() {
    // The client's issuer lives two hours and signed a leaf living twelve,
    // as CAs that do not clamp leaves to their own lifetime do. The chain
    // stops verifying when the issuer expires, and so must the connection.
    let (short_ca, chain, key) = leaf_outliving_its_issuer(WEB, 2 * HOUR, 12 * HOUR);
    let long_ca = ca();
    let server_creds = creds_trusting(&long_ca, API, 24 * HOUR, &[&long_ca, &short_ca]);
    let server_store =
        CredentialStore::with_credentials(mesh_tls::StoreConfig::default(), server_creds).unwrap();
    let gate = Arc::new(Gate::default());
    let addr = serve(
        server_store.clone(),
        AcceptConfig::with_mode(InboundMode::Strict),
        gate.clone(),
    )
    .await;
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain, &key)),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let slow = hold(send, &gate).await;

    tokio::time::pause();
    let paused = tokio::time::Instant::now();
    let left = short_ca
        .issuer_not_after()
        .duration_since(SystemTime::now())
        .unwrap();
    let error = slow.await.unwrap().unwrap_err();
    let elapsed = paused.elapsed();
    task.await.unwrap();
    assert!(
        elapsed.abs_diff(left) < Duration::from_secs(1),
        "closed after {elapsed:?}, the client's issuer expired after {left:?}: {error}"
    );
}

/// Connects to a strict server, which trusts `bundle` beside its own
/// anchor, as a client presenting `chain` and `key`, and checks that three
/// requests are served on that one connection and that the server does not
/// retire it for its certificate's expiry.
async fn keeps_its_connection(chain: &str, key: &str, bundle: &str) {
    let server_ca = ca();
    let issued = server_ca.issue(&id(API), HOUR).unwrap();
    let server_creds = mesh_tls::Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        format!("{}{bundle}", server_ca.bundle_pem()).as_bytes(),
    )
    .unwrap();
    let server_store =
        CredentialStore::with_credentials(mesh_tls::StoreConfig::default(), server_creds).unwrap();
    let addr = serve(
        server_store.clone(),
        AcceptConfig::with_mode(InboundMode::Strict),
        Arc::default(),
    )
    .await;
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((chain, key)),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    for _ in 0..3 {
        assert_eq!(request(&mut send, "/").await.unwrap(), StatusCode::OK);
    }
    assert!(!task.is_finished());
    assert!(
        !retired(&server_store, "expiry"),
        "{}",
        encode(&server_store)
    );
}

#[tokio::test]
async fn a_client_sending_its_expired_anchor_along_keeps_its_connection() {
    let (chain, key, bundle) = chain_sending_an_expired_anchor(WEB);
    keeps_its_connection(&chain, &key, &bundle).await;
}

/// A client whose chain sends its issuer's expired old certificate before
/// the current one: webpki verifies it through the current one, and the
/// connection lives until that expires, not closed at once as if the
/// expired copy were on the path.
#[tokio::test]
async fn a_client_sending_an_expired_copy_of_its_issuer_keeps_its_connection() {
    let (chain, key, bundle) = reissued::chain_sending_an_expired_copy_of_its_issuer(WEB);
    keeps_its_connection(&chain, &key, &bundle).await;
}
