//! What detection leaves with a connection it hands on: every byte it
//! read, replayed once, however the peer cut them into reads, and, once
//! they are read, not the buffer that held them.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::{
    detect::{Detected, detect},
    io::PrefixedIo,
    serve::{OpaqueConnection, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// Bytes that say when they are let go.
struct Tracked {
    bytes: Vec<u8>,
    freed: Arc<AtomicBool>,
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn replayed_bytes_are_let_go_once_read() {
    // Detection's buffer (a kibibyte at least, 16 KiB and more behind a
    // long request line) would otherwise stay with the connection for as
    // long as it is open: an opaque pipe, or a keep-alive connection, for
    // hours.
    let freed = Arc::new(AtomicBool::new(false));
    let prefix = Bytes::from_owner(Tracked {
        bytes: b"GET / HTTP/1.1\r\n".to_vec(),
        freed: freed.clone(),
    });
    let (mut peer, conn) = tokio::io::duplex(64);
    let mut io = PrefixedIo::new(prefix, conn);
    // Taken in two reads: the first leaves some to replay.
    let mut head = [0; 10];
    io.read_exact(&mut head).await.unwrap();
    assert!(!freed.load(Ordering::SeqCst), "bytes still to replay");
    let mut tail = [0; 6];
    io.read_exact(&mut tail).await.unwrap();
    assert_eq!([&head[..], &tail[..]].concat(), b"GET / HTTP/1.1\r\n");
    assert!(
        freed.load(Ordering::SeqCst),
        "the replayed bytes' buffer is held after they were all read"
    );
    // The stream goes on.
    peer.write_all(b"host: a\r\n").await.unwrap();
    drop(peer);
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"host: a\r\n");
}

#[tokio::test]
async fn a_request_sent_a_byte_at_a_time_is_replayed_whole_and_once() {
    // Each byte is a read of its own; detection decides at the line's end
    // and hands on every byte it read, then the stream where it stopped.
    let request = b"\r\nGET /a?b=c HTTP/1.1\r\nhost: a\r\n\r\n";
    let (mut peer, conn) = tokio::io::duplex(1);
    let writer = tokio::spawn(async move {
        for byte in request {
            peer.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let (detected, mut io) = detect(conn, Duration::from_secs(10)).await.unwrap();
    assert_eq!(detected, Some(Detected::Http1));
    let mut got = Vec::new();
    io.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got, request);
}

/// A detecting server: HTTP requests are answered with their target's
/// length and their body; opaque connections are echoed.
async fn echo_server() -> (
    std::net::SocketAddr,
    shutdown::ShutdownTrigger,
    JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        let target = req.uri().path().len();
        let body = req.into_body().collect().await?.to_bytes();
        let answer = format!("{target} {}", String::from_utf8_lossy(&body));
        Ok::<_, hyper::Error>(Response::new(mesh_core::body::full(answer)))
    });
    let echo = tower::service_fn(|conn: OpaqueConnection| async move {
        let (mut read, mut write) = tokio::io::split(conn.io);
        tokio::io::copy(&mut read, &mut write).await?;
        write.shutdown().await
    });
    let (trigger, signal) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve(listener, http, echo, signal));
    (addr, trigger, server)
}

/// Sends `bytes` in writes of `chunk` bytes, half-closes when `fin` (an
/// HTTP/1 request is not: hyper takes a half-close for a client that
/// left), and reads the answer to its end.
async fn send_in_chunks(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    chunk: usize,
    fin: bool,
) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let (mut read, mut write) = conn.split();
    let sending = async {
        for piece in bytes.chunks(chunk) {
            write.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        if fin {
            write.shutdown().await.unwrap();
        }
    };
    let mut got = Vec::new();
    let ((), read) = tokio::join!(sending, read.read_to_end(&mut got));
    read.unwrap();
    got
}

#[tokio::test]
async fn bytes_past_detections_buffer_reach_the_handlers_whole_and_once() {
    // A request line longer than detection's first buffer and than
    // hyper's first read, and an opaque stream of the same length, cut
    // into reads of every size from one byte up.
    let (addr, trigger, server) = echo_server().await;
    let target = format!("/{}", "a".repeat(12 * 1024));
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
    );
    let opaque: Vec<u8> = (0..request.len()).map(|i| (i % 251) as u8).collect();
    for chunk in [1, 7, 1000, 5000, request.len()] {
        let answer = send_in_chunks(addr, request.as_bytes(), chunk, false).await;
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{chunk}: {answer:?}"
        );
        assert!(
            answer.ends_with(&format!("\r\n\r\n{} hello", target.len())),
            "{chunk}: {answer:?}"
        );
        assert_eq!(
            send_in_chunks(addr, &opaque, chunk, true).await,
            opaque,
            "{chunk}"
        );
    }
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn vectored_writes_and_a_half_close_go_through_as_the_stream_takes_them() {
    // hyper gathers a response's head and body into one vectored write
    // when the stream says it takes them; a wrapper that hid it would cost
    // a copy of every body.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (peer, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let (mut peer, conn) = (peer.unwrap(), accepted.unwrap().0);
    let mut io = PrefixedIo::new(Bytes::from_static(b"GET"), conn);
    assert!(io.is_write_vectored());
    let slices = [
        std::io::IoSlice::new(b"head "),
        std::io::IoSlice::new(b"and "),
        std::io::IoSlice::new(b"body"),
    ];
    // Thirteen bytes to an empty socket: written whole.
    assert_eq!(io.write_vectored(&slices).await.unwrap(), 13);
    io.shutdown().await.unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"head and body");
    // The other direction is still open: the replayed bytes, then the
    // peer's.
    peer.write_all(b" /").await.unwrap();
    drop(peer);
    let mut read = Vec::new();
    io.read_to_end(&mut read).await.unwrap();
    assert_eq!(read, b"GET /");
}

#[tokio::test]
async fn a_peer_that_ends_its_side_before_a_byte_is_closed_not_forwarded() {
    // Unlike Linkerd, which forwards it as TCP: see the `detect` module
    // docs. The opaque handler, which would greet it, never sees it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let greeted = Arc::new(AtomicBool::new(false));
    let opaque = {
        let greeted = greeted.clone();
        tower::service_fn(move |mut conn: OpaqueConnection| {
            greeted.store(true, Ordering::SeqCst);
            async move { conn.io.write_all(b"220 ready\r\n").await }
        })
    };
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
    });
    let (trigger, signal) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve(listener, http, opaque, signal));
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(!greeted.load(Ordering::SeqCst));
    trigger.trigger();
    server.await.unwrap();
}
