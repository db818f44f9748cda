//! `ServerConfig::stream_idle_timeout` on an HTTP/2 stream its client's
//! flow control holds: a client that grants a window of no byte (or one),
//! and never opens it, leaves hyper waiting for send window with the
//! response body unpolled, while the socket stays writable. The stream is
//! reset after the timeout all the same, and the service's body dropped;
//! a client that reads slowly, opening its window more often than the
//! timeout, is served whole.
//!
//! The client is h2's own, whose windows open only as the test releases
//! what it read. The clock is paused once the response head is in (see
//! `stream_idle.rs`); a step that must move bytes runs in real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::paused_clock::{
    DropGuard, about, h2_client, h2_get, in_real_time, serve_timed,
};

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use tokio::{sync::mpsc, time::Instant};

type Body = UnsyncBoxBody<Bytes, Infallible>;

const TIMEOUT: Duration = Duration::from_secs(25);
const STEP: Duration = Duration::from_secs(20);
/// One frame of the response: h2's default largest frame.
const CHUNK: usize = 16 * 1024;
/// The frames of a response: more than any window the tests grant.
const CHUNKS: usize = 4;

/// `CHUNKS` frames of `CHUNK` bytes, all ready at once, holding `guard`
/// until the body is dropped.
fn big(guard: DropGuard) -> Body {
    let frames = futures_util::stream::unfold((0, guard), |(i, guard)| async move {
        (i < CHUNKS).then(|| {
            (
                Ok(Frame::data(Bytes::from(vec![b'x'; CHUNK]))),
                (i + 1, guard),
            )
        })
    });
    http_body_util::BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// A server whose every response is `big`; reports when each body is
/// dropped.
async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let app = tower::service_fn(move |_: Request<Incoming>| {
        let guard = DropGuard(dropped_tx.clone());
        async move { Ok::<_, Infallible>(Response::new(big(guard))) }
    });
    let addr = serve_timed(Some(TIMEOUT), app).await;
    (addr, dropped)
}

/// A client that grants `window` bytes and never opens its window: the
/// stream is reset, and the body dropped, one timeout after the head.
async fn a_window_never_opened_is_reset(window: u32) {
    let (addr, mut dropped) = server().await;
    let mut send = h2_client(addr, window).await;
    let mut body = h2_get(&mut send, "http://a/big").await;
    tokio::time::pause();
    let start = Instant::now();
    let at = tokio::time::timeout(Duration::from_secs(3600), dropped.recv())
        .await
        .expect("the response body still held after an hour")
        .unwrap();
    about(at - start, TIMEOUT);
    // The client sees its stream reset, never a complete body. The bytes
    // its window let through come first.
    let err = in_real_time(async {
        loop {
            match body.data().await {
                Some(Ok(data)) => assert!(data.len() <= window as usize),
                Some(Err(err)) => return err,
                None => panic!("the body ended as if complete"),
            }
        }
    })
    .await;
    assert!(err.is_reset(), "{err}");
}

#[tokio::test]
async fn a_stream_whose_client_grants_no_window_is_reset_after_the_timeout() {
    a_window_never_opened_is_reset(0).await;
}

#[tokio::test]
async fn a_stream_whose_client_grants_one_byte_is_reset_after_the_timeout() {
    a_window_never_opened_is_reset(1).await;
}

#[tokio::test]
async fn a_client_that_opens_its_window_more_often_than_the_timeout_is_served_whole() {
    let (addr, mut dropped) = server().await;
    let mut send = h2_client(addr, CHUNK as u32).await;
    let mut body = h2_get(&mut send, "http://a/big").await;
    // The first frame fills the window.
    let mut last = body.data().await.unwrap().unwrap().len();
    let mut got = last;
    tokio::time::pause();
    // Then one frame's window at a time, every 20 s: slower in all than
    // the timeout, never as slow within one wait. Each step ends with
    // the frame it let through, so the server has had the window.
    while got < CHUNK * CHUNKS {
        tokio::time::sleep(STEP).await;
        last = in_real_time(async {
            body.flow_control().release_capacity(last).unwrap();
            body.data().await.unwrap().unwrap().len()
        })
        .await;
        got += last;
    }
    assert_eq!(got, CHUNK * CHUNKS);
    // The end of the stream (hyper ends it with an empty frame).
    in_real_time(async {
        while let Some(data) = body.data().await {
            assert_eq!(data.unwrap(), "");
        }
    })
    .await;
    assert!(dropped.try_recv().is_ok());
}
