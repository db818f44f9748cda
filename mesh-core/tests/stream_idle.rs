//! `ServerConfig::stream_idle_timeout` over real sockets, HTTP/1 and
//! HTTP/2: a stream that goes quiet is answered `408` before its response
//! head and cut after it; one that keeps trickling at less than the
//! timeout is served whole; with the default, a quiet stream lives on.
//!
//! The clock is paused once the connection is up. A paused clock jumps to
//! the next timer whenever the runtime waits on a socket, so each step that
//! sends request data runs with the clock going, until the app has the
//! data, and then the clock is paused again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::paused_clock::{in_real_time, serve_timed};

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    time::Instant,
};

type Body = UnsyncBoxBody<Bytes, Infallible>;

const TIMEOUT: Duration = Duration::from_secs(25);
const STEP: Duration = Duration::from_secs(20);

/// `n` one-byte frames, the first at once and each next `every` later.
fn drip(n: usize, every: Duration) -> Body {
    let frames = futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(every).await;
        }
        Some((Ok(Frame::data(Bytes::from_static(b"x"))), i + 1))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// `/collect` answers once it has the whole request body, and reports
/// the bytes it has to `got` as they come; `/drip` sends five frames
/// 20 s apart; `/stall` sends one frame and then nothing; a `CONNECT` is
/// answered after a minute.
async fn app(
    req: Request<Incoming>,
    got: mpsc::UnboundedSender<usize>,
) -> Result<Response<Body>, Infallible> {
    if req.method() == Method::CONNECT {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(Response::new(http_body_util::Empty::new().boxed_unsync()));
    }
    let body = match req.uri().path() {
        "/collect" => {
            let mut body = req.into_body();
            let mut n = 0;
            while let Some(Ok(frame)) = body.frame().await {
                n += frame.data_ref().map_or(0, Bytes::len);
                let _ = got.send(n);
            }
            http_body_util::Full::new(Bytes::from(format!("got {n}"))).boxed_unsync()
        }
        "/drip" => drip(5, STEP),
        _ => {
            let once = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"x")))]);
            StreamBody::new(once.chain(futures_util::stream::pending())).boxed_unsync()
        }
    };
    Ok(Response::new(body))
}

/// A server with `stream_idle_timeout`, and the request bytes its app has
/// received, as they grow.
async fn server(
    stream_idle_timeout: Option<Duration>,
) -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let (got_tx, got) = mpsc::unbounded_channel();
    let app = tower::service_fn(move |req| app(req, got_tx.clone()));
    let addr = serve_timed(stream_idle_timeout, app).await;
    (addr, got)
}

/// Reads `conn` to its end, or for an hour; the text and when it ended.
async fn read_all(conn: &mut TcpStream) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut text = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(3600), conn.read_to_end(&mut text)).await;
    let lasted = ended.ok().map(|_| start.elapsed());
    (String::from_utf8_lossy(&text).into_owned(), lasted)
}

/// `lasted` is `expected`, give or take the real time a step took.
fn about(lasted: Option<Duration>, expected: Duration) {
    let lasted = lasted.expect("still open after an hour");
    let slack = Duration::from_secs(1);
    assert!(
        lasted + slack >= expected && lasted <= expected + slack,
        "{lasted:?}, not {expected:?}"
    );
}

#[tokio::test]
async fn http1_a_request_body_that_stops_trickling_is_answered_408() {
    let (addr, mut got) = server(Some(TIMEOUT)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"POST /collect HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nx")
        .await
        .unwrap();
    assert_eq!(got.recv().await, Some(1));
    tokio::time::pause();
    // A byte 20 s later moves the deadline; then nothing.
    tokio::time::sleep(STEP).await;
    in_real_time(async {
        conn.write_all(b"y").await.unwrap();
        assert_eq!(got.recv().await, Some(2));
    })
    .await;
    let (text, lasted) = read_all(&mut conn).await;
    about(lasted, TIMEOUT);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains("mesh-error: stream idle timeout\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
}

#[tokio::test]
async fn http1_a_body_trickled_faster_than_the_timeout_is_served_whole() {
    let (addr, mut got) = server(Some(TIMEOUT)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /collect HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::pause();
    for n in 1..=5 {
        tokio::time::sleep(STEP).await;
        in_real_time(async {
            conn.write_all(b"z").await.unwrap();
            assert_eq!(got.recv().await, Some(n));
        })
        .await;
    }
    let (text, _) = read_all(&mut conn).await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("got 5"), "{text}");
}

#[tokio::test]
async fn http1_a_response_that_goes_quiet_is_cut_short() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /stall HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::pause();
    let (text, lasted) = read_all(&mut conn).await;
    about(lasted, TIMEOUT);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.ends_with("1\r\nx\r\n"), "no last chunk: {text:?}");
}

#[tokio::test]
async fn http1_a_response_that_drips_faster_than_the_timeout_completes() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /drip HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::pause();
    let (text, lasted) = read_all(&mut conn).await;
    about(lasted, STEP * 4);
    assert!(text.ends_with("1\r\nx\r\n0\r\n\r\n"), "{text:?}");
}

#[tokio::test]
async fn by_default_a_quiet_stream_lives_on() {
    let (addr, mut got) = server(None).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /collect HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nconnection: close\r\n\r\nx",
    )
    .await
    .unwrap();
    assert_eq!(got.recv().await, Some(1));
    // And HTTP/2.
    let (mut send, _conn) = http2(addr).await;
    let (tx, body) = channel();
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    let response = tokio::spawn(send.send_request(post("/collect", body)));
    assert_eq!(got.recv().await, Some(1));
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    in_real_time(async {
        conn.write_all(b"y").await.unwrap();
        let (text, _) = read_all(&mut conn).await;
        assert!(text.ends_with("got 2"), "{text}");
        drop(tx);
        let res = response.await.unwrap().unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "got 1");
    })
    .await;
}

#[tokio::test]
async fn a_connect_is_not_timed() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n")
        .await
        .unwrap();
    tokio::time::pause();
    let start = Instant::now();
    let mut head = [0; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    about(Some(start.elapsed()), Duration::from_secs(60));
}

type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>;
type Sender = hyper::client::conn::http2::SendRequest<StreamBody<Frames>>;

/// An HTTP/2 connection to `addr`.
async fn http2(addr: SocketAddr) -> (Sender, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, conn)
}

/// A request body fed by the returned sender, ended when it is dropped.
fn channel() -> (mpsc::Sender<Bytes>, StreamBody<Frames>) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(Frame::data(chunk)), rx))
    });
    (tx, StreamBody::new(frames.boxed()))
}

fn post(path: &str, body: StreamBody<Frames>) -> Request<StreamBody<Frames>> {
    Request::post(format!("http://a{path}")).body(body).unwrap()
}

fn get(path: &str) -> Request<StreamBody<Frames>> {
    let empty = futures_util::stream::empty().boxed();
    Request::get(format!("http://a{path}"))
        .body(StreamBody::new(empty))
        .unwrap()
}

#[tokio::test]
async fn http2_a_request_body_that_stops_is_answered_408() {
    let (addr, mut got) = server(Some(TIMEOUT)).await;
    let (mut send, _conn) = http2(addr).await;
    let (tx, body) = channel();
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    let response = tokio::spawn(send.send_request(post("/collect", body)));
    assert_eq!(got.recv().await, Some(1));
    tokio::time::pause();
    // A frame 20 s later moves the deadline; then nothing.
    tokio::time::sleep(STEP).await;
    in_real_time(async {
        tx.send(Bytes::from_static(b"y")).await.unwrap();
        assert_eq!(got.recv().await, Some(2));
    })
    .await;
    let start = Instant::now();
    let res = response.await.unwrap().unwrap();
    about(Some(start.elapsed()), TIMEOUT);
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["mesh-error"], "stream idle timeout");
}

#[tokio::test]
async fn http2_a_grpc_call_that_goes_quiet_gets_deadline_exceeded() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let (mut send, _conn) = http2(addr).await;
    let (_tx, body) = channel();
    let mut req = post("/collect", body);
    req.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    tokio::time::pause();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "4");
    assert_eq!(res.headers()["grpc-message"], "stream idle timeout");
    assert_eq!(res.headers()["mesh-error"], "stream idle timeout");
}

#[tokio::test]
async fn http2_a_body_trickled_faster_than_the_timeout_is_served_whole() {
    let (addr, mut got) = server(Some(TIMEOUT)).await;
    let (mut send, _conn) = http2(addr).await;
    let (tx, body) = channel();
    let response = tokio::spawn(send.send_request(post("/collect", body)));
    tokio::time::pause();
    for n in 1..=5 {
        tokio::time::sleep(STEP).await;
        in_real_time(async {
            tx.send(Bytes::from_static(b"z")).await.unwrap();
            assert_eq!(got.recv().await, Some(n));
        })
        .await;
    }
    drop(tx);
    let res = in_real_time(response).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "got 5");
}

#[tokio::test]
async fn http2_a_response_that_goes_quiet_is_reset() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let (mut send, _conn) = http2(addr).await;
    let res = send.send_request(get("/stall")).await.unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "x");
    tokio::time::pause();
    let start = Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(3600), body.frame())
        .await
        .expect("still open after an hour");
    about(Some(start.elapsed()), TIMEOUT);
    // Reset, not ended: the client knows the body is incomplete.
    assert!(next.unwrap().is_err());
}

#[tokio::test]
async fn http2_a_response_that_drips_faster_than_the_timeout_completes() {
    let (addr, _) = server(Some(TIMEOUT)).await;
    let (mut send, _conn) = http2(addr).await;
    let res = send.send_request(get("/drip")).await.unwrap();
    tokio::time::pause();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "xxxxx");
}
