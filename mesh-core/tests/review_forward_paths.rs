//! The forwarding path end to end, over real sockets: what an upgrade
//! carries with its head, an upgrade the upstream refuses, a body the
//! upstream cuts short, response trailers, and a response larger than any
//! buffer on the way.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::{header_echo::header_echo, proxy::proxy};

/// An upstream that reads each connection's request head and writes
/// `answer`, then closes the connection.
async fn raw_upstream(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                read_head(&mut conn).await;
                conn.write_all(answer).await.unwrap();
                conn.shutdown().await.unwrap();
            });
        }
    });
    addr
}

/// Reads a head up to its blank line, byte by byte so that nothing after
/// it is taken.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// An HTTP/1 connection to `addr`, and its driver spawned.
async fn http1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    send
}

/// An HTTP/2 (prior knowledge) connection to `addr`, and its driver
/// spawned.
async fn http2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn an_upgrade_carries_the_bytes_sent_right_after_each_head() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let head = read_head(&mut conn).await;
        // The switch and the first bytes of the new protocol in one write.
        conn.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\npong",
        )
        .await
        .unwrap();
        let mut early = [0; 4];
        conn.read_exact(&mut early).await.unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        (head, early, rest)
    });
    let (addr, _trigger, _server) = proxy(upstream).await;

    let mut conn = TcpStream::connect(addr).await.unwrap();
    // The head and the first frame in one write, as a client that does
    // not wait for the `101` sends them.
    conn.write_all(
        b"GET /chat HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nping",
    )
    .await
    .unwrap();
    let answer = read_head(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let mut first = [0; 4];
    conn.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"pong");
    conn.write_all(b"more").await.unwrap();
    conn.shutdown().await.unwrap();

    let (head, early, rest) = seen.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert_eq!(&early, b"ping");
    assert_eq!(rest, b"more");
}

/// An upstream that answers every request `200`, saying whether it was
/// asked to upgrade, and never switches.
async fn refusing_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let asked = req.headers().get("upgrade").is_some();
                let body = format!("{} asked={asked}", req.uri().path());
                Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(body))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc)
                    .with_upgrades(),
            );
        }
    });
    addr
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_is_a_plain_answer_on_a_connection_that_goes_on() {
    let (addr, _trigger, _server) = proxy(refusing_upstream().await).await;
    let mut send = http1(addr).await;

    let req = Request::get("/chat")
        .header("host", "web")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key("upgrade"), "{res:?}");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "/chat asked=true");

    // The same connection serves the next request.
    let req = Request::get("/next")
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "/next asked=false");
}

#[tokio::test]
async fn an_h2c_upgrade_goes_as_a_plain_http1_request() {
    let (addr, _trigger, _server) = proxy(header_echo().await).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"GET / HTTP/1.1\r\nhost: web\r\nconnection: Upgrade, HTTP2-Settings, close\r\n\
          upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, sent) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(sent, "host: web\n", "{answer}");
}

/// Sends a `GET` to `addr` over `version` (HTTP/2 with prior knowledge),
/// and returns how reading its body ended: the bytes it got, or the
/// error.
async fn body_outcome(addr: SocketAddr, version: http::Version) -> Result<Bytes, String> {
    let mut req = Request::get("http://web/cut")
        .body(Empty::<Bytes>::new())
        .unwrap();
    *req.version_mut() = version;
    let res = if version == http::Version::HTTP_2 {
        http2(addr).await.send_request(req).await.unwrap()
    } else {
        http1(addr).await.send_request(req).await.unwrap()
    };
    assert_eq!(res.status(), 200, "{version:?}");
    res.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_body_the_upstream_cuts_short_of_its_length_is_never_complete_for_the_client() {
    let upstream = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b").await;
    let (addr, _trigger, _server) = proxy(upstream).await;
    let outcome = body_outcome(addr, http::Version::HTTP_11).await;
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn a_chunked_body_the_upstream_cuts_short_is_never_complete_for_the_client() {
    let upstream =
        raw_upstream(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
    let (addr, _trigger, _server) = proxy(upstream).await;
    let outcome = body_outcome(addr, http::Version::HTTP_11).await;
    assert!(outcome.is_err(), "{outcome:?}");
}

/// An upstream speaking HTTP/1.1 and HTTP/2 that answers every request
/// with what `answer` makes.
async fn upstream<F, B>(answer: F) -> SocketAddr
where
    F: Fn() -> Response<B> + Clone + Send + Sync + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let res = answer();
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_body_the_upstream_fails_mid_way_fails_for_http1_and_http2_clients() {
    // Ten bytes of a hundred, then, once the client has the head, the
    // upstream's body fails: hyper closes an HTTP/1 connection short of
    // its length, and resets an HTTP/2 stream.
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::unbounded_channel();
    let upstream = upstream(move || {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        fail_tx.send(tx).unwrap();
        let frames = stream::once(async { Ok(Frame::data(Bytes::from_static(b"only ten b"))) })
            .chain(stream::once(async move {
                let _ = rx.await;
                Err(std::io::Error::other("upstream broke"))
            }));
        Response::builder()
            .header("content-length", "100")
            .body(StreamBody::new(frames))
            .unwrap()
    })
    .await;
    let (addr, _trigger, _server) = proxy(upstream).await;
    for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
        let mut req = Request::get("http://web/cut")
            .body(Empty::<Bytes>::new())
            .unwrap();
        *req.version_mut() = version;
        let res = if version == http::Version::HTTP_2 {
            http2(addr).await.send_request(req).await.unwrap()
        } else {
            http1(addr).await.send_request(req).await.unwrap()
        };
        assert_eq!(res.status(), 200, "{version:?}");
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "only ten b");
        fail_rx.recv().await.unwrap().send(()).unwrap();
        let rest = body.collect().await.map(|b| b.to_bytes());
        assert!(rest.is_err(), "{version:?}: {rest:?}");
    }
}

/// 64 MiB, far past every socket, stream and connection window on the way.
const BIG: usize = 64 << 20;

/// An upstream that answers with [`BIG`] bytes in 64 KiB frames, each
/// filled with its index, with no length: HTTP/1 chunks them.
async fn big_upstream() -> SocketAddr {
    upstream(|| {
        Response::new(StreamBody::new(stream::iter((0..BIG >> 16).map(|i| {
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![i as u8; 1 << 16])))
        }))))
    })
    .await
}

#[tokio::test]
async fn a_response_larger_than_any_buffer_arrives_whole_and_in_order() {
    let (addr, _trigger, _server) = proxy(big_upstream().await).await;
    let get = || {
        Request::get("http://web/big")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let mut req = get();
    *req.version_mut() = http::Version::HTTP_2;
    let h1 = http1(addr).await.send_request(get()).await.unwrap();
    let h2 = http2(addr).await.send_request(req).await.unwrap();
    for res in [h1, h2] {
        let mut body = res.into_body();
        let mut at = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for (i, byte) in data.iter().enumerate() {
                assert_eq!(*byte, ((at + i) >> 16) as u8, "byte {}", at + i);
            }
            at += data.len();
        }
        assert_eq!(at, BIG);
    }
}

/// An upstream that answers `413` as soon as it has a request's head,
/// closes its half, and reads the rest of what the client sends until
/// the client's end (a lingering close, as nginx does), counting it.
async fn early_answer_upstream() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                read_head(&mut conn).await;
                conn.write_all(
                    b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 7\r\nconnection: close\r\n\r\ntoo big",
                )
                .await
                .unwrap();
                conn.shutdown().await.unwrap();
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest).await;
                let _ = tx.send(rest.len());
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn an_answer_the_upstream_gives_before_reading_the_body_reaches_the_client() {
    let (upstream, _read) = early_answer_upstream().await;
    let (addr, _trigger, _server) = proxy(upstream).await;
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    // 8 MiB: more than the sockets on the way hold, so the client is still
    // sending when the answer comes. It reads as it sends, as curl does: a
    // client that reports its failed write first (hyper's) never looks.
    let writer = tokio::spawn(async move {
        write
            .write_all(b"POST /upload HTTP/1.1\r\nhost: web\r\ncontent-length: 8388608\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..128 {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = read.read(&mut buf).await {
        answer.extend_from_slice(&buf[..n]);
    }
    writer.await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.ends_with("\r\n\r\ntoo big"), "{answer}");
}

#[tokio::test]
async fn a_connect_with_a_body_is_refused_and_its_body_is_not_read_as_a_request() {
    let (addr, _trigger, _server) = proxy(header_echo().await).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\ncontent-length: 5\r\n\r\nhello\
          GET /next HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 501 "), "{answer}");
    assert!(
        answer.contains("mesh-error: connect not supported\r\n"),
        "{answer}"
    );
    // The body was the `CONNECT`'s: the next request is the `GET`.
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
    assert!(answer.ends_with("\r\n\r\nhost: web\n"), "{answer}");
}

#[tokio::test]
async fn an_http2_answer_given_before_the_body_is_read_reaches_the_client() {
    // Answered at once, its body never read: hyper's HTTP/2 server resets
    // the stream with NO_ERROR once the answer has ended (RFC 9113 §8.1).
    let upstream = upstream(|| {
        Response::builder()
            .status(413)
            .body(http_body_util::Full::new(Bytes::from_static(b"too big")))
            .unwrap()
    })
    .await;
    let (addr, _trigger, _server) = proxy(upstream).await;
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    // 8 MiB, past every window on the way.
    let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 8 << 20]));
    let req = Request::post("http://web/upload")
        .version(http::Version::HTTP_2)
        .body(body)
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 413);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "too big");
}
