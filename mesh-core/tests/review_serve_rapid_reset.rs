//! Rapid reset (CVE-2023-44487) with the stream idle timeout on.
//!
//! h2 bounds a flood of streams opened and reset at once by counting the
//! streams reset before the server took them: past 20 it answers GOAWAY
//! `ENHANCE_YOUR_CALM`, and none of them reaches the service. Timing
//! streams by their own request data makes the reads hand each stream to
//! its request before the frames after it are read, so h2 never finds a
//! reset stream waiting; the reads bound such a burst themselves.
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

use self::h2_frames::{END_HEADERS, END_STREAM, GET, HEADERS, RST_STREAM, SETTINGS, frame};

const CANCEL: u32 = 0x8;

/// A server whose requests never get an answer, counting them.
async fn server(config: ServerConfig, calls: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(move |_: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
        }
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        Server::new(config).serve_http(listener, http, signal).await;
        drop(trigger);
    });
    addr
}

/// Sends 1000 streams, each reset as it is opened, with `flags` on their
/// HEADERS; reads until the server closes the connection, by the paused
/// clock within an hour: how many reached the service.
async fn flood(config: ServerConfig, flags: u8) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = server(config, calls.clone()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut bytes = H2_PREFACE.to_vec();
    frame(&mut bytes, SETTINGS, 0, 0, &[]);
    for i in 0..1000u32 {
        let stream = 2 * i + 1;
        frame(&mut bytes, HEADERS, flags, stream, GET);
        frame(&mut bytes, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
    }
    // The server may close while the flood is still being written.
    let _ = conn.write_all(&bytes).await;
    tokio::time::pause();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut sink)).await;
    tokio::time::resume();
    assert!(closed.is_ok(), "the connection is still open");
    calls.load(Ordering::SeqCst)
}

fn timed() -> ServerConfig {
    ServerConfig {
        stream_idle_timeout: Some(Duration::from_secs(300)),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_rapid_reset_flood_is_bounded_with_streams_timed() {
    // Without the timeout, h2 refuses the flood before any stream is
    // served; with it, at most the streams h2 would have let wait.
    assert_eq!(
        flood(ServerConfig::default(), END_HEADERS | END_STREAM).await,
        0
    );
    for flags in [END_HEADERS | END_STREAM, END_HEADERS] {
        let calls = flood(timed(), flags).await;
        assert!(calls <= 21, "{calls} of 1000 reset streams served");
    }
}

#[tokio::test]
async fn streams_reset_a_few_at_a_time_are_still_served() {
    // A client that cancels some of its requests as it sends them, fewer
    // than h2 lets wait, keeps its connection.
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = server(timed(), calls.clone()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut bytes = H2_PREFACE.to_vec();
    frame(&mut bytes, SETTINGS, 0, 0, &[]);
    for i in 0..10u32 {
        let stream = 2 * i + 1;
        frame(&mut bytes, HEADERS, END_HEADERS | END_STREAM, stream, GET);
        frame(&mut bytes, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
    }
    // And one more, left open.
    frame(&mut bytes, HEADERS, END_HEADERS | END_STREAM, 21, GET);
    conn.write_all(&bytes).await.unwrap();
    while calls.load(Ordering::SeqCst) < 11 {
        tokio::task::yield_now().await;
    }
    // Still open, by the paused clock, until before its first ping.
    tokio::time::pause();
    let open = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(open);
    let mut buf = [0; 64];
    loop {
        tokio::select! {
            n = conn.read(&mut buf) => assert!(n.unwrap() > 0, "closed"),
            () = &mut open => break,
        }
    }
    tokio::time::resume();
}
