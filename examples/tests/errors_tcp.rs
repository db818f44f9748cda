//! `inbound_tcp_errors_total` and `outbound_tcp_errors_total`, as
//! linkerd2-proxy writes them: a connection the sidecar closed for an
//! error of its own is counted once, with the error first and the target
//! after it inbound, the target first and the error after it outbound. A
//! connection served to its end is not counted, and while none failed the
//! families are not written at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use mesh_examples::sidecar::Running;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use support::*;

/// The `target_*` labels of `addr`, as Linkerd writes them.
fn target(addr: SocketAddr) -> String {
    format!(
        "target_addr=\"{addr}\",target_ip=\"{}\",target_port=\"{}\"",
        addr.ip(),
        addr.port()
    )
}

/// A plaintext sidecar whose inbound port carries opaque TCP to `app`.
fn opaque_inbound(app: SocketAddr) -> Running {
    sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ))
}

#[tokio::test]
async fn an_application_that_refuses_the_connection_is_an_inbound_io_error() {
    let (echo, _) = tcp_echo().await;
    let sidecar = opaque_inbound(echo);
    // A connection served to its end: nothing to count.
    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    tcp.read_exact(&mut echoed).await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let metrics = scrape(sidecar.admin).await;
    assert!(!metrics.contains("_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;

    let app = refused_addr().await;
    let sidecar = opaque_inbound(app);
    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    // The application's port, as the HTTP families' `target_port`; the
    // address the connection came to.
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"i/o\",{}}} 1\n",
        target(SocketAddr::new(sidecar.inbound[0].ip(), app.port()))
    );
    let metrics = until_counted(sidecar.admin, &expected).await;
    assert!(
        metrics.contains("# TYPE inbound_tcp_errors_total counter\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("outbound_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_silent_client_of_a_strict_port_is_a_tls_detection_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("emoji");
    let app = greeting_app().await;
    let sidecar = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {}\n  protocol: opaque\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  detect_timeout: 200ms\n",
        certs.display(),
        app.addr,
    ));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"tls detection timeout\",{}}} 1\n",
        target(SocketAddr::new(sidecar.inbound[0].ip(), app.addr.port()))
    );
    until_counted(sidecar.admin, &expected).await;

    // A plaintext client that speaks is the strict port's refusal, its
    // policy's: counted in `tls_handshake_failures_total`, not here.
    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    tcp.write_all(b"HELO web\r\n").await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(
        series(&metrics, "inbound_tcp_errors_total", &[]),
        1,
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn an_endpoint_that_refuses_the_connection_is_an_outbound_io_error() {
    let endpoint = refused_addr().await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: 127.0.0.1:1\n  protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{endpoint}]\n\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ));

    let port = sidecar.outbound_ports[0];
    let mut tcp = TcpStream::connect(port).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    // The address the application connected to, then the error.
    let expected = format!(
        "outbound_tcp_errors_total{{{},error=\"i/o\"}} 1\n",
        target(port)
    );
    let metrics = until_counted(sidecar.admin, &expected).await;
    assert!(!metrics.contains("inbound_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}

/// Scrapes until `line` is in the metrics: the count is made as the
/// connection closes, and a scrape may come between.
async fn until_counted(admin: SocketAddr, line: &str) -> String {
    let mut last = String::new();
    let found = tokio::time::timeout(WAIT_BOUND, async {
        loop {
            last = scrape(admin).await;
            if last.contains(line) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(found.is_ok(), "no {line} in {last}");
    last
}
