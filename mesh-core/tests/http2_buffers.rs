//! How much of its responses the server holds in memory for an HTTP/2
//! client that reads slowly. A client that grants the largest flow-control
//! windows and then reads its socket at a trickle (enough that the write
//! stall bound never fires) lets every stream's response queue up in the
//! server, to the send buffer each stream is allowed. With hyper's
//! default of about 400 KiB per stream, the 200 streams a connection may
//! open pinned some 80 MiB for each such connection, at a cost to the
//! client of a few bytes a minute.
#![allow(clippy::unwrap_used)]

use crate::support::h2_frames;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    detect::H2_PREFACE,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpSocket},
};

use self::h2_frames::{END_HEADERS, END_STREAM, GET, HEADERS, SETTINGS, WINDOW_UPDATE, frame};

const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// How many streams the client opens: hyper's default concurrency.
const STREAMS: u32 = 200;

/// An endless response body of 16 KiB chunks that counts what it gives.
struct Endless(Arc<AtomicUsize>);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 16 * 1024] = [b'x'; 16 * 1024];
        self.0.fetch_add(CHUNK.len(), Ordering::Relaxed);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

async fn server(produced: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(move |_: Request<Incoming>| {
        let body = Endless(produced.clone());
        async move { Ok::<_, Infallible>(Response::new(body)) }
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

#[tokio::test]
async fn a_slow_reader_pins_little_of_its_responses() {
    let produced = Arc::new(AtomicUsize::new(0));
    let addr = server(produced.clone()).await;
    // A small receive buffer, so that the kernel holds little of what the
    // server sends: what the bodies gave beyond it waits in the server.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    let mut open = H2_PREFACE.to_vec();
    let mut settings = Vec::new();
    settings.extend_from_slice(&INITIAL_WINDOW_SIZE.to_be_bytes());
    settings.extend_from_slice(&MAX_WINDOW.to_be_bytes());
    frame(&mut open, SETTINGS, 0, 0, &settings);
    let grant = MAX_WINDOW - 65_535;
    frame(&mut open, WINDOW_UPDATE, 0, 0, &grant.to_be_bytes());
    for i in 0..STREAMS {
        frame(&mut open, HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, GET);
    }
    conn.write_all(&open).await.unwrap();

    // The paused clock moves once the runtime is idle: once every body
    // waits for the server's writes, which wait for this client.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::time::resume();
    let held = produced.load(Ordering::Relaxed);
    // A bound per stream of 64 KiB, and the chunk that went over it,
    // holds 200 * 80 KiB = 16 MiB; the socket buffers hold some more
    // (2.3 MiB here; 8 MiB allowed, as kernels differ). Before the bound,
    // 84 MiB.
    let bound = STREAMS as usize * 80 * 1024 + 8 * 1024 * 1024;
    assert!(held <= bound, "{} KiB held", held / 1024);
    drop(conn);
}
