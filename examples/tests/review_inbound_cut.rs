//! An application that closes its connection in the middle of a response,
//! behind an inbound port: the caller must see the response cut short (an
//! HTTP/1 connection closed before the body's end, an HTTP/2 stream
//! reset), never a complete-looking one, and the request is counted as a
//! failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// An HTTP/1.1 application that answers every request with a head that
/// promises ten bytes, sends five and closes.
async fn cutting_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_response_the_application_cuts_short_is_cut_short_for_the_caller() {
    let app = cutting_app().await;
    let sidecar = support::plain_inbound(app);
    let inbound = sidecar.inbound[0];
    for version in [Version::HTTP_11, Version::HTTP_2] {
        // The HTTP/2 request is one a peer sidecar carried for an
        // HTTP/1.1 caller, as the application speaks HTTP/1.1 only.
        let mut req = Request::get(format!("http://emoji/cut-{version:?}")).version(version);
        if version == Version::HTTP_2 {
            req = req.header("mesh-orig-proto", "HTTP/1.1");
        }
        let req = req.body(support::full("")).unwrap();
        let res = if version == Version::HTTP_2 {
            support::h2_via(inbound, req).await.unwrap()
        } else {
            let tcp = tokio::net::TcpStream::connect(inbound).await.unwrap();
            let (mut h1, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            h1.send_request(req).await.unwrap()
        };
        assert_eq!(res.status(), StatusCode::OK, "{version:?}");
        let body = tokio::time::timeout(support::WAIT_BOUND, res.into_body().collect())
            .await
            .expect("the body never ended");
        assert!(body.is_err(), "{version:?}: a cut body read as whole");
    }
    let metrics = support::scrape_until(sidecar.admin, |m| {
        support::series(m, "response_total", &["direction=\"inbound\""]) >= 2
    })
    .await;
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("response_total{") || l.starts_with("inbound_http_errors"))
        .collect();
    assert_eq!(
        support::series(
            &metrics,
            "response_total",
            &["direction=\"inbound\"", "classification=\"success\""]
        ),
        0,
        "{}",
        lines.join("\n")
    );
    support::stop(sidecar).await;
}
