//! Opaque TCP through the outbound side: an application connects to an
//! `outbound.ports` listener of its sidecar, and its bytes reach a
//! service's endpoints, over mutual TLS to the peer sidecar when the
//! service has an identity. Real sockets on 127.0.0.1, real TLS, and
//! certificates from the development CA. The peers here serve their
//! port `opaque`; those in `detect` leave it to detection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod balance;
mod connect;
mod detect;
mod half_close;
use crate::support;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use mesh_examples::sidecar::Running;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The sidecar in front of `app`, serving it opaque over strict mTLS with
/// the certificate in `certs`.
fn server_side(certs: &std::path::Path, app: SocketAddr) -> String {
    format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: opaque\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n",
        certs.display()
    )
}

/// A client sidecar (identity in `certs`, or none) with service `db` at
/// `endpoints` (over mTLS expecting `server_identity`, if given) and a TCP
/// port for it.
fn client_side(
    certs: Option<&std::path::Path>,
    endpoints: &[SocketAddr],
    server_identity: Option<&str>,
) -> String {
    let identity = certs.map_or(String::new(), |dir| {
        format!("identity:\n  dir: {}\n", dir.display())
    });
    let server = server_identity.map_or(String::new(), |id| format!("      identity: {id}\n"));
    let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    format!(
        "{identity}\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{}]\n{server}\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n",
        endpoints.join(", ")
    )
}

/// Two sidecars on mutual TLS, with certificates from a development CA
/// in the returned directory: `db`, whose configuration `server` writes
/// from its certificates' directory, and `web`, with a TCP port to `db`
/// that expects `db`'s identity.
fn mtls_pair(
    server: impl FnOnce(&std::path::Path) -> String,
) -> (tempfile::TempDir, Running, Running) {
    let dir = tempfile::tempdir().unwrap();
    let (db, web) = {
        let issue = issuer(dir.path());
        let db = sidecar(&server(&issue("db")));
        let web = sidecar(&client_side(
            Some(&issue("web")),
            &[db.inbound[0]],
            Some(&identity("db")),
        ));
        (db, web)
    };
    (dir, db, web)
}

/// Sends `bytes` over a new connection to `addr`, then its end, and
/// returns everything read back until the other side's end.
async fn round_trip(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    exchange(&mut TcpStream::connect(addr).await.unwrap(), bytes).await
}

/// Sends `bytes` over `tcp`, then its end, while reading everything that
/// comes back until the other side's end.
async fn exchange(tcp: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = tcp.split();
    let write = async {
        w.write_all(bytes).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let ((), read) = tokio::join!(write, r.read_to_end(&mut back));
    read.unwrap();
    back
}

/// Sends `bytes` over a new connection to `addr` and returns what came
/// back before the connection ended, by a close or a reset (the sidecar
/// closing a connection with unread bytes resets it).
async fn refused_round_trip(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut back))
        .await
        .expect("the sidecar ends the connection");
    back
}

#[tokio::test]
async fn a_mebibyte_crosses_two_sidecars_over_mtls_and_both_count_the_peer() {
    let (app, _) = tcp_echo().await;
    let (_certs, db, web) = mtls_pair(|certs| server_side(certs, app));
    let db_id = identity("db");

    let sent = pattern(1024 * 1024);
    let back = round_trip(web.outbound_ports[0], &sent).await;
    assert_eq!(back.len(), sent.len());
    assert!(back == sent, "the bytes came back changed");

    let web_id = identity("web");
    let inbound = scrape(db.admin).await;
    let client_id = format!("client_id=\"{web_id}\"");
    let labels = ["direction=\"inbound\"", "tls=\"true\"", &client_id];
    assert_eq!(series(&inbound, "tcp_open_total", &labels), 1, "{inbound}");
    // The mebibyte and the TLS records around it, each way.
    assert!(series(&inbound, "tcp_read_bytes_total", &labels) > 1024 * 1024);
    assert!(series(&inbound, "tcp_write_bytes_total", &labels) > 1024 * 1024);
    let outbound = scrape(web.admin).await;
    let server_id = format!("server_id=\"{db_id}\"");
    let labels = ["direction=\"outbound\"", "tls=\"true\"", &server_id];
    assert_eq!(
        series(&outbound, "tcp_open_total", &labels),
        1,
        "{outbound}"
    );
    assert!(series(&outbound, "tcp_write_bytes_total", &labels) > 1024 * 1024);
    // Nothing left the client sidecar in plaintext.
    let plain = ["direction=\"outbound\"", "tls=\"disabled\""];
    assert_eq!(series(&outbound, "tcp_open_total", &plain), 0, "{outbound}");

    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn a_service_without_identity_is_reached_in_plaintext() {
    let (app, accepted) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[app], None));
    let sent = b"PING\r\n\x00\x01binary".to_vec();
    assert_eq!(round_trip(web.outbound_ports[0], &sent).await, sent);
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    let outbound = scrape(web.admin).await;
    let plain = ["direction=\"outbound\"", "tls=\"disabled\""];
    assert_eq!(series(&outbound, "tcp_open_total", &plain), 1, "{outbound}");
    stop(web).await;
}

#[tokio::test]
async fn a_server_sidecar_with_another_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let issue = issuer(dir.path());
    let (app, accepted) = tcp_echo().await;
    let db = sidecar(&server_side(&issue("db"), app));
    // The client expects `emoji`, and `db` answers: the handshake fails
    // closed, and the application's connection is closed.
    let emoji_id = identity("emoji");
    let web = sidecar(&client_side(
        Some(&issue("web")),
        &[db.inbound[0]],
        Some(&emoji_id),
    ));
    assert!(
        refused_round_trip(web.outbound_ports[0], b"secret")
            .await
            .is_empty()
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn an_endpoint_that_refuses_closes_the_applications_connection() {
    let web = sidecar(&client_side(None, &[refused_addr().await], None));
    let mut tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let mut buf = [0; 8];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the sidecar closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The sidecar still serves the next connection the same way.
    assert!(
        refused_round_trip(web.outbound_ports[0], b"again")
            .await
            .is_empty()
    );
    stop(web).await;
}

#[tokio::test]
async fn connections_are_balanced_over_the_services_endpoints() {
    let (a, to_a) = tcp_echo().await;
    let (b, to_b) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[a, b], None));
    for i in 0..20u8 {
        assert_eq!(round_trip(web.outbound_ports[0], &[i]).await, [i]);
    }
    let (to_a, to_b) = (to_a.load(Ordering::Relaxed), to_b.load(Ordering::Relaxed));
    assert_eq!(to_a + to_b, 20);
    assert!(to_a > 0 && to_b > 0, "a: {to_a}, b: {to_b}");
    stop(web).await;
}

#[tokio::test]
async fn an_open_connection_is_served_while_the_sidecar_drains() {
    let (app, _) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[app], None));
    let mut tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    let mut buf = [0; 4];
    tcp.write_all(b"ping").await.unwrap();
    tcp.read_exact(&mut buf).await.unwrap();
    web.shutdown();
    // The listener closes; the open connection still carries bytes.
    tcp.write_all(b"pong").await.unwrap();
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    drop(tcp);
    tokio::task::spawn_blocking(move || web.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connect_to_a_service_is_tunnelled_to_it_over_mtls() {
    let (app, accepted) = tcp_echo().await;
    let (_certs, db, web) = mtls_pair(|certs| server_side(certs, app));
    let db_id = identity("db");

    // The port is the client's idea of the service's; the endpoints say
    // where it is.
    let (mut tunnel, head) = connect_head(web.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let sent = pattern(256 * 1024);
    let back = exchange(&mut tunnel, &sent).await;
    assert!(back == sent, "{} bytes came back, changed", back.len());
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

    let outbound = scrape(web.admin).await;
    let server_id = format!("server_id=\"{db_id}\"");
    let labels = ["direction=\"outbound\"", "tls=\"true\"", &server_id];
    assert_eq!(
        series(&outbound, "tcp_open_total", &labels),
        1,
        "{outbound}"
    );
    let inbound = scrape(db.admin).await;
    let client_id = format!("client_id=\"{}\"", identity("web"));
    let labels = ["direction=\"inbound\"", "tls=\"true\"", &client_id];
    assert_eq!(series(&inbound, "tcp_open_total", &labels), 1, "{inbound}");

    // An authority that names no service gets the usual answer.
    let (_conn, head) = connect_head(web.outbound, "elsewhere:443").await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert!(head.contains("mesh-error: no route\r\n"), "{head}");
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn an_open_connect_tunnel_holds_the_sidecar_until_it_closes() {
    let (app, _) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[app], None));
    let outbound = web.outbound;
    let (mut tunnel, head) = connect_head(outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut buf = [0; 4];
    tunnel.write_all(b"ping").await.unwrap();
    tunnel.read_exact(&mut buf).await.unwrap();
    web.shutdown();
    // Every runtime's outbound listener closes at once...
    while TcpStream::connect(outbound).await.is_ok() {
        tokio::task::yield_now().await;
    }
    let stopped = tokio::task::spawn_blocking(move || web.join());
    // ... and the tunnel still carries bytes, within the grace period
    // (30 s), holding its runtime.
    tunnel.write_all(b"pong").await.unwrap();
    tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    assert!(
        !stopped.is_finished(),
        "the sidecar stopped with a tunnel open"
    );
    drop(tunnel);
    stopped.await.unwrap();
}

#[tokio::test]
async fn an_http2_connect_is_tunnelled_too() {
    let (app, accepted) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[app], None));
    let req = http::Request::connect("db:5432")
        .version(http::Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let mut res = h2_via(web.outbound, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut tunnel = hyper_util::rt::TokioIo::new(upgraded);
    tunnel.write_all(b"over a stream").await.unwrap();
    let mut back = [0; 13];
    tunnel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"over a stream");
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    drop(tunnel);
    stop(web).await;
}

#[tokio::test]
async fn a_connect_to_an_inbound_listener_is_answered_501() {
    let (app, accepted) = tcp_echo().await;
    let yaml = format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    );
    let emoji = sidecar(&yaml);
    let (_conn, head) = connect_head(emoji.inbound[0], "emoji:8080").await;
    assert!(head.starts_with("HTTP/1.1 501 "), "{head}");
    assert!(
        head.contains("mesh-error: connect not supported\r\n"),
        "{head}"
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
    stop(emoji).await;
}
