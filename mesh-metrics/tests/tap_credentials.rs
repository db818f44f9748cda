//! Credentials a client writes into a request's URI (`http://user:pass@host/`,
//! which hyper takes in an HTTP/1 request target) are not shown to those
//! who tap the proxy: a tap is for seeing which requests went where, not
//! with whose password.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use mesh_metrics::{
    Direction,
    tap::{Tap, TapEvent, TapEventKind, TapFilter, TapLayer},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, service_fn};

/// Sends `head` to a hyper HTTP/1 server whose requests `direction`'s
/// tap sees, and returns the events of the one request.
async fn tapped(direction: Direction, head: &str) -> Vec<TapEvent> {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let svc = TapLayer::new(&tap, direction).layer(service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .await
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    server.await.unwrap().unwrap();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(sub.next().await.unwrap());
    }
    events
}

#[tokio::test]
async fn userinfo_in_a_request_target_is_not_shown_to_a_tap() {
    for direction in [Direction::Inbound, Direction::Outbound] {
        let events = tapped(
            direction,
            "GET http://alice:s3cr3t@web.emojivoto:8080/api HTTP/1.1\r\n\
             host: web.emojivoto:8080\r\nconnection: close\r\n\r\n",
        )
        .await;
        for event in &events {
            let shown = format!("{event} {}", event.to_json());
            assert!(!shown.contains("s3cr3t"), "{direction:?}: {shown}");
            assert!(!shown.contains("alice"), "{direction:?}: {shown}");
        }
        let TapEventKind::Req { authority, .. } = &events[0].kind else {
            panic!("{events:?}");
        };
        assert_eq!(authority, "web.emojivoto:8080");
        if direction == Direction::Outbound {
            assert_eq!(events[0].dst, "web.emojivoto:8080");
        }
    }
}
