//! Which host an HTTP/1.1 request through a `Forward` is for, over real
//! sockets: a request that names two cannot reach the upstream.
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

/// An upstream that answers each request with the `Host` headers it was
/// sent, one a line.
async fn host_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let lines: String = req
                    .headers()
                    .get_all("host")
                    .iter()
                    .map(|value| format!("host: {}\n", value.to_str().unwrap()))
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

/// A server forwarding to a [`host_echo`], and what shuts it down.
async fn proxy() -> (SocketAddr, shutdown::ShutdownTrigger) {
    let upstream = host_echo().await;
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));
    (addr, trigger)
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
async fn a_request_with_two_host_headers_is_refused_and_never_sent() {
    // The mesh routes and authorizes by the first `Host`; an application
    // behind it may read the last. RFC 9112 §3.2: a request with more
    // than one Host field line gets a 400.
    let (addr, trigger) = proxy().await;
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
}

#[tokio::test]
async fn one_host_header_among_other_repeated_headers_goes_through() {
    let (addr, trigger) = proxy().await;
    let answer = exchange(
        addr,
        "GET / HTTP/1.1\r\nhost: public.example\r\naccept: a\r\naccept: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(sent, "host: public.example\n", "{answer}");
    trigger.trigger();
}

#[tokio::test]
async fn an_absolute_form_target_names_the_one_host_whatever_the_headers_say() {
    // The target's authority replaces every `Host` (RFC 9112 §3.2.2):
    // there is one host, and the request goes on.
    let (addr, trigger) = proxy().await;
    let answer = exchange(
        addr,
        "GET http://public.example/ HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(sent, "host: public.example\n", "{answer}");
    trigger.trigger();
}
