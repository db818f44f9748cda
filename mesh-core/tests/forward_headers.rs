//! What a `Forward` behind a server sends upstream, over real sockets:
//! the headers a client cannot make the upstream lose, and the one host a
//! request may name.
#![allow(clippy::unwrap_used)]

use crate::support::header_echo;

use std::net::SocketAddr;

use header_echo::header_echo;
use hyper::body::Incoming;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A server forwarding to a [`header_echo`].
async fn proxy() -> (
    SocketAddr,
    shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
) {
    let upstream = header_echo().await;
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));
    (addr, trigger, server)
}

/// Sends `head` to `addr` and reads the answer until the server closes.
async fn exchange(addr: SocketAddr, head: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_connection_option_naming_host_does_not_remove_it() {
    let (addr, trigger, server) = proxy().await;
    // `Connection: host` lists an end-to-end header as if it were the
    // hop's. Removing it would send the endpoint's address as `Host`.
    let answer = exchange(
        addr,
        "GET /list HTTP/1.1\r\nhost: emoji.example\r\nconnection: close, host, x-hop\r\nx-hop: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(sent, "host: emoji.example\n", "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn credentials_for_the_proxy_do_not_reach_the_upstream() {
    let (addr, trigger, server) = proxy().await;
    // A client told to use the mesh as its HTTP proxy
    // (`HTTP_PROXY=http://user:pass@127.0.0.1:4140`) sends the proxy its
    // credentials; they are the hop's, not the application's.
    let answer = exchange(
        addr,
        "GET http://emoji.example/list HTTP/1.1\r\nhost: emoji.example\r\nproxy-authorization: Basic dXNlcjpwYXNz\r\nauthorization: Bearer app\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    assert!(!sent.contains("proxy-authorization"), "{sent}");
    assert!(sent.contains("authorization: Bearer app\n"), "{sent}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn hop_by_hop_headers_of_the_response_stay_with_the_upstream_hop() {
    // An upstream that answers with every kind of hop-by-hop header, and
    // closes its connection after the answer.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = upstream.accept().await {
            let mut head = Vec::new();
            let mut byte = [0; 1];
            while !head.ends_with(b"\r\n\r\n") {
                conn.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nconnection: close, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nproxy-authenticate: Basic\r\nproxy-connection: keep-alive\r\nupgrade: h2c\r\nx-end-to-end: kept\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        }
    });
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream_addr]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));

    let answer = exchange(
        addr,
        "GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    let answer = answer.to_ascii_lowercase();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("http/1.1 200"), "{answer}");
    for gone in [
        "x-hop:",
        "keep-alive:",
        "proxy-authenticate:",
        "proxy-connection:",
        "upgrade:",
    ] {
        assert!(!head.contains(gone), "{gone} reached the client: {head}");
    }
    assert!(head.contains("x-end-to-end: kept"), "{head}");
    // The body is framed for this hop: the upstream's chunks arrive as
    // the same two bytes.
    assert!(body.contains("ok"), "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

/// The `Host` lines the upstream was sent, from a [`header_echo`] answer.
fn hosts_sent(answer: &str) -> Vec<&str> {
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    sent.lines().filter(|l| l.starts_with("host: ")).collect()
}

#[tokio::test]
async fn a_request_with_two_host_headers_is_refused_and_never_sent() {
    // The mesh routes and authorizes by the first `Host`; an application
    // behind it may read the last. RFC 9112 §3.2: a request with more
    // than one Host field line gets a 400.
    let (addr, trigger, server) = proxy().await;
    let answer = exchange(
        addr,
        "GET /admin HTTP/1.1\r\nhost: public.example\r\nhost: admin.internal\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("mesh-error: multiple host headers"),
        "{answer}"
    );
    assert!(!answer.contains("host: admin.internal"), "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn one_host_header_among_other_repeated_headers_goes_through() {
    let (addr, trigger, server) = proxy().await;
    let answer = exchange(
        addr,
        "GET / HTTP/1.1\r\nhost: public.example\r\naccept: a\r\naccept: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(hosts_sent(&answer), ["host: public.example"], "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn an_absolute_form_target_names_the_one_host_whatever_the_headers_say() {
    // The target's authority replaces every `Host` (RFC 9112 §3.2.2):
    // there is one host, and the request goes on.
    let (addr, trigger, server) = proxy().await;
    let answer = exchange(
        addr,
        "GET http://public.example/ HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(hosts_sent(&answer), ["host: public.example"], "{answer}");
    trigger.trigger();
    server.await.unwrap();
}
