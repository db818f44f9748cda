//! A TCP port's connections to a peer sidecar whose port detects its
//! protocol (`protocol: detect`, the default): the client sidecar offers
//! no ALPN, so the peer reads the decrypted first bytes to tell HTTP from
//! anything else, as it does for plaintext. A protocol whose server
//! speaks first sends no such bytes: the peer forwards it as opaque once
//! its detection times out, as Linkerd's proxy does, and an `opaque`
//! port spares it that delay.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{client_side, exchange, mtls_pair, round_trip, series};
use crate::support::*;

/// The sidecar in front of `app` over strict mTLS with the certificate in
/// `certs`, its port's `protocol` left to its default: `detect`, as the
/// application's port is an ephemeral one, none of the ports that default
/// to `opaque`. `server` is appended to its `server` section.
fn detect_side(certs: &std::path::Path, app: SocketAddr, server: &str) -> String {
    format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n{server}",
        certs.display()
    )
}

/// A PostgreSQL `StartupMessage` (protocol 3.0), which the client sends
/// first, followed by `n` bytes of the test pattern.
fn startup_then(n: usize) -> Vec<u8> {
    let params = b"user\0web\0database\0emojivoto\0\0";
    let len = u32::try_from(8 + params.len()).unwrap();
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.extend_from_slice(&196_608u32.to_be_bytes());
    bytes.extend_from_slice(params);
    bytes.extend(pattern(n));
    bytes
}

#[tokio::test]
async fn a_client_first_protocol_crosses_to_a_detect_port_unchanged() {
    let (app, accepted) = tcp_echo().await;
    let (_certs, db, web) = mtls_pair(|certs| detect_side(certs, app, ""));

    let sent = startup_then(256 * 1024);
    let back = round_trip(web.outbound_ports[0], &sent).await;
    assert!(back == sent, "{} bytes came back, changed", back.len());
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

    // The peer served it as opaque bytes from `web`, not as HTTP.
    let inbound = scrape(db.admin).await;
    let client_id = format!("client_id=\"{}\"", identity("web"));
    let labels = ["direction=\"inbound\"", "tls=\"true\"", &client_id];
    assert_eq!(series(&inbound, "tcp_open_total", &labels), 1, "{inbound}");
    assert_eq!(
        series(&inbound, "request_total", &["direction=\"inbound\""]),
        0,
        "{inbound}"
    );

    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn http_sent_through_a_tcp_port_reaches_a_detect_port_as_http() {
    let (app, _) = backend().await;
    let (_certs, db, web) = mtls_pair(|certs| detect_side(certs, app, ""));

    // Two requests on one connection: the peer serves the connection as
    // HTTP/1.1, request after request, and tells the application who
    // called.
    let tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let web_id = identity("web");
    for path in ["/headers", "/echo"] {
        let req = Request::post(path)
            .header("host", "db")
            .body(full("body"))
            .unwrap();
        let res = h1.send_request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = body_bytes(res).await;
        match path {
            "/headers" => {
                let headers = String::from_utf8(body.to_vec()).unwrap();
                let caller = format!("mesh-client-id: {web_id}\n");
                assert!(headers.contains(&caller), "{headers}");
            }
            _ => assert_eq!(body, "body"),
        }
    }
    drop(h1);
    // HTTP/2 with prior knowledge is told by its preface.
    let tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://db/headers").body(full("")).unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(
        headers.contains(&format!("mesh-client-id: {web_id}\n")),
        "{headers}"
    );
    drop(h2);

    let inbound = scrape(db.admin).await;
    let client_id = format!("client_id=\"{web_id}\"");
    let labels = ["direction=\"inbound\"", "tls=\"true\"", &client_id];
    assert_eq!(series(&inbound, "request_total", &labels), 3, "{inbound}");
    assert_eq!(series(&inbound, "tcp_open_total", &labels), 2, "{inbound}");
    // The client sidecar carried bytes, not requests.
    let outbound = scrape(web.admin).await;
    let labels = ["direction=\"outbound\""];
    assert_eq!(series(&outbound, "request_total", &labels), 0, "{outbound}");
    let labels = ["direction=\"outbound\"", "peer=\"dst\""];
    assert_eq!(
        series(&outbound, "tcp_open_total", &labels),
        2,
        "{outbound}"
    );

    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn a_connect_tunnel_reaches_a_detect_port_as_opaque_bytes() {
    let (app, accepted) = tcp_echo().await;
    let (_certs, db, web) = mtls_pair(|certs| detect_side(certs, app, ""));

    let (mut tunnel, head) = connect_head(web.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let sent = startup_then(64 * 1024);
    let back = exchange(&mut tunnel, &sent).await;
    assert!(back == sent, "{} bytes came back, changed", back.len());
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

    stop(web).await;
    stop(db).await;
}

/// An application whose server speaks first, as SMTP's does: it greets
/// each connection it accepts, and counts them.
async fn greeting_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tcp.write_all(b"220 db ready\r\n").await;
                let mut sink = Vec::new();
                let _ = tcp.read_to_end(&mut sink).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_server_first_protocol_to_a_detect_port_greets_after_the_detect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let issue = issuer(dir.path());
    let (app, accepted) = greeting_app().await;
    let db_certs = issue("db");
    let db = sidecar(&detect_side(&db_certs, app, "  detect_timeout: 200ms\n"));
    let db_id = identity("db");
    let web = sidecar(&client_side(
        Some(&issue("web")),
        &[db.inbound[0]],
        Some(&db_id),
    ));

    // The client waits for the greeting; the peer waits for the client's
    // first bytes and, at its detect timeout, forwards the connection to
    // its application as opaque bytes, as Linkerd's proxy does: the
    // greeting comes late rather than never.
    let mut tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let mut greeting = [0; 14];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut greeting))
        .await
        .expect("the greeting comes after the peer's detect timeout")
        .unwrap();
    assert_eq!(&greeting, b"220 db ready\r\n");
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    // Carried as the mutual-TLS client's opaque connection.
    let inbound = scrape(db.admin).await;
    let client_id = format!("client_id=\"{}\"", identity("web"));
    let labels = ["direction=\"inbound\"", "tls=\"true\"", &client_id];
    assert_eq!(series(&inbound, "tcp_open_total", &labels), 1, "{inbound}");
    assert_eq!(
        series(&inbound, "request_total", &["direction=\"inbound\""]),
        0,
        "{inbound}"
    );
    drop(tcp);
    stop(web).await;
    stop(db).await;

    // Served `opaque`, the same port greets without waiting.
    let db = sidecar(
        &detect_side(&db_certs, app, "")
            .replace("  tls: strict\n", "  tls: strict\n  protocol: opaque\n"),
    );
    let web = sidecar(&client_side(
        Some(&issue("web")),
        &[db.inbound[0]],
        Some(&db_id),
    ));
    let mut tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let mut greeting = [0; 14];
    tcp.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 db ready\r\n");
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    drop(tcp);
    stop(web).await;
    stop(db).await;
}
