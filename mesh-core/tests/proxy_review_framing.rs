//! How a `Forward` behind a server frames what it passes on when the
//! upstream's HTTP/1.1 framing is ambiguous or uses codings the proxy
//! does not decode, over real sockets with a real HTTP client.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{EndpointState, FailureAccrual, Forward},
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;

/// An HTTP/1.1 upstream that reads each request head and answers with
/// `answer`, byte for byte, then closes the connection.
async fn raw_upstream(answer: &[u8]) -> SocketAddr {
    let answer = Bytes::copy_from_slice(answer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = conn.write_all(&answer).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

/// A server forwarding to `upstream`, and what shuts it down.
async fn proxy(upstream: SocketAddr) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));
    (addr, trigger)
}

/// A GET through the proxy at `addr` with hyper's HTTP/1.1 client: the
/// status, the `content-length` header if any, and the whole body.
async fn get(addr: SocketAddr) -> (StatusCode, Option<String>, Result<Bytes, String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "web")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status();
    let length = res
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_string());
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string());
    (status, length, body)
}

#[tokio::test]
async fn a_response_framed_by_both_transfer_encoding_and_content_length_arrives_whole() {
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3), as the
    // proxy's own client reads it: twenty bytes in one chunk. Passed on
    // with the stale `content-length: 5`, the caller read five of them
    // and took the response for complete. Either order of the two.
    let heads: [&[u8]; 2] = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
    ];
    for head in heads {
        let upstream =
            raw_upstream(&[head, b"14\r\naaaaabbbbbcccccddddd\r\n0\r\n\r\n"].concat()).await;
        let (addr, trigger) = proxy(upstream).await;
        let (status, length, body) = get(addr).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(length.as_deref(), Some("5"), "the stale length was sent on");
        assert_eq!(body.unwrap(), "aaaaabbbbbcccccddddd");
        trigger.trigger();
    }
}

/// An upstream that answers each request with its body, as it read it,
/// and the `transfer-encoding` it was sent, if any, in `x-te`.
async fn body_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let te = req
                    .headers()
                    .get("transfer-encoding")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let res = http::Response::builder()
                    .header("x-te", te)
                    .body(http_body_util::Full::new(body))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(res)
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
async fn exchange(addr: SocketAddr, head: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_body_with_a_transfer_coding_the_proxy_does_not_decode_is_refused() {
    // hyper's server takes `Transfer-Encoding: gzip, chunked` (chunked is
    // last) and undoes only the chunks. Sent on without the header, the
    // gzip bytes reached the application as if they were the body itself.
    // RFC 9112 §6.1: a server answers a coding it does not understand 501.
    let (addr, trigger) = proxy(body_echo().await).await;
    let answer = exchange(
        addr,
        b"POST /orders HTTP/1.1\r\nhost: web\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("mesh-error: transfer coding not supported"),
        "{answer}"
    );
    trigger.trigger();
}

#[tokio::test]
async fn a_chunked_request_body_goes_through() {
    let (addr, trigger) = proxy(body_echo().await).await;
    let answer = exchange(
        addr,
        b"POST /orders HTTP/1.1\r\nhost: web\r\ntransfer-encoding: Chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    trigger.trigger();
}

#[tokio::test]
async fn a_response_body_with_a_transfer_coding_the_proxy_does_not_decode_is_not_passed_on() {
    // The same coding from an upstream: passed on without its
    // `Transfer-Encoding`, the caller took gzip bytes for the body.
    let upstream = raw_upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
    )
    .await;
    let (addr, trigger) = proxy(upstream).await;
    let answer = exchange(
        addr,
        b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("mesh-error: upstream transfer coding not supported"),
        "{answer}"
    );
    trigger.trigger();
}

#[tokio::test]
async fn a_response_refused_for_its_coding_counts_against_its_endpoint() {
    // The caller gets a 502 for it: the endpoint failed the request, and
    // failure accrual must say so, not score the head's 200 a success.
    let upstream = raw_upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
    )
    .await;
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream])
        .unwrap()
        .with_failure_accrual(accrual);
    let view = forward.balancer_view().unwrap();
    let req = Request::get("http://web/").body(Empty::new()).unwrap();
    let res = forward.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        view.endpoints().unwrap(),
        [(upstream, EndpointState::Failing)]
    );
}
