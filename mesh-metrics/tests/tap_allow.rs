//! `/tap` refuses every method but `GET` with a `405` that says, in
//! `Allow`, what it answers (RFC 9110 §15.5.6), over a real admin server.

use std::{convert::Infallible, net::SocketAddr};

use http::Request;
use mesh_core::{
    admin::{Admin, Readiness},
    body::BoxBody,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::tap::Tap;
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::service_fn;

/// An admin server whose extension serves `tap` at `/tap`.
async fn admin(tap: &Tap) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let (trigger, signal) = shutdown::channel();
    let extension = {
        let tap = tap.clone();
        service_fn(move |req: Request<BoxBody>| {
            let res = tap.serve(&req);
            async move { Ok::<_, Infallible>(res) }
        })
    };
    let admin = Admin::new(Registry::default(), Readiness::new()).with_extension(extension);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, signal));
    (addr, trigger)
}

/// Sends `method /tap` on a connection of its own and returns the answer.
async fn send(addr: SocketAddr, method: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} /tap HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_method_tap_does_not_answer_gets_405_with_allow_get() {
    let tap = Tap::new();
    let (addr, _trigger) = admin(&tap).await;
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let answer = send(addr, method).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some("HTTP/1.1 405 Method Not Allowed"),
            "{method}: {answer}"
        );
        let allow: Vec<&str> = lines
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("allow"))
            .map(|(_, value)| value.trim())
            .collect();
        assert_eq!(allow, ["GET"], "{method}: {answer}");
        if method != "HEAD" {
            assert_eq!(
                body,
                format!("{method} is not served at /tap: it answers GET\n")
            );
        }
    }
    // No tap was opened by any of them.
    assert_eq!(tap.open(), 0);
}
