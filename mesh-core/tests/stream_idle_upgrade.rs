//! `ServerConfig::stream_idle_timeout` and requests that ask for an
//! upgrade. An upgraded connection is a tunnel, not a stream, and is not
//! timed; but asking is not upgrading: any client may add an `Upgrade`
//! header, and a request whose answer is not `101` is a stream like any
//! other, timed like any other.
//!
//! The clock is paused once the request is in, as in `stream_idle.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

const TIMEOUT: Duration = Duration::from_secs(25);

/// `/collect` answers once it has the request body, and reports each
/// byte it gets to `got`; `/ws` answers `101` and echoes what the
/// upgraded connection carries.
async fn app(
    mut req: Request<Incoming>,
    got: mpsc::UnboundedSender<usize>,
) -> Result<Response<UnsyncBoxBody<Bytes, Infallible>>, Infallible> {
    if req.uri().path() == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0; 64];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                io.write_all(&buf[..n]).await.unwrap();
            }
        });
        let mut res = Response::new(Empty::new().boxed_unsync());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        res.headers_mut()
            .insert(header::UPGRADE, "websocket".parse().unwrap());
        res.headers_mut()
            .insert(header::CONNECTION, "upgrade".parse().unwrap());
        return Ok(res);
    }
    let mut body = req.into_body();
    let mut n = 0;
    while let Some(Ok(frame)) = body.frame().await {
        n += frame.data_ref().map_or(0, Bytes::len);
        let _ = got.send(n);
    }
    Ok(Response::new(
        Full::new(Bytes::from(format!("got {n}"))).boxed_unsync(),
    ))
}

async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        stream_idle_timeout: Some(TIMEOUT),
        ..ServerConfig::default()
    };
    let (got_tx, got) = mpsc::unbounded_channel();
    let (trigger, signal) = shutdown::channel();
    let app = tower::service_fn(move |req| app(req, got_tx.clone()));
    tokio::spawn(async move {
        Server::new(config).serve_http(listener, app, signal).await;
        drop(trigger);
    });
    (addr, got)
}

#[tokio::test]
async fn a_request_that_asks_for_an_upgrade_and_goes_quiet_is_answered_408() {
    let (addr, mut got) = server().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // Taken before the server can arm its timer, which it does on the real
    // clock before this test pauses it: `lasted` cannot come out short.
    let start = Instant::now();
    conn.write_all(
        b"POST /collect HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
          content-length: 10\r\n\r\nx",
    )
    .await
    .unwrap();
    assert_eq!(got.recv().await, Some(1));
    tokio::time::pause();
    let mut text = Vec::new();
    tokio::time::timeout(Duration::from_secs(3600), conn.read_to_end(&mut text))
        .await
        .expect("still open after an hour")
        .unwrap();
    let lasted = start.elapsed();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        lasted >= TIMEOUT && lasted <= TIMEOUT + Duration::from_secs(2),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn an_upgraded_connection_is_not_timed() {
    let (addr, _) = server().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(conn.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    tokio::time::resume();
    conn.write_all(b"still here").await.unwrap();
    let mut echo = [0; 10];
    conn.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"still here");
}
