//! A paced rapid reset (CVE-2023-44487): a client that opens a stream,
//! waits until the service is called for it, resets it, and opens the
//! next. h2 bounds only streams reset before the server took them, so
//! without `ServerConfig::http2_premature_reset_total_streams` every one
//! of these costs a call, for as long as the client likes. With it, the
//! connection goes away once half a run of streams was reset within the
//! minimum lifetime, as Envoy's premature-reset bound does; the streams
//! its client opens after that are served up to
//! `http2_max_concurrent_streams`, and one more ends the connection.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use h2::{
    Ping, PingPong, Reason,
    client::{self, SendRequest},
};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::detect::H2_PREFACE;
use mesh_core::{
    BoxError,
    conn::{NoTlsReason, Tls},
    serve::{
        Accept, Accepted, ConnectionErrorKind, HTTP2_PREMATURE_RESET_TOTAL_STREAMS, HttpVersion,
        Retirement, Server, ServerConfig, shutdown,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc},
};

use crate::support::h2_frames::{
    ACK, END_HEADERS, END_STREAM, GET, GOAWAY, HEADERS, PING, RST_STREAM, SETTINGS, frame,
};

/// `RST_STREAM`'s `CANCEL`.
const CANCEL: u32 = 0x8;

/// The slow path: its calls never end.
const SLOW: &str = "/slow";

/// The held path: each call ends when the test releases it.
const HELD: &str = "/held";

/// What the server says: each call's path as it is made, and how each
/// connection it cut ended.
struct Told {
    calls: mpsc::UnboundedReceiver<String>,
    /// Each error's kind, its causes, and whether one is an I/O error, as
    /// a sidecar's metrics count it.
    errors: mpsc::UnboundedReceiver<(ConnectionErrorKind, String, bool)>,
    /// Answers the next call of the held path.
    release: Arc<Notify>,
}

impl Told {
    /// The next call the service took: its path.
    async fn call(&mut self) -> String {
        within(self.calls.recv(), "no call").await.unwrap()
    }

    /// How many calls were made that were not awaited.
    fn more_calls(&mut self) -> usize {
        std::iter::from_fn(|| self.calls.try_recv().ok()).count()
    }
}

/// Serves `config`, without keep-alive pings (a test that pauses the
/// clock would jump past their answers), with a service that tells of
/// each call and answers all but the slow path at once (and the held
/// path once released).
async fn server(config: ServerConfig) -> (SocketAddr, Told, shutdown::ShutdownTrigger) {
    let config = ServerConfig {
        http2_keep_alive_interval: None,
        ..config
    };
    alpn_server(config, None).await
}

/// Plaintext, reporting what ALPN settled on, as a TLS accept hook does
/// once the handshake is over.
#[derive(Clone, Copy)]
struct Alpn(Option<HttpVersion>);

impl Accept<TcpStream> for Alpn {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: self.0,
            retire: Retirement::never(),
        }))
    }
}

/// [`server`], whose accept hook reports `alpn`.
async fn alpn_server(
    config: ServerConfig,
    alpn: Option<HttpVersion>,
) -> (SocketAddr, Told, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let released = release.clone();
    let http = tower::service_fn(move |req: Request<Incoming>| {
        let path = req.uri().path().to_owned();
        let slow = path == SLOW;
        let held = (path == HELD).then(|| released.clone());
        calls_tx.send(path).unwrap();
        async move {
            if slow {
                std::future::pending::<()>().await;
            }
            if let Some(released) = held {
                released.notified().await;
            }
            Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
        }
    });
    let server = Server::new(config).with_accept(Alpn(alpn));
    let server = server.on_connection_error(move |ended| {
        // hyper's error says where it failed; its causes say why.
        let mut error = ended.error.to_string();
        let mut io = ended.error.is::<std::io::Error>();
        let mut cause = ended.error.source();
        while let Some(next) = cause {
            error = format!("{error}: {next}");
            io |= next.is::<std::io::Error>();
            cause = next.source();
        }
        let _ = errors_tx.send((ended.kind, error, io));
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(server.serve_http(listener, http, signal));
    let told = Told {
        calls,
        errors,
        release,
    };
    (addr, told, trigger)
}

/// A raw HTTP/2 client of `addr`, and its pings.
async fn connect(addr: SocketAddr) -> (SendRequest<Bytes>, PingPong) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    // Each step waits for the last's answer: Nagle's algorithm would hold
    // every small write for the peer's delayed ACK.
    tcp.set_nodelay(true).unwrap();
    let (send, mut conn) = client::handshake(tcp).await.unwrap();
    let pings = conn.ping_pong().unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, pings)
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://a{path}")).body(()).unwrap()
}

/// Waits until the server has read what was sent before, and the client
/// what the server sent in answer to it: two round trips, as a `GOAWAY`
/// the server sends for a frame may follow the answer to the ping after
/// it.
async fn round_trips(pings: &mut PingPong) {
    for _ in 0..2 {
        if pings.ping(Ping::opaque()).await.is_err() {
            return;
        }
    }
}

/// Opens a slow stream, waits for its call, and resets it; `None` once
/// the connection has gone away.
async fn open_and_reset(
    send: &mut SendRequest<Bytes>,
    pings: &mut PingPong,
    told: &mut Told,
) -> Option<()> {
    let mut ready = send.clone().ready().await.ok()?;
    let (_response, mut stream) = ready.send_request(get(SLOW), true).ok()?;
    assert_eq!(told.call().await, SLOW);
    stream.send_reset(Reason::CANCEL);
    round_trips(pings).await;
    Some(())
}

/// A request answered over `send`: its status.
async fn answered(send: &mut SendRequest<Bytes>, path: &str) -> StatusCode {
    let mut ready = send.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(get(path), true).unwrap();
    response.await.unwrap().status()
}

/// A paced flood of up to `most` streams: how many were opened and reset
/// before the connection went away.
async fn flood(
    send: &mut SendRequest<Bytes>,
    pings: &mut PingPong,
    told: &mut Told,
    most: usize,
) -> usize {
    let mut served = 0;
    while served < most && open_and_reset(send, pings, told).await.is_some() {
        served += 1;
    }
    served
}

/// The premature-reset bound at `total` streams, the rest as by default.
fn bound(total: u32) -> ServerConfig {
    ServerConfig {
        http2_premature_reset_total_streams: Some(total),
        ..ServerConfig::default()
    }
}

/// What `fut` comes to, which must come within the test's bound: `what`
/// says what did not.
async fn within<T>(fut: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect(what)
}

/// [`server`], and a raw HTTP/2 connection to it.
async fn raw_server(config: ServerConfig) -> (TcpStream, Told, shutdown::ShutdownTrigger) {
    let (addr, told, trigger) = server(config).await;
    (raw_connect(addr).await, told, trigger)
}

/// A raw HTTP/2 connection to `addr`, its preface and SETTINGS written:
/// for tests that send what no well-behaved client sends.
async fn raw_connect(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // As in `connect`: each step waits for the last's answer.
    conn.set_nodelay(true).unwrap();
    let mut bytes = H2_PREFACE.to_vec();
    frame(&mut bytes, SETTINGS, 0, 0, &[]);
    conn.write_all(&bytes).await.unwrap();
    conn
}

/// Writes one frame to `conn`.
async fn send_frame(conn: &mut TcpStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let mut bytes = Vec::new();
    frame(&mut bytes, kind, flags, stream, payload);
    conn.write_all(&bytes).await.unwrap();
}

/// Opens `stream` on the slow path over `conn`, and waits for its call.
async fn open_slow(conn: &mut TcpStream, told: &mut Told, stream: u32) {
    send_frame(conn, HEADERS, END_HEADERS | END_STREAM, stream, GET_SLOW).await;
    assert_eq!(told.call().await, SLOW);
}

/// A `RST_STREAM` that cancels `stream`, for the frames to send with it
/// to be appended.
fn reset(stream: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame(&mut bytes, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
    bytes
}

/// Reads one frame off `conn`, with no bound on the wait: its kind,
/// flags, stream and payload, or `None` when the connection closed.
async fn next_frame(conn: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0; 9];
    conn.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    conn.read_exact(&mut payload).await.ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    Some((head[3], head[4], stream, payload))
}

/// How the server tells the connection ended, which must be the rapid
/// reset bound's, counted as an I/O error as a sidecar's metrics count
/// it: the error, with its causes.
async fn ended_by_rapid_reset(told: &mut Told) -> String {
    let (kind, error, io) = ended(told).await;
    assert_eq!(kind, ConnectionErrorKind::Http(HttpVersion::Http2));
    assert!(error.contains("rapid reset"), "{error}");
    assert!(io, "counted as the burst bound's: {error}");
    error
}

#[tokio::test]
async fn a_paced_flood_is_sent_away_after_half_a_run() {
    let timed = ServerConfig {
        stream_idle_timeout: Some(Duration::from_secs(300)),
        ..ServerConfig::default()
    };
    // Envoy's defaults: the 250th premature reset of 500 streams; with
    // streams timed too, whose reads hand each stream over.
    for config in [ServerConfig::default(), timed] {
        let (addr, mut told, _trigger) = server(config).await;
        let (mut send, mut pings) = connect(addr).await;
        let most = HTTP2_PREMATURE_RESET_TOTAL_STREAMS as usize;
        let served = flood(&mut send, &mut pings, &mut told, most).await;
        assert_eq!(served, most / 2, "streams served before the GOAWAY");
        assert_eq!(told.more_calls(), 0);
        // The GOAWAY said no error: the client ends its streams, and
        // its connection closes.
        let error = send.clone().ready().await.err().unwrap();
        assert!(error.is_go_away(), "{error}");
        assert_eq!(error.reason(), Some(Reason::NO_ERROR));
        ended_by_rapid_reset(&mut told).await;
    }
}

/// Reads frames off `conn` up to one of `kind` with `flags`: the kinds
/// of those read, or `None` when the connection closed first.
async fn read_until(conn: &mut TcpStream, kind: u8, flags: u8) -> Option<Vec<u8>> {
    within(
        read_frames(conn, kind, flags),
        "neither the frame nor the end came",
    )
    .await
}

async fn read_frames(conn: &mut TcpStream, kind: u8, flags: u8) -> Option<Vec<u8>> {
    let mut kinds = Vec::new();
    loop {
        let (read, read_flags, _, _) = next_frame(conn).await?;
        kinds.push(read);
        if read == kind && read_flags & flags == flags {
            return Some(kinds);
        }
    }
}

/// Reads frames off `conn` until each of `streams` has its response
/// head: the kinds of those read, or `None` when the connection closed
/// first.
async fn read_answers(conn: &mut TcpStream, streams: &[u32]) -> Option<Vec<u8>> {
    let read = async {
        let mut kinds = Vec::new();
        let mut left = streams.to_vec();
        while !left.is_empty() {
            let (kind, _, stream, _) = next_frame(conn).await?;
            kinds.push(kind);
            if kind == HEADERS {
                left.retain(|&s| s != stream);
            }
        }
        Some(kinds)
    };
    within(read, "neither the answers nor the end came").await
}

#[tokio::test]
async fn a_flood_that_keeps_on_after_the_goaway_is_cut_past_the_grace() {
    // A client that reads the GOAWAY and opens streams all the same: as
    // many as it may have open at once are served, as a pipelining
    // client's would be; the read that carries the next fails, and that
    // one is never served.
    let config = ServerConfig {
        http2_max_concurrent_streams: 2,
        ..bound(4)
    };
    let (mut conn, mut told, _trigger) = raw_server(config).await;
    let mut read = Vec::new();
    for stream in [1, 3] {
        send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, stream, GET).await;
        assert_eq!(told.call().await, "/");
        let mut bytes = reset(stream);
        frame(&mut bytes, PING, 0, 0, &[0; 8]);
        conn.write_all(&bytes).await.unwrap();
        read = read_until(&mut conn, PING, ACK).await.unwrap();
    }
    // The GOAWAY may come before the answer to the ping, or after.
    if !read.contains(&GOAWAY) {
        assert!(
            read_until(&mut conn, GOAWAY, 0).await.is_some(),
            "no GOAWAY"
        );
    }
    for stream in [5, 7] {
        send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, stream, GET).await;
        assert!(
            read_answers(&mut conn, &[stream]).await.is_some(),
            "stream {stream}, within the grace, was not answered"
        );
        assert_eq!(told.call().await, "/");
    }
    send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 9, GET).await;
    assert!(
        read_until(&mut conn, HEADERS, 0).await.is_none(),
        "answered"
    );
    let error = ended_by_rapid_reset(&mut told).await;
    assert!(
        error.contains("more than 2 streams after it was told to go away"),
        "{error}"
    );
    assert_eq!(told.more_calls(), 0, "the stream past the grace was served");
}

/// `GET http://a/held`, HPACK-coded without indexing.
const GET_HELD: &[u8] = &[
    0x82, 0x86, 0x04, 0x05, b'/', b'h', b'e', b'l', b'd', 0x01, 0x01, b'a',
];

#[tokio::test]
async fn streams_pipelined_behind_the_reset_that_trips_the_bound_are_served() {
    // A client whose calls time out in a burst (an upstream's incident)
    // has the next calls on the way behind the reset that went past the
    // bound, sent before it could read the GOAWAY: they are answered, and
    // so is the call it held open all along, before the connection ends;
    // with streams timed too, whose reads hand each stream over.
    let config = bound(4);
    let timed = ServerConfig {
        stream_idle_timeout: Some(Duration::from_secs(300)),
        ..config.clone()
    };
    for config in [config, timed] {
        pipelined_behind_the_tripping_reset(config).await;
    }
}

async fn pipelined_behind_the_tripping_reset(config: ServerConfig) {
    let (mut conn, mut told, _trigger) = raw_server(config).await;
    send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 1, GET_HELD).await;
    assert_eq!(told.call().await, HELD);
    for stream in [3, 5] {
        open_slow(&mut conn, &mut told, stream).await;
        let mut bytes = reset(stream);
        if stream == 5 {
            for pipelined in [7, 9, 11] {
                frame(
                    &mut bytes,
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    pipelined,
                    GET,
                );
            }
        } else {
            frame(&mut bytes, PING, 0, 0, &[0; 8]);
        }
        conn.write_all(&bytes).await.unwrap();
        if stream == 3 {
            read_until(&mut conn, PING, ACK).await.unwrap();
        }
    }
    let mut kinds = read_answers(&mut conn, &[7, 9, 11])
        .await
        .expect("the pipelined streams were not answered");
    for _ in 0..3 {
        assert_eq!(told.call().await, "/");
    }
    told.release.notify_one();
    kinds.extend(
        read_answers(&mut conn, &[1])
            .await
            .expect("the held call was not answered"),
    );
    assert!(kinds.contains(&GOAWAY), "not sent away: {kinds:?}");
    drop(conn);
    let error = ended_by_rapid_reset(&mut told).await;
    assert!(!error.contains("opened more"), "cut: {error}");
    assert_eq!(told.more_calls(), 0);
}

#[tokio::test]
async fn a_client_that_cancels_a_few_calls_among_many_keeps_its_connection() {
    // One call in four cancelled at once: never half of a run of ten,
    // though 25 in all, five times what one run allows.
    let config = bound(10);
    let (addr, mut told, _trigger) = server(config).await;
    let (mut send, mut pings) = connect(addr).await;
    for _ in 0..25 {
        for _ in 0..3 {
            assert_eq!(answered(&mut send, "/").await, StatusCode::OK);
            assert_eq!(told.call().await, "/");
        }
        assert!(
            open_and_reset(&mut send, &mut pings, &mut told)
                .await
                .is_some(),
            "went away"
        );
    }
    assert_eq!(answered(&mut send, "/").await, StatusCode::OK);
    assert!(told.errors.try_recv().is_err());
}

#[tokio::test]
async fn streams_reset_after_the_minimum_lifetime_do_not_count() {
    // Every stream reset, each once it has lived a second, by the paused
    // clock: 30 of them, where five within the second would end it.
    let config = bound(10);
    let (addr, mut told, _trigger) = server(config).await;
    let (mut send, mut pings) = connect(addr).await;
    for _ in 0..30 {
        let mut ready = send.clone().ready().await.unwrap();
        let (_response, mut stream) = ready.send_request(get(SLOW), true).unwrap();
        assert_eq!(told.call().await, SLOW);
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::time::resume();
        stream.send_reset(Reason::CANCEL);
        round_trips(&mut pings).await;
    }
    assert_eq!(answered(&mut send, "/").await, StatusCode::OK);
    assert!(told.errors.try_recv().is_err());
}

#[tokio::test]
async fn with_the_bound_off_a_paced_flood_is_served_as_before() {
    for total in [None, Some(0)] {
        let config = ServerConfig {
            http2_premature_reset_total_streams: total,
            ..ServerConfig::default()
        };
        let (addr, mut told, _trigger) = server(config).await;
        let (mut send, mut pings) = connect(addr).await;
        let most = HTTP2_PREMATURE_RESET_TOTAL_STREAMS as usize;
        assert_eq!(flood(&mut send, &mut pings, &mut told, most).await, most);
        assert_eq!(answered(&mut send, "/").await, StatusCode::OK);
        assert!(told.errors.try_recv().is_err());
    }
    // A lifetime of zero counts no reset.
    let config = ServerConfig {
        http2_premature_reset_min_stream_lifetime: Duration::ZERO,
        ..bound(10)
    };
    let (addr, mut told, _trigger) = server(config).await;
    let (mut send, mut pings) = connect(addr).await;
    assert_eq!(flood(&mut send, &mut pings, &mut told, 50).await, 50);
}

/// A request head h2 refuses as malformed (no `:scheme`, no `:path`): it
/// resets the stream itself, and the service is never called for it.
const MALFORMED: &[u8] = &[0x82];

/// `GET http://a/slow`, HPACK-coded without indexing.
const GET_SLOW: &[u8] = &[
    0x82, 0x86, 0x04, 0x05, b'/', b's', b'l', b'o', b'w', 0x01, 0x01, b'a',
];

#[tokio::test]
async fn streams_h2_refuses_do_not_dilute_a_paced_flood() {
    // Two malformed heads before each stream of the flood: h2 refuses
    // them, which costs it a decode and the client nothing. Counted as
    // streams of the run, they would keep the flood's resets under half
    // of every run; only streams served count.
    let config = bound(10);
    let (mut conn, mut told, _trigger) = raw_server(config).await;
    let mut stream = 1;
    let mut served = 0;
    'flood: for _ in 0..30 {
        let mut bytes = Vec::new();
        for _ in 0..2 {
            frame(
                &mut bytes,
                HEADERS,
                END_HEADERS | END_STREAM,
                stream,
                MALFORMED,
            );
            stream += 2;
        }
        frame(
            &mut bytes,
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            GET_SLOW,
        );
        if conn.write_all(&bytes).await.is_err() {
            break;
        }
        assert_eq!(told.call().await, SLOW);
        served += 1;
        let mut bytes = reset(stream);
        stream += 2;
        // Two round trips: a GOAWAY sent for the reset may follow the
        // answer to the first ping.
        for _ in 0..2 {
            frame(&mut bytes, PING, 0, 0, &[0; 8]);
            if conn.write_all(&bytes).await.is_err() {
                break 'flood;
            }
            bytes.clear();
            match read_until(&mut conn, PING, ACK).await {
                Some(kinds) if !kinds.contains(&GOAWAY) => {}
                _ => break 'flood,
            }
        }
    }
    assert_eq!(served, 5, "streams served before the GOAWAY");
    // The client hangs up without answering the GOAWAY's ping.
    drop(conn);
    ended_by_rapid_reset(&mut told).await;
}

/// How the server tells the connection ended, within the test's bound.
async fn ended(told: &mut Told) -> (ConnectionErrorKind, String, bool) {
    within(told.errors.recv(), "no connection error")
        .await
        .unwrap()
}

#[tokio::test]
async fn the_streams_open_when_a_flood_is_sent_away_are_answered_in_full() {
    // A call still running when the client goes past the bound is
    // answered before the connection closes, as in a graceful shutdown.
    let config = bound(10);
    let (addr, mut told, _trigger) = server(config).await;
    let (mut send, mut pings) = connect(addr).await;
    let mut ready = send.clone().ready().await.unwrap();
    let (held, _) = ready.send_request(get(HELD), true).unwrap();
    assert_eq!(told.call().await, HELD);
    assert_eq!(flood(&mut send, &mut pings, &mut told, 10).await, 5);
    let error = send.clone().ready().await.err().unwrap();
    assert!(error.is_go_away(), "{error}");
    assert!(told.errors.try_recv().is_err(), "closed with a call open");
    told.release.notify_one();
    let response = within(held, "the held call was not answered")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    ended_by_rapid_reset(&mut told).await;
}

#[tokio::test]
async fn a_paced_flood_on_a_connection_alpn_settled_as_h2_is_sent_away_too() {
    // A TLS connection whose ALPN chose `h2` is read from its preface on,
    // as one whose HTTP/2 was detected (h2c with prior knowledge).
    let config = bound(10);
    let (addr, mut told, _trigger) = alpn_server(config, Some(HttpVersion::Http2)).await;
    let (mut send, mut pings) = connect(addr).await;
    assert_eq!(answered(&mut send, "/").await, StatusCode::OK);
    assert_eq!(told.call().await, "/");
    assert_eq!(flood(&mut send, &mut pings, &mut told, 10).await, 5);
    ended_by_rapid_reset(&mut told).await;
}

#[tokio::test]
async fn a_flood_that_goes_silent_after_the_goaway_is_closed_at_the_keep_alive_timeout() {
    // The client neither answers the GOAWAY's ping nor closes: the
    // connection has no stream left, and ends when its keep-alive ping
    // goes unanswered, told of as a rapid reset all the same.
    let config = ServerConfig {
        http2_keep_alive_interval: Some(Duration::from_millis(100)),
        http2_keep_alive_timeout: Duration::from_millis(100),
        ..bound(4)
    };
    let (addr, mut told, _trigger) = alpn_server(config, None).await;
    let mut conn = raw_connect(addr).await;
    for stream in [1, 3] {
        open_slow(&mut conn, &mut told, stream).await;
        let mut bytes = reset(stream);
        frame(&mut bytes, PING, 0, 0, &[0; 8]);
        conn.write_all(&bytes).await.unwrap();
        read_until(&mut conn, PING, ACK).await.unwrap();
    }
    let error = ended_by_rapid_reset(&mut told).await;
    assert!(error.contains("keep-alive timed out"), "its cause: {error}");
    drop(conn);
}

#[tokio::test]
async fn streams_sent_right_behind_the_last_reset_are_not_said_to_come_after_the_goaway() {
    // More streams than the grace arrive with the reset that went past
    // the bound, before any GOAWAY was sent: the connection is cut all
    // the same, but the error does not blame the client for ignoring a
    // GOAWAY it never had.
    let config = ServerConfig {
        http2_max_concurrent_streams: 1,
        ..bound(4)
    };
    let (mut conn, mut told, _trigger) = raw_server(config).await;
    for stream in [1, 3] {
        open_slow(&mut conn, &mut told, stream).await;
        let mut bytes = reset(stream);
        if stream == 3 {
            frame(&mut bytes, HEADERS, END_HEADERS | END_STREAM, 5, GET);
            frame(&mut bytes, HEADERS, END_HEADERS | END_STREAM, 7, GET);
        }
        frame(&mut bytes, PING, 0, 0, &[0; 8]);
        conn.write_all(&bytes).await.unwrap();
        if stream == 1 {
            read_until(&mut conn, PING, ACK).await.unwrap();
        }
    }
    assert!(
        read_until(&mut conn, HEADERS, 0).await.is_none(),
        "answered"
    );
    let error = ended_by_rapid_reset(&mut told).await;
    assert!(!error.contains("after it was told"), "{error}");
    assert!(
        error.contains("more than 1 streams right behind, before it was told to go away"),
        "{error}"
    );
    assert_eq!(told.more_calls(), 0, "a stream right behind was served");
}

/// Reads one frame off `conn`: its kind, flags, stream and payload, or
/// `None` when the connection closed first.
async fn read_frame(conn: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    within(next_frame(conn), "neither a frame nor the end came").await
}

#[tokio::test]
async fn streams_opened_after_answering_the_goaways_ping_count_toward_the_grace() {
    // The client answers the ping sent with the GOAWAY, so h2 sends the
    // GOAWAY that names the last stream and ignores the streams above
    // it; the client, which has read the GOAWAY, opens some all the
    // same. They cost a decode and are never served, but they count:
    // past the grace the connection is cut, with the call it held open.
    let config = ServerConfig {
        http2_max_concurrent_streams: 2,
        ..bound(4)
    };
    let (mut conn, mut told, _trigger) = raw_server(config).await;
    send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 1, GET_HELD).await;
    assert_eq!(told.call().await, HELD);
    for stream in [3, 5] {
        open_slow(&mut conn, &mut told, stream).await;
        conn.write_all(&reset(stream)).await.unwrap();
    }
    // The first GOAWAY names no last stream; its ping is answered.
    let mut first = None;
    loop {
        let (kind, flags, _, payload) = read_frame(&mut conn).await.expect("closed");
        match kind {
            GOAWAY => first = Some(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            PING if flags & ACK == 0 => {
                assert!(first.is_some(), "a ping before the GOAWAY");
                let mut bytes = Vec::new();
                frame(&mut bytes, PING, ACK, 0, &payload);
                conn.write_all(&bytes).await.unwrap();
                break;
            }
            _ => {}
        }
    }
    assert_eq!(first, Some(0x7fff_ffff));
    let last = loop {
        let (kind, _, _, payload) = read_frame(&mut conn).await.expect("closed");
        if kind == GOAWAY {
            break u32::from_be_bytes(payload[..4].try_into().unwrap());
        }
    };
    assert_eq!(last, 5, "the second GOAWAY's last stream");
    // Within the grace: ignored by h2, neither served nor answered.
    let mut bytes = Vec::new();
    for stream in [7, 9] {
        frame(&mut bytes, HEADERS, END_HEADERS | END_STREAM, stream, GET);
    }
    frame(&mut bytes, PING, 0, 0, &[1; 8]);
    conn.write_all(&bytes).await.unwrap();
    let kinds = read_until(&mut conn, PING, ACK).await.expect("closed");
    assert!(!kinds.contains(&HEADERS), "answered: {kinds:?}");
    assert_eq!(told.more_calls(), 0, "an ignored stream was served");
    // Past it: cut, and the held call with it.
    send_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 11, GET).await;
    let (kind, error, io) = ended(&mut told).await;
    assert_eq!(kind, ConnectionErrorKind::Http(HttpVersion::Http2));
    assert!(io, "{error}");
    assert!(
        error.contains("more than 2 streams after it was told to go away"),
        "{error}"
    );
    assert!(
        read_until(&mut conn, HEADERS, 0).await.is_none(),
        "answered"
    );
    assert_eq!(told.more_calls(), 0);
}
