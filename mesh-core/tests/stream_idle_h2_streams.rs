//! `ServerConfig::stream_idle_timeout` on one HTTP/2 connection carrying
//! several streams: each stream is timed by its own request data, so a
//! silent stream is answered `408` however busy its neighbours are, and a
//! stream whose body moves lives on, even with no response coming.
//!
//! The clock is paused once the streams are open, and runs only while a
//! step sends request data and waits for the app to have it (see
//! `stream_idle.rs`). The app reports what it sees with the time it saw
//! it, so a stream's end is timed where the server ended it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::paused_clock::{about, in_real_time, serve_timed};

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::mpsc, time::Instant};

const TIMEOUT: Duration = Duration::from_secs(25);
const STEP: Duration = Duration::from_secs(20);

/// What the app saw of a request, by its path.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Seen {
    /// The request was made.
    Start,
    /// This many body bytes so far.
    Bytes(usize),
    /// Its body ended, and it was answered.
    Answered,
    /// Its service was dropped before answering.
    Dropped,
}

type Report = (String, Seen, Instant);

/// Reports `Dropped` unless the request was answered.
struct Watch {
    path: String,
    tx: mpsc::UnboundedSender<Report>,
    answered: bool,
}

impl Watch {
    fn report(&self, seen: Seen) {
        let _ = self.tx.send((self.path.clone(), seen, Instant::now()));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.answered {
            self.report(Seen::Dropped);
        }
    }
}

/// Reads the request body, reporting it, and answers with its length
/// once it ends; `/hold` never answers.
async fn app(
    req: Request<Incoming>,
    tx: mpsc::UnboundedSender<Report>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut watch = Watch {
        path: req.uri().path().to_owned(),
        tx,
        answered: false,
    };
    watch.report(Seen::Start);
    let mut body = req.into_body();
    let mut n = 0;
    while let Some(Ok(frame)) = body.frame().await {
        n += frame.data_ref().map_or(0, Bytes::len);
        watch.report(Seen::Bytes(n));
    }
    if watch.path == "/hold" {
        std::future::pending::<()>().await;
    }
    watch.answered = true;
    watch.report(Seen::Answered);
    Ok(Response::new(Full::new(Bytes::from(format!("got {n}")))))
}

async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<Report>) {
    let (tx, got) = mpsc::unbounded_channel();
    let app = tower::service_fn(move |req| app(req, tx.clone()));
    let addr = serve_timed(Some(TIMEOUT), app).await;
    (addr, got)
}

/// The next report, as `(path, seen)`, and its time.
async fn next(got: &mut mpsc::UnboundedReceiver<Report>) -> ((String, Seen), Instant) {
    let (path, seen, at) = got.recv().await.expect("the server is gone");
    ((path, seen), at)
}

fn seen(path: &str, seen: Seen) -> (String, Seen) {
    (path.to_owned(), seen)
}

type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>;
type Sender = hyper::client::conn::http2::SendRequest<StreamBody<Frames>>;

async fn http2(addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A `POST` to `path` whose body is fed by the returned sender, and ends
/// when it is dropped.
fn post(path: &str) -> (mpsc::Sender<Bytes>, Request<StreamBody<Frames>>) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(Frame::data(chunk)), rx))
    });
    let req = Request::post(format!("http://a{path}"))
        .body(StreamBody::new(frames.boxed()))
        .unwrap();
    (tx, req)
}

#[tokio::test]
async fn http2_a_silent_stream_is_answered_408_while_its_neighbour_trickles() {
    let (addr, mut got) = server().await;
    let mut send = http2(addr).await;
    let (busy_tx, busy) = post("/busy");
    let busy = tokio::spawn(send.clone().send_request(busy));
    assert_eq!(next(&mut got).await.0, seen("/busy", Seen::Start));
    let (_silent_tx, silent) = post("/silent");
    let silent = tokio::spawn(send.send_request(silent));
    assert_eq!(next(&mut got).await.0, seen("/silent", Seen::Start));
    tokio::time::pause();
    let start = Instant::now();
    // The busy stream sends a byte every 20 s, for a minute.
    let mut silent_dropped = None;
    for n in 1..=3 {
        tokio::time::sleep(STEP).await;
        in_real_time(async {
            busy_tx.send(Bytes::from_static(b"x")).await.unwrap();
            loop {
                let (report, at) = next(&mut got).await;
                if report == seen("/busy", Seen::Bytes(n)) {
                    break;
                }
                assert_eq!(report, seen("/silent", Seen::Dropped));
                silent_dropped = Some(at - start);
            }
        })
        .await;
    }
    about(silent_dropped.expect("the silent stream lives on"), TIMEOUT);
    let res = in_real_time(silent).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["mesh-error"], "stream idle timeout");
    drop(busy_tx);
    let res = in_real_time(busy).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "got 3");
}

#[tokio::test]
async fn http2_a_body_that_moves_keeps_its_stream_alive_with_no_response_coming() {
    let (addr, mut got) = server().await;
    let mut send = http2(addr).await;
    let (tx, hold) = post("/hold");
    let hold = tokio::spawn(send.send_request(hold));
    assert_eq!(next(&mut got).await.0, seen("/hold", Seen::Start));
    tokio::time::pause();
    let start = Instant::now();
    for n in 1..=4 {
        tokio::time::sleep(STEP).await;
        in_real_time(async {
            tx.send(Bytes::from_static(b"x")).await.unwrap();
            assert_eq!(next(&mut got).await.0, seen("/hold", Seen::Bytes(n)));
        })
        .await;
    }
    // 80 s on, its last frame ends it one timeout later.
    let (report, at) = next(&mut got).await;
    assert_eq!(report, seen("/hold", Seen::Dropped));
    about(at - start, STEP * 4 + TIMEOUT);
    let res = in_real_time(hold).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const END_HEADERS: u8 = 0x4;

/// The HPACK block of `POST http://a{path}`: `:method POST` and
/// `:scheme http` from the static table, `:path` and `:authority` as
/// literals without indexing.
fn post_head(path: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 0x01, b'a']);
    block
}

#[tokio::test]
async fn http2_a_refused_stream_does_not_shift_the_streams_after_it() {
    let (addr, mut got) = server().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // Stream 1 has no `:path`: h2 resets it, and no request is made.
    // Stream 3 is silent; stream 5 trickles. All sent in one write.
    let opening = [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        &frame(SETTINGS, 0, 0, &[]),
        &frame(HEADERS, END_HEADERS, 1, &[0x83, 0x86, 0x01, 0x01, b'a']),
        &frame(HEADERS, END_HEADERS, 3, &post_head("/silent")),
        &frame(HEADERS, END_HEADERS, 5, &post_head("/busy")),
        &frame(DATA, 0, 5, b"x"),
    ]
    .concat();
    conn.write_all(&opening).await.unwrap();
    let mut first = Vec::new();
    for _ in 0..3 {
        let report = tokio::time::timeout(Duration::from_secs(10), next(&mut got)).await;
        first.push(report.expect("the reads stopped at the refused stream").0);
    }
    first.sort();
    let mut expected = vec![
        seen("/busy", Seen::Start),
        seen("/busy", Seen::Bytes(1)),
        seen("/silent", Seen::Start),
    ];
    expected.sort();
    assert_eq!(first, expected);
    tokio::time::pause();
    let start = Instant::now();
    let mut silent_dropped = None;
    for n in 2..=4 {
        tokio::time::sleep(STEP).await;
        in_real_time(async {
            conn.write_all(&frame(DATA, 0, 5, b"y")).await.unwrap();
            loop {
                let (report, at) = next(&mut got).await;
                if report == seen("/busy", Seen::Bytes(n)) {
                    break;
                }
                assert_eq!(report, seen("/silent", Seen::Dropped));
                silent_dropped = Some(at - start);
            }
        })
        .await;
    }
    about(silent_dropped.expect("the silent stream lives on"), TIMEOUT);
    // The busy stream ends its body and is answered.
    conn.write_all(&frame(DATA, 0x1, 5, b"z")).await.unwrap();
    let (report, _) = in_real_time(next(&mut got)).await;
    assert_eq!(report, seen("/busy", Seen::Bytes(5)));
    let (report, _) = in_real_time(next(&mut got)).await;
    assert_eq!(report, seen("/busy", Seen::Answered));
}

#[tokio::test]
async fn http2_many_streams_opened_at_once_are_all_served() {
    let (addr, _got) = server().await;
    let send = http2(addr).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let mut send = send.clone();
        calls.spawn(async move {
            let (tx, req) = post(&format!("/{i}"));
            let res = tokio::spawn(send.send_request(req));
            // Half send a body, half end theirs at once.
            if i % 2 == 0 {
                tx.send(Bytes::from_static(b"abc")).await.unwrap();
            }
            drop(tx);
            let res = res.await.unwrap().unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, if i % 2 == 0 { "got 3" } else { "got 0" });
        });
    }
    let served = tokio::time::timeout(Duration::from_secs(10), calls.join_all())
        .await
        .expect("a stream was never served");
    assert_eq!(served.len(), 100);
}
