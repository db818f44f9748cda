//! What a `Forward` behind a server sends upstream, over real sockets:
//! the headers a client cannot make the upstream lose.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An upstream that answers each request with the headers it was sent,
/// one `name: value` line each.
async fn header_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let lines: String = req
                    .headers()
                    .iter()
                    .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap()))
                    .collect();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(lines))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

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
