//! The acceptor's line for a refused handshake names the client: the
//! acceptor is handed the stream alone, and the server logs it in the
//! connection's span, `conn{peer=<addr> port=<port>}`, as it does every
//! line said while the connection is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::InboundMode;
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

#[tokio::test]
async fn a_refused_handshakes_line_names_the_client() {
    let (logs, _guard) = Logs::capture();
    let server = serve(store(&ca(), WEB), InboundMode::Strict).await;
    // Plaintext, on a port that takes mutual TLS only.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(tcp))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/")
        .body(http_body_util::Empty::new())
        .unwrap();
    send.send_request(req).await.expect_err("refused");
    let _ = conn.await;

    let refused = logs.find("inbound tls refused");
    let [line] = refused.as_slice() else {
        panic!("one line expected: {refused:?}");
    };
    let span = format!("conn{{peer={client} port={}}}: ", server.addr.port());
    assert!(line.starts_with(&span), "{line}");
    assert!(line.contains("reason=\"plaintext_refused\""), "{line}");
    server.stop().await;
}
