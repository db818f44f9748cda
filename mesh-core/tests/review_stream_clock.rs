//! `ServerConfig::stream_idle_timeout` on an HTTP/2 response whose last
//! `DATA` frame is its only one (a `Full` body, the commonest; a gRPC
//! unary answer, whose trailers hyper sends without waiting for window):
//! hyper hands that frame to h2 as soon as the stream has a byte of
//! window, and its task ends; h2 then holds what the client's window does
//! not let through, and the stream, for as long as the connection lives.
//! The stream's task is gone, so nothing resets it: the tests that say it
//! should, as it is for a body of many frames
//! (`serve_flow_control_stall.rs`), are ignored until h2 gives a way to
//! (a send timeout, or a reset of a stream whose end it still holds). A
//! client that reads such a body gets it whole, and an empty body still
//! ends with its head.
//!
//! The client is h2's own, whose windows open only as the test releases
//! what it read. The clock is paused once the response head is in; a
//! step that must move bytes runs in real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::paused_clock::{DropGuard, h2_client, h2_get, in_real_time, serve_timed};

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::{sync::mpsc, time::Instant};

const TIMEOUT: Duration = Duration::from_secs(25);
/// The one frame of a response: h2's default largest frame.
const CHUNK: usize = 16 * 1024;

/// A response body of at most one `DATA` frame, ended once that frame
/// (and its trailers, when any) are taken, as a `Full` body or a gRPC
/// unary answer is; holds a guard until it is dropped.
struct OneFrame {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    _guard: DropGuard,
}

impl Body for OneFrame {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(data) => Some(Frame::data(data)),
            None => self.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = self.data.as_ref().map_or(0, Bytes::len);
        SizeHint::with_exact(u64::try_from(len).unwrap())
    }
}

/// A server whose every response is one frame of `len` bytes, then
/// `grpc-status: 0` trailers when `trailers`; reports when each body is
/// dropped.
async fn server(len: usize, trailers: bool) -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let app = tower::service_fn(move |_: Request<Incoming>| {
        let body = OneFrame {
            data: (len > 0).then(|| Bytes::from(vec![b'x'; len])),
            trailers: trailers.then(|| {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers
            }),
            _guard: DropGuard(dropped_tx.clone()),
        };
        async move { Ok::<_, Infallible>(Response::new(body)) }
    });
    let addr = serve_timed(Some(TIMEOUT), app).await;
    (addr, dropped)
}

/// A client that grants `window` bytes and never opens its window: its
/// stream is reset one timeout after the head, and it never sees a
/// complete body.
async fn reset_after_the_timeout(window: u32, trailers: bool) {
    let (addr, _dropped) = server(CHUNK, trailers).await;
    let mut send = h2_client(addr, window).await;
    let mut body = h2_get(&mut send, "http://a/one").await;
    tokio::time::pause();
    tokio::time::sleep(TIMEOUT + Duration::from_secs(5)).await;
    // Held by h2, the stream would not end: the step fails after ten
    // seconds.
    let err = in_real_time(async {
        let mut got = 0;
        loop {
            match body.data().await {
                Some(Ok(data)) => {
                    got += data.len();
                    assert!(got <= window as usize, "more than the window");
                }
                Some(Err(err)) => return err,
                None => panic!("the body ended as if complete"),
            }
        }
    })
    .await;
    assert!(err.is_reset(), "{err}");
}

#[tokio::test]
#[ignore = "h2 holds a stream whose last frame hyper handed it: ending it needs a hook in h2"]
async fn a_one_frame_body_its_client_grants_one_byte_of_is_reset_after_the_timeout() {
    reset_after_the_timeout(1, false).await;
}

#[tokio::test]
#[ignore = "h2 holds a stream whose last frame hyper handed it: ending it needs a hook in h2"]
async fn a_one_frame_body_its_client_stops_reading_is_reset_after_the_timeout() {
    // Half the frame goes; the client never opens its window again.
    reset_after_the_timeout(CHUNK as u32 / 2, false).await;
}

#[tokio::test]
#[ignore = "h2 holds a stream whose last frame hyper handed it: ending it needs a hook in h2"]
async fn a_grpc_answer_its_client_grants_one_byte_of_is_reset_after_the_timeout() {
    // One message and the trailers: hyper sends trailers without
    // waiting for window.
    reset_after_the_timeout(1, true).await;
}

#[tokio::test]
async fn a_one_frame_body_its_client_reads_is_served_whole_and_ended() {
    // A window of exactly the body: its end waits for the client to
    // open the window again, as the client does once it read the body.
    let (addr, mut dropped) = server(CHUNK, false).await;
    let mut send = h2_client(addr, CHUNK as u32).await;
    let mut body = h2_get(&mut send, "http://a/one").await;
    let mut got = 0;
    while let Some(data) = body.data().await {
        let data = data.unwrap();
        got += data.len();
        body.flow_control().release_capacity(data.len()).unwrap();
    }
    assert_eq!(got, CHUNK);
    assert!(body.is_end_stream());
    dropped.recv().await.unwrap();
}

#[tokio::test]
async fn an_empty_body_still_ends_with_its_head() {
    let (addr, _dropped) = server(0, false).await;
    let mut send = h2_client(addr, 0).await;
    let body = h2_get(&mut send, "http://a/one").await;
    assert!(body.is_end_stream(), "the end of an empty body held back");
}
