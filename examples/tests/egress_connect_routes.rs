//! Egress `CONNECT`s through a real sidecar, routed by the `TLSRoute`s
//! and `TCPRoute`s of Linkerd's `EgressNetwork`: a ClientHello by its
//! SNI, anything else by the port's `TCPRoute`, the rest by the network's
//! default route, each tunnel counted in `outbound_tls_route_*` or
//! `outbound_tcp_route_*`. 127.0.0.1 is outside the default cluster
//! networks, so a network without `networks` captures a local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use mesh_examples::sidecar::Running;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::egress::{
    self, TO_NETWORK, assert_lines, network, route_labels, tcp_route, tls_route,
};
use support::upstreams::reloaded;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A TLS server for `httpbin.test` and `api.wild.test` that answers
/// `ping` with `pong`, and closes.
struct TlsUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// A client that trusts the server's certificate alone.
    client: Arc<rustls::ClientConfig>,
}

async fn tls_upstream() -> TlsUpstream {
    let names = vec!["httpbin.test".to_owned(), "api.wild.test".to_owned()];
    let issued = rcgen::generate_simple_self_signed(names).unwrap();
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                    let _ = tls.write_all(b"pong").await;
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsUpstream {
        addr,
        accepted,
        client: Arc::new(client),
    }
}

/// A plaintext sidecar in `emojivoto` on two runtimes, with `policy` as
/// its policy file (read again every 50 ms) and `extra` appended to its
/// configuration.
fn egress_sidecar(dir: &Path, policy: &str, extra: &str) -> (Running, PathBuf) {
    egress::sidecar(
        dir,
        &format!(
            "outbound:\n  listen: 127.0.0.1:0\n{extra}\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n  detect_timeout: 200ms\n"
        ),
        policy,
    )
}

/// A tunnel to `authority` through the sidecar's outbound listener,
/// answered `200`.
async fn tunnel(outbound: SocketAddr, authority: &str) -> TcpStream {
    let (tcp, head) = connect_head(outbound, authority).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{authority}: {head}");
    tcp
}

/// A TLS handshake for `sni` over `tcp`, then `ping`: what came back
/// until the close.
async fn tls_ping(
    tcp: TcpStream,
    sni: &str,
    client: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Vec<u8>> {
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let connect = tokio_rustls::TlsConnector::from(client.clone()).connect(name, tcp);
    let mut tls = tokio::time::timeout(WAIT_BOUND, connect)
        .await
        .expect("the handshake hung")?;
    tls.write_all(b"ping").await?;
    let mut got = Vec::new();
    tokio::time::timeout(WAIT_BOUND, tls.read_to_end(&mut got))
        .await
        .expect("the tunnel never closed")?;
    Ok(got)
}

/// The scrape, once every one of `lines` is in it; fails the test if not.
async fn scraped(admin: SocketAddr, lines: &[String]) -> String {
    let metrics = scrape_until(admin, |m| lines.iter().all(|l| m.lines().any(|x| x == l))).await;
    assert_lines(&metrics, lines);
    metrics
}

#[tokio::test]
async fn deny_lets_a_tls_routes_sni_through_and_closes_another_as_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    let port = upstream.addr.port();
    let policy = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tls_route("httpbin", "[httpbin.test]", port, TO_NETWORK)
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, "");
    let authority = format!("127.0.0.1:{port}");

    let tcp = tunnel(running.outbound, &authority).await;
    let got = tls_ping(tcp, "httpbin.test", &upstream.client)
        .await
        .unwrap();
    assert_eq!(got, b"pong");

    // Another name: the 200 has gone, the tunnel is closed.
    let tcp = tunnel(running.outbound, &authority).await;
    assert!(
        tls_ping(tcp, "github.test", &upstream.client)
            .await
            .is_err()
    );
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);

    let allowed = route_labels("net", port, "TLSRoute", "httpbin");
    let denied = route_labels("net", port, "default", "tls-egress-deny");
    scraped(
        running.admin,
        &[
            format!("outbound_tls_route_open_total{{{allowed},hostname=\"httpbin.test\"}} 1"),
            format!(
                "outbound_tls_route_close_total{{{allowed},hostname=\"httpbin.test\",error=\"\"}} 1"
            ),
            format!("outbound_tls_route_open_total{{{denied},hostname=\"github.test\"}} 1"),
            format!(
                "outbound_tls_route_close_total{{{denied},hostname=\"github.test\",\
                 error=\"forbidden\"}} 1"
            ),
        ],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn a_wildcard_hostname_takes_the_names_under_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    let port = upstream.addr.port();
    let policy = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tls_route("wild", "['*.wild.test']", port, TO_NETWORK)
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, "");
    let authority = format!("127.0.0.1:{port}");
    let tcp = tunnel(running.outbound, &authority).await;
    let got = tls_ping(tcp, "api.wild.test", &upstream.client)
        .await
        .unwrap();
    assert_eq!(got, b"pong");
    // The wildcard takes no name that is not under it.
    let tcp = tunnel(running.outbound, &authority).await;
    assert!(
        tls_ping(tcp, "httpbin.test", &upstream.client)
            .await
            .is_err()
    );
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
    let wild = route_labels("net", port, "TLSRoute", "wild");
    scraped(
        running.admin,
        &[format!(
            "outbound_tls_route_open_total{{{wild},hostname=\"api.wild.test\"}} 1"
        )],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn a_tcp_route_opens_its_port_of_a_deny_network_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, accepted) = tcp_echo().await;
    let (other, other_accepted) = tcp_echo().await;
    let policy = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tcp_route("db", echo.port(), TO_NETWORK)
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, "");
    let mut tcp = tunnel(running.outbound, &format!("127.0.0.1:{}", echo.port())).await;
    tcp.write_all(b"ping").await.unwrap();
    let mut got = [0; 4];
    tcp.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    drop(tcp);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A port without routes of a Deny network: refused before any 200.
    let (_conn, head) =
        connect_head(running.outbound, &format!("127.0.0.1:{}", other.port())).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(head.contains("mesh-error: egress denied\r\n"), "{head}");
    assert_eq!(other_accepted.load(Ordering::SeqCst), 0);

    let db = route_labels("net", echo.port(), "TCPRoute", "db");
    let target = format!("target_ip=\"127.0.0.1\",target_port=\"{}\"", echo.port());
    scraped(
        running.admin,
        &[
            format!("outbound_tcp_route_open_total{{{db},{target}}} 1"),
            format!("outbound_tcp_route_close_total{{{db},{target},error=\"\"}} 1"),
        ],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn a_tls_route_to_a_service_goes_to_the_services_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    // Nothing listens at the address the CONNECT names: the route's
    // backend is the service.
    let port = refused_port();
    let policy = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tls_route(
            "to-svc",
            "[httpbin.test]",
            port,
            "[{name: httpbin, port: 443}]"
        )
    );
    let services = format!(
        "  services:\n    - name: httpbin\n      endpoints: [{}]\n",
        upstream.addr
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, &services);
    let tcp = tunnel(running.outbound, &format!("127.0.0.1:{port}")).await;
    let got = tls_ping(tcp, "httpbin.test", &upstream.client)
        .await
        .unwrap();
    assert_eq!(got, b"pong");
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
    stop(running).await;
}

#[tokio::test]
async fn allow_without_routes_counts_tls_by_its_sni_and_tcp_by_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    let (echo, _) = tcp_echo().await;
    let (running, _) = egress_sidecar(dir.path(), &network("net", "Allow", ""), "");
    let tcp = tunnel(
        running.outbound,
        &format!("127.0.0.1:{}", upstream.addr.port()),
    )
    .await;
    let got = tls_ping(tcp, "httpbin.test", &upstream.client)
        .await
        .unwrap();
    assert_eq!(got, b"pong");
    let mut tcp = tunnel(running.outbound, &format!("127.0.0.1:{}", echo.port())).await;
    tcp.write_all(b"ping").await.unwrap();
    let mut got = [0; 4];
    tcp.read_exact(&mut got).await.unwrap();
    drop(tcp);

    let tls = route_labels("net", upstream.addr.port(), "default", "tls-egress-allow");
    let tcp = route_labels("net", echo.port(), "default", "tcp-egress-allow");
    let target = format!("target_ip=\"127.0.0.1\",target_port=\"{}\"", echo.port());
    scraped(
        running.admin,
        &[
            format!("outbound_tls_route_open_total{{{tls},hostname=\"httpbin.test\"}} 1"),
            format!("outbound_tcp_route_open_total{{{tcp},{target}}} 1"),
            format!("outbound_tcp_route_close_total{{{tcp},{target},error=\"\"}} 1"),
        ],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_takes_the_tcp_route_after_the_detect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let app = greeting_app().await;
    let port = app.addr.port();
    // A TLSRoute on the port too: a silent client is no TLS client.
    let policy = format!(
        "{}---\n{}---\n{}",
        network("net", "Deny", ""),
        tls_route("tls", "[httpbin.test]", port, TO_NETWORK),
        tcp_route("smtp", port, TO_NETWORK)
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, "");
    let mut tcp = tunnel(running.outbound, &format!("127.0.0.1:{port}")).await;
    read_greeting(&mut tcp).await;
    let smtp = route_labels("net", port, "TCPRoute", "smtp");
    scraped(
        running.admin,
        &[format!(
            "outbound_tcp_route_open_total{{{smtp},target_ip=\"127.0.0.1\",\
             target_port=\"{port}\"}} 1"
        )],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn a_reload_that_adds_a_tls_route_opens_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    let port = upstream.addr.port();
    let (running, file) = egress_sidecar(dir.path(), &network("net", "Deny", ""), "");
    let authority = format!("127.0.0.1:{port}");
    let (_conn, head) = connect_head(running.outbound, &authority).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");

    replace_file(
        &file,
        format!(
            "{}---\n{}",
            network("net", "Deny", ""),
            tls_route("httpbin", "[httpbin.test]", port, TO_NETWORK)
        ),
    );
    reloaded(running.admin, "ok", 1).await;
    let tcp = tunnel(running.outbound, &authority).await;
    let got = tls_ping(tcp, "httpbin.test", &upstream.client)
        .await
        .unwrap();
    assert_eq!(got, b"pong");
    stop(running).await;
}

#[tokio::test]
async fn a_route_that_cannot_send_a_tunnel_anywhere_closes_it_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tls_upstream().await;
    let (echo, accepted) = tcp_echo().await;
    let (tls_port, tcp_port) = (upstream.addr.port(), echo.port());
    let policy = format!(
        "{}---\n{}---\n{}",
        network("net", "Deny", ""),
        // A backend that is no outbound service.
        tls_route(
            "ghost",
            "[httpbin.test]",
            tls_port,
            "[{name: ghost, port: 443}]"
        ),
        // Every backend of weight 0.
        tcp_route(
            "zero",
            tcp_port,
            "[{kind: EgressNetwork, group: policy.linkerd.io, name: net, weight: 0}]"
        )
    );
    let (running, _) = egress_sidecar(dir.path(), &policy, "");
    let tcp = tunnel(running.outbound, &format!("127.0.0.1:{tls_port}")).await;
    assert!(
        tls_ping(tcp, "httpbin.test", &upstream.client)
            .await
            .is_err()
    );
    let mut tcp = tunnel(running.outbound, &format!("127.0.0.1:{tcp_port}")).await;
    tcp.write_all(b"ping").await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    let ghost = route_labels("net", tls_port, "TLSRoute", "ghost");
    let zero = route_labels("net", tcp_port, "TCPRoute", "zero");
    scraped(
        running.admin,
        &[
            format!(
                "outbound_tls_route_close_total{{{ghost},hostname=\"httpbin.test\",\
                 error=\"invalid_backend\"}} 1"
            ),
            format!(
                "outbound_tcp_route_close_total{{{zero},target_ip=\"127.0.0.1\",\
                 target_port=\"{tcp_port}\",error=\"forbidden\"}} 1"
            ),
        ],
    )
    .await;
    stop(running).await;
}
