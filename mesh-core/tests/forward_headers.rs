//! What a `Forward` behind a server sends upstream, over real sockets:
//! the headers a client cannot make the upstream lose.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, header};
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

/// An upstream that answers each request with the `Host` it was sent.
async fn host_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let host = req
                    .headers()
                    .get_all(header::HOST)
                    .iter()
                    .map(|h| h.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join(" | ");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(host))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
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
    let upstream = host_echo().await;
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));

    // `Connection: host` lists an end-to-end header as if it were the
    // hop's. Removing it would send the endpoint's address as `Host`.
    let answer = exchange(
        addr,
        "GET /list HTTP/1.1\r\nhost: emoji.example\r\nconnection: close, host, x-hop\r\nx-hop: 1\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nemoji.example"), "{answer}");

    trigger.trigger();
    server.await.unwrap();
}
