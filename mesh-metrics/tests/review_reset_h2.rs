//! An upstream that resets its HTTP/2 stream mid-body fails the request
//! as a reset, in `response_total` (`error="reset"`) and in a tap's end
//! event alike: hyper hands the reset on as h2's error, which mesh-core's
//! `ErrorKind` reads.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_metrics::{
    Direction, HttpMetrics, MetricsLayer,
    tap::{Tap, TapEventKind, TapFilter, TapLayer},
};
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{Layer, ServiceExt, service_fn};

use crate::http_review_counting::scrape;

/// One HTTP/2 frame (RFC 9113 §4.1) on stream `stream`.
pub(crate) fn frame(kind: u8, flags: u8, stream: u8, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap();
    let mut frame = vec![0, 0, len, kind, flags, 0, 0, 0, stream];
    frame.extend_from_slice(payload);
    frame
}

/// HEADERS, END_HEADERS, on stream 1: `:status: 200` (static index 8) and
/// `content-length: 10` (a literal with the name of static index 28).
pub(crate) fn head_of_ten_bytes() -> Vec<u8> {
    frame(1, 4, 1, &[0x88, 0x0f, 0x0d, 0x02, b'1', b'0'])
}

/// DATA on stream 1: `hello`, 5 of the 10 bytes the head declares.
pub(crate) fn half_body() -> Vec<u8> {
    frame(0, 0, 1, b"hello")
}

/// RST_STREAM on stream 1 with error code `code`.
pub(crate) fn rst_stream(code: u8) -> Vec<u8> {
    frame(3, 0, 1, &[0, 0, 0, code])
}

/// An HTTP/2 upstream written frame by frame, so that it can end a stream
/// as a real server may: it answers the request on stream 1 with
/// `answer`, and keeps the connection open until the client closes it.
pub(crate) async fn raw_h2_upstream(answer: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        tcp.write_all(&frame(4, 0, 0, &[])).await.unwrap();
        loop {
            let mut head = [0; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            tcp.read_exact(&mut payload).await.unwrap();
            match head[3] {
                // SETTINGS, not an ACK: acknowledge it.
                4 if head[4] & 1 == 0 => tcp.write_all(&frame(4, 1, 0, &[])).await.unwrap(),
                // The request's HEADERS on stream 1.
                1 => break,
                _ => {}
            }
        }
        tcp.write_all(&answer).await.unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

/// An HTTP/2 client connection to `addr`.
pub(crate) async fn h2_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn an_upstream_reset_mid_body_is_counted_and_tapped_as_a_reset() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let tap = Tap::new();
    let mut events = tap.subscribe(TapFilter::default()).unwrap();
    // RST_STREAM(INTERNAL_ERROR) after half the body.
    let addr = raw_h2_upstream([head_of_ten_bytes(), half_body(), rst_stream(2)].concat()).await;
    let sender = h2_client(addr).await;
    let upstream = service_fn(move |req| {
        let mut sender = sender.clone();
        async move { sender.send_request(req).await }
    });
    let outbound = TapLayer::new(&tap, Direction::Outbound)
        .layer(MetricsLayer::outbound(&metrics).layer(upstream));
    let req = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    let res = outbound.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.into_body().collect().await.is_err());

    let text = scrape(&registry);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("response_total{"))
        .collect();
    assert_eq!(
        lines,
        [
            r#"response_total{direction="outbound",status_code="200",classification="failure",error="reset"} 1"#
        ],
        "{text}"
    );
    let mut end = None;
    while end.is_none() {
        let event = events.next().await.unwrap();
        if let TapEventKind::End { error, .. } = event.kind {
            end = Some(error);
        }
    }
    assert_eq!(end, Some(Some("reset".to_owned())));
}
