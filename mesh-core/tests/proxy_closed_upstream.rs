//! What a caller hears when its upstream takes the connection and closes
//! it without a response, over real sockets: the same `502` (gRPC
//! `UNAVAILABLE`) and kind as when the upstream cannot be reached, but a
//! `mesh-error` that says the connection was made and then closed, not
//! that it could not be made.
#![allow(clippy::unwrap_used)]

use crate::support::{proxy, refused::refused_addr};

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ProxyErrorKind,
    client::{Client, ClientConfig},
    error::UPSTREAM_CLOSED,
    proxy::Forward,
};
use proxy::proxy;
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;

/// How an upstream closes each connection it takes.
#[derive(Clone, Copy, Debug)]
enum Close {
    /// At once, without reading anything.
    AtOnce,
    /// Once it has read the request head.
    AfterTheHead,
}

/// An upstream that takes every connection and closes it, as `close`
/// says, answering nothing.
async fn closing(close: Close) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                if let Close::AfterTheHead = close {
                    let mut head = Vec::new();
                    let mut buf = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = conn.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                }
                drop(conn);
            });
        }
    });
    addr
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/list")
        .header("host", "emoji")
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn a_connection_closed_before_a_response_is_not_a_connect_error() {
    for close in [Close::AfterTheHead, Close::AtOnce] {
        let upstream = closing(close).await;
        let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
        let forward = Forward::new(client, [upstream]).unwrap();
        let res = forward.oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{close:?}");
        assert_eq!(res.headers()["mesh-error"], UPSTREAM_CLOSED, "{close:?}");
        // The same kind, and metric label, as an upstream that cannot be
        // reached: see `ProxyErrorKind::UpstreamUnreachable`.
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::UpstreamUnreachable),
            "{close:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_connect_is_still_a_connect_error() {
    let upstream = refused_addr();
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let res = forward.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
}

#[tokio::test]
async fn http1_and_grpc_callers_read_that_the_upstream_closed() {
    let upstream = closing(Close::AfterTheHead).await;
    let (addr, trigger, server) = proxy(upstream).await;

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let res = send.send_request(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], UPSTREAM_CLOSED);
    drop(send);
    conn.await.unwrap().unwrap();

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::post("http://emoji/pkg.Svc/Method")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], UPSTREAM_CLOSED);
    drop(send);
    conn.await.unwrap().unwrap();

    trigger.trigger();
    server.await.unwrap();
}

/// An upstream over HTTP/2 (prior knowledge) that closes the connection
/// after the client's preface: the request's stream never gets an answer.
#[tokio::test]
async fn an_http2_connection_closed_before_a_response_is_not_a_connect_error() {
    let upstream = closing(Close::AtOnce).await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let req = Request::get("http://emoji/list")
        .version(Version::HTTP_2)
        .body(Empty::new())
        .unwrap();
    let res = forward.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], UPSTREAM_CLOSED);
}

/// A connect that fails with a reset (a TLS handshake the peer cut short
/// fails so) is a connect error: the connection was never made.
#[tokio::test]
async fn a_connect_the_peer_reset_is_still_a_connect_error() {
    let reset = tower::service_fn(|_: http::Uri| {
        std::future::ready(Err::<TokioIo<TcpStream>, _>(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
    });
    let client = Client::<Empty<Bytes>, _>::with_connector(&ClientConfig::default(), reset);
    let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
    let forward = Forward::new(client, [upstream]).unwrap();
    let res = forward.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
}
