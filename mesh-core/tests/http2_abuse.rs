//! HTTP/2 abuse a server facing untrusted peers must survive: streams
//! opened and cancelled at once (rapid reset, CVE-2023-44487), streams the
//! server is made to reset (MadeYouReset, CVE-2025-8671), and header
//! blocks without end. Frames are written by hand, since no well-behaved
//! client sends them.
#![allow(clippy::unwrap_used)]

use crate::support::h2_frames;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    detect::H2_PREFACE,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use self::h2_frames::{
    CONTINUATION, END_HEADERS, END_STREAM, GET, GOAWAY, HEADERS, RST_STREAM, SETTINGS, frame,
};

const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A server whose requests never get an answer, so streams stay open.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        Server::new(ServerConfig::default())
            .serve_http(listener, http, signal)
            .await;
        drop(trigger);
    });
    addr
}

/// Opens a connection and sends the preface and empty SETTINGS.
async fn connect(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut open = H2_PREFACE.to_vec();
    frame(&mut open, SETTINGS, 0, 0, &[]);
    conn.write_all(&open).await.unwrap();
    conn
}

/// Reads frames until a GOAWAY, and returns its error code; `None` when
/// the connection ends without one.
async fn goaway(conn: &mut TcpStream) -> Option<u32> {
    loop {
        let mut head = [0; 9];
        conn.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.ok()?;
        if head[3] == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
}

/// What the server answers once it has read what was sent: the GOAWAY's
/// error code, by the paused clock, so that a server that keeps reading
/// meets its keep-alive timeout and ends without one.
async fn answer(conn: &mut TcpStream) -> Option<u32> {
    tokio::time::pause();
    let code = tokio::time::timeout(Duration::from_secs(3600), goaway(conn))
        .await
        .unwrap_or(None);
    tokio::time::resume();
    code
}

#[tokio::test]
async fn a_rapid_reset_flood_is_answered_with_goaway() {
    let mut conn = connect(server().await).await;
    let mut flood = Vec::new();
    for i in 0..1000u32 {
        let stream = 2 * i + 1;
        frame(&mut flood, HEADERS, END_HEADERS | END_STREAM, stream, GET);
        frame(&mut flood, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
    }
    // The server may close while the flood is still being written.
    let _ = conn.write_all(&flood).await;
    let code = answer(&mut conn).await;
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
}

#[tokio::test]
async fn an_endless_header_block_is_answered_with_goaway() {
    // CONTINUATION flood (VU#421644): a HEADERS frame without END_HEADERS,
    // then CONTINUATION frames for ever, each one small and valid. The
    // server must give up after a bounded number of frames rather than
    // buffer and decode until the peer stops.
    let mut conn = connect(server().await).await;
    let mut flood = Vec::new();
    frame(&mut flood, HEADERS, END_STREAM, 1, GET);
    // `x: <1000 bytes>`, a literal without indexing; 1000 is coded as an
    // HPACK integer past its 7-bit prefix: 127, then 873 in 7-bit groups.
    let mut field = vec![
        0x00,
        0x01,
        b'x',
        0x7f,
        0x80 | (873 % 128) as u8,
        (873 / 128) as u8,
    ];
    field.extend_from_slice(&[b'v'; 1000]);
    for _ in 0..1000 {
        frame(&mut flood, CONTINUATION, 0, 1, &field);
    }
    let _ = conn.write_all(&flood).await;
    let code = answer(&mut conn).await;
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
}

#[tokio::test]
async fn streams_the_server_must_reset_are_answered_with_goaway() {
    // MadeYouReset (CVE-2025-8671): rather than cancel its streams, the
    // peer makes the server reset them, here with requests that lack
    // their `:path` (malformed, a stream error: RFC 9113 §8.1.1). The
    // server must stop after a bounded number of such resets.
    let mut conn = connect(server().await).await;
    let mut flood = Vec::new();
    for i in 0..2000u32 {
        frame(
            &mut flood,
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * i + 1,
            &GET[..2],
        );
    }
    let _ = conn.write_all(&flood).await;
    assert_eq!(answer(&mut conn).await, Some(ENHANCE_YOUR_CALM));
}
