//! HTTP/1.1 carried between two proxies as HTTP/2 (`orig_proto`), end to
//! end over real sockets: an HTTP/1.1 client, an outbound proxy whose
//! client upgrades each request, an inbound proxy that downgrades it, and
//! an HTTP/1.1 application. What the client and the application see must
//! be what they would see without the HTTP/2 hop.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig, ForEndpoint},
    proxy::{Forward, orig_proto},
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::Layer;

use crate::support;

type AppBody = BoxBody<Bytes, Infallible>;

/// The application: what it answers depends on the path.
async fn app(req: Request<Incoming>) -> Result<Response<AppBody>, Infallible> {
    let (parts, body) = req.into_parts();
    match parts.uri.path() {
        "/trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", HeaderValue::from_static("abc"));
            let frames = futures_util::stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello"))),
                Ok(Frame::trailers(trailers)),
            ]);
            Ok(Response::builder()
                .header("trailer", "x-checksum")
                .body(StreamBody::new(frames).boxed())
                .unwrap())
        }
        "/head" => Ok(Response::builder()
            .header("content-length", "42")
            .body(Empty::new().boxed())
            .unwrap()),
        "/no-content" => Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Empty::new().boxed())
            .unwrap()),
        "/not-modified" => Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", "\"v1\"")
            .body(Empty::new().boxed())
            .unwrap()),
        _ => {
            // Echoes what reached it: method, version, headers, and the
            // body with its trailers.
            let collected = body.collect().await.unwrap();
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let body = collected.to_bytes();
            let mut lines = format!("{} {} {:?}\n", parts.method, parts.uri, parts.version);
            for (name, value) in &parts.headers {
                lines.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
            }
            for (name, value) in &trailers {
                lines.push_str(&format!("trailer {name}: {}\n", value.to_str().unwrap()));
            }
            lines.push_str(&format!("body {}\n", String::from_utf8_lossy(&body)));
            Ok(Response::new(Full::new(Bytes::from(lines)).boxed()))
        }
    }
}

async fn start_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), hyper::service::service_fn(app)),
            );
        }
    });
    addr
}

/// The two proxies in front of the application; the client's address,
/// and the triggers that keep both up.
async fn proxies() -> (SocketAddr, [shutdown::ShutdownTrigger; 2]) {
    support::orig_proto::proxies(start_app().await).await
}

/// Sends `request` to `addr` and reads the answer until the server
/// closes (each request says `connection: close`).
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the proxy answers and closes")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn method_host_length_and_body_cross_the_http2_hop() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "PUT /items/7?x=1 HTTP/1.1\r\nhost: web.example:8080\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, seen) = answer.split_once("\r\n\r\n").unwrap();
    assert!(seen.contains("PUT /items/7?x=1 HTTP/1.1\n"), "{seen}");
    assert!(seen.contains("host: web.example:8080\n"), "{seen}");
    assert!(seen.contains("content-length: 5\n"), "{seen}");
    assert!(seen.contains("body hello\n"), "{seen}");
    assert!(!seen.contains("mesh-orig-proto"), "{seen}");
}

#[tokio::test]
async fn chunked_request_trailers_cross_the_http2_hop() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "POST /echo HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 9\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("body hello\n"), "{answer}");
    assert!(answer.contains("trailer x-sum: 9\n"), "{answer}");
}

#[tokio::test]
async fn response_trailers_cross_the_http2_hop() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "GET /trailers HTTP/1.1\r\nhost: web\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("hello"), "{answer}");
    assert!(
        answer.to_lowercase().contains("\r\nx-checksum: abc\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_head_response_keeps_its_length_and_has_no_body() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "HEAD /head HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("content-length: 42\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
}

#[tokio::test]
async fn no_content_and_not_modified_come_back_without_a_body() {
    let (addr, _triggers) = proxies().await;
    for (path, status) in [("/no-content", "204"), ("/not-modified", "304")] {
        let answer = exchange(
            addr,
            &format!("GET {path} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(!answer.contains("transfer-encoding"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "{answer}");
    }
}

#[tokio::test]
async fn a_client_waiting_for_100_continue_gets_it_and_its_body_through() {
    let (addr, _triggers) = proxies().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /echo HTTP/1.1\r\nhost: web\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0; 25];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut head))
        .await
        .expect("a 100 Continue before the body is sent")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.write_all(b"hello").await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("body hello\n"), "{answer}");
}

#[tokio::test]
async fn hop_by_hop_request_headers_do_not_cross_the_http2_hop() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "GET /echo HTTP/1.1\r\nhost: web\r\nconnection: close, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nte: gzip, trailers\r\nx-end: kept\r\n\r\n",
    )
    .await;
    let (_, seen) = answer.split_once("\r\n\r\n").unwrap();
    let mut names: Vec<&str> = seen
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": ").map(|(n, _)| n))
        .filter(|n| !n.starts_with("body"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["host", "te", "x-end"], "{seen}");
    assert!(seen.contains("te: trailers\n"), "{seen}");
}

#[tokio::test]
async fn a_request_framed_by_both_a_length_and_chunks_is_read_by_its_chunks_and_ends_the_connection()
 {
    let (addr, _triggers) = proxies().await;
    // RFC 9112 §6.3: the chunks win, and the connection closes after the
    // answer, so that what follows is never read as a request.
    let answer = exchange(
        addr,
        "POST /echo HTTP/1.1\r\nhost: web\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: web\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("body hello\n"), "{answer}");
    assert!(!answer.contains("content-length: 4\n"), "{answer}");
    assert!(!answer.contains("smuggled"), "{answer}");
}

#[tokio::test]
async fn a_marked_request_without_host_reaches_the_application_with_its_authority_as_host() {
    let app = crate::support::header_echo::header_echo().await;
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let inbound = orig_proto::DowngradeLayer::new().layer(Forward::new(client, [app]).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let inbound_addr = listener.local_addr().unwrap();
    let (_trigger, stop) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, inbound, stop));

    // A caller in the process names its host in the URI, as to any HTTP
    // client, and carries the request to the peer as HTTP/2: the
    // authority travels as `:authority` alone. RFC 9113 §8.3.1 has the
    // side that turns it back into HTTP/1.1 write it into `Host`.
    let mut req = Request::get("http://web.example:8080/list")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(orig_proto::upgrade(&mut req));
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default()).for_endpoint(inbound_addr);
    let res = tower::ServiceExt::oneshot(client, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = res.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("host: web.example:8080\n"), "{seen}");
}

#[tokio::test]
async fn an_asterisk_form_options_crosses_the_http2_hop_as_it_was() {
    let (addr, _triggers) = proxies().await;
    let answer = exchange(
        addr,
        "OPTIONS * HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, seen) = answer.split_once("\r\n\r\n").unwrap();
    assert!(seen.starts_with("OPTIONS * HTTP/1.1\n"), "{seen}");
    assert!(seen.contains("host: web\n"), "{seen}");
}
