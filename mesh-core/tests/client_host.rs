//! Which `Host` an HTTP/1 request reaches its upstream with, over real
//! sockets: the one its client named, and none when it named none.
//!
//! A proxy passes on the host its client asked for; it never makes one up
//! from the endpoint's address, an address the client never named. A
//! caller of [`Client`] in the process names its host in the URI, and
//! gets it as `Host`, as from any HTTP client.
#![allow(clippy::unwrap_used)]

use crate::support::proxy;

use crate::support::header_echo;

use std::net::SocketAddr;

use bytes::Bytes;
use header_echo::header_echo;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::client::{Client, ClientConfig, ForEndpoint};
use proxy::proxy;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower::ServiceExt;

/// Sends `head` to `addr` and reads the answer until the server closes.
async fn exchange(addr: SocketAddr, head: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

/// The header lines the upstream echoed in `answer`'s body.
fn echoed(answer: &str) -> &str {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{answer}");
    body
}

#[tokio::test]
async fn an_http10_request_without_host_reaches_the_upstream_without_one() {
    let upstream = header_echo().await;
    let (addr, trigger, server) = proxy(upstream).await;
    let answer = exchange(addr, "GET /list HTTP/1.0\r\naccept: */*\r\n\r\n").await;
    let sent = echoed(&answer);
    assert!(!sent.contains("host:"), "{answer}");
    assert!(!sent.contains(&upstream.to_string()), "{answer}");
    assert!(sent.contains("accept: */*"), "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn an_http10_request_keeps_the_host_its_client_named() {
    let upstream = header_echo().await;
    let (addr, trigger, server) = proxy(upstream).await;
    let answer = exchange(addr, "GET /list HTTP/1.0\r\nhost: emoji\r\n\r\n").await;
    assert_eq!(echoed(&answer), "host: emoji\n", "{answer}");
    // In absolute form, the target names the host.
    let answer = exchange(addr, "GET http://voting/list HTTP/1.0\r\n\r\n").await;
    assert_eq!(echoed(&answer), "host: voting\n", "{answer}");
    trigger.trigger();
    server.await.unwrap();
}

/// The `host` line an upstream echoed for a request a client sent.
async fn host_sent(res: Response<Incoming>) -> String {
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let lines = String::from_utf8(body.to_vec()).unwrap();
    lines
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_caller_in_the_process_gets_host_from_its_uri() {
    let upstream = header_echo().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let req = Request::get(format!("http://{upstream}/list"))
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(host_sent(res).await, upstream.to_string());
    // A `Host` it wrote itself is kept.
    let req = Request::get(format!("http://{upstream}/list"))
        .header("host", "orders")
        .body(Empty::new())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(host_sent(res).await, "orders");
}

#[tokio::test]
async fn a_client_for_an_endpoint_sends_only_the_host_a_request_carries() {
    let upstream = header_echo().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default()).for_endpoint(upstream);
    // What `Forward` hands it for a request that named no host: a URI
    // naming the endpoint, and no `Host`.
    let req = Request::get(format!("http://{upstream}/list"))
        .version(http::Version::HTTP_10)
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(host_sent(res).await, "");
    let req = Request::get(format!("http://{upstream}/list"))
        .header("host", "orders")
        .body(Empty::new())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(host_sent(res).await, "orders");
}
