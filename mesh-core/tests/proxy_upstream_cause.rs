//! The mesh's `502` (gRPC `UNAVAILABLE`) for a request its upstream failed
//! before a response carries what caused it, an `UpstreamCause`, over real
//! connections: a stream the upstream reset (by its code), a `GOAWAY`, a
//! connection closed before the response, a connection refused, an
//! answer that is not HTTP, or one the proxy cannot pass on. Its
//! `mesh-error` says which of these it was, in words: a connect error
//! only for a connection that could not be made. A `CONNECT` tunnel that
//! cannot be connected says so too. A response from the upstream carries
//! none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{proxy, refused::refused_addr, unprocessed};

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    error::{
        MESH_ERROR, UPSTREAM_CLOSED, UPSTREAM_FAILED, UPSTREAM_PROTOCOL_ERROR, UPSTREAM_RESET,
        UpstreamCause,
    },
    proxy::{ConnectTunnel, Forward, ForwardTcp, UPSTREAM_CODING},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;
use unprocessed::{First, upstream};

/// An HTTP/2 upstream that reads each request whole, then resets its
/// stream with `reason`; with `None`, answers it `200`.
async fn resetting(reason: Option<h2::Reason>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        match reason {
                            Some(reason) => respond.send_reset(reason),
                            None => {
                                let _ = respond.send_response(Response::new(()), true);
                            }
                        }
                    });
                }
            });
        }
    });
    addr
}

/// An HTTP/1 upstream that reads each request head, then closes the
/// connection without a response.
async fn closing() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                drop(tcp);
            });
        }
    });
    addr
}

/// An upstream that is not HTTP: on each connection it waits for the
/// client's first bytes (a request head, or HTTP/2's preface), answers
/// them with `garbage\r\n\r\n`, neither an HTTP/1 status line nor an
/// HTTP/2 frame, and keeps the connection open until the client closes
/// it, so that what the client reads is those bytes, not a close.
async fn garbling() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0; 1024];
                if !matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {
                    return;
                }
                if tcp.write_all(b"garbage\r\n\r\n").await.is_err() {
                    return;
                }
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

fn h2_post() -> Request<BoxBody> {
    Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(full("one order"))
        .unwrap()
}

/// What `Forward` answers `req` with when it sends it to `upstream`: its
/// status, `mesh-error` and cause.
async fn answer(
    upstream: SocketAddr,
    req: Request<BoxBody>,
) -> (StatusCode, Option<String>, Option<UpstreamCause>) {
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let res = forward.oneshot(req).await.unwrap();
    if res.extensions().get::<UpstreamCause>().is_some() {
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::UpstreamUnreachable)
        );
    }
    (
        res.status(),
        res.headers()
            .get(MESH_ERROR)
            .map(|v| v.to_str().unwrap().to_owned()),
        res.extensions().get::<UpstreamCause>().copied(),
    )
}

#[tokio::test]
async fn a_reset_stream_carries_its_code_as_the_cause() {
    for (reason, cause) in [
        (h2::Reason::REFUSED_STREAM, UpstreamCause::Refused),
        (
            h2::Reason::ENHANCE_YOUR_CALM,
            UpstreamCause::EnhanceYourCalm,
        ),
        (h2::Reason::CANCEL, UpstreamCause::Canceled),
        (h2::Reason::INTERNAL_ERROR, UpstreamCause::Reset),
    ] {
        let upstream = resetting(Some(reason)).await;
        let (status, mesh_error, carried) = answer(upstream, h2_post()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{reason:?}");
        assert_eq!(carried, Some(cause), "{reason:?}");
        // The connection was made: the upstream reset the stream.
        assert_eq!(mesh_error.as_deref(), Some(UPSTREAM_RESET), "{reason:?}");
    }
}

#[tokio::test]
async fn a_goaway_or_a_closed_http2_connection_is_the_cause() {
    for (first, cause) in [
        // Above the GOAWAY's last stream id: failed by the frame itself.
        (First::GoAway, UpstreamCause::GoAway),
        // At its last stream id: left to the connection, which then
        // closes under it.
        (First::GoAwayAfter, UpstreamCause::Closed),
        (First::Close, UpstreamCause::Closed),
    ] {
        let upstream = upstream(first).await;
        let (status, mesh_error, carried) = answer(upstream.addr, h2_post()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{first:?}");
        assert_eq!(carried, Some(cause), "{first:?}");
        assert_eq!(mesh_error.as_deref(), Some(UPSTREAM_CLOSED), "{first:?}");
    }
}

#[tokio::test]
async fn an_http1_connection_closed_before_the_response_is_the_cause() {
    let upstream = closing().await;
    let get = Request::get("/list")
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let (status, mesh_error, carried) = answer(upstream, get).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(carried, Some(UpstreamCause::Closed));
    assert_eq!(mesh_error.as_deref(), Some(UPSTREAM_CLOSED));
}

#[tokio::test]
async fn a_refused_connection_is_the_cause() {
    let upstream = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let get = Request::get("/list")
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let (status, mesh_error, carried) = answer(upstream, get).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(carried, Some(UpstreamCause::Connect));
    assert_eq!(mesh_error.as_deref(), Some("upstream connect error"));
}

#[tokio::test]
async fn a_response_from_the_upstream_carries_no_cause() {
    let upstream = resetting(None).await;
    let (status, mesh_error, carried) = answer(upstream, h2_post()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mesh_error, None);
    assert_eq!(carried, None);
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_protocol_error() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let upstream = garbling().await;
        let get = Request::get("http://emoji/list")
            .version(version)
            .body(full(""))
            .unwrap();
        let (status, mesh_error, carried) = answer(upstream, get).await;
        // Still the 502 of an upstream that failed the request...
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{version:?}");
        assert_eq!(carried, Some(UpstreamCause::Protocol), "{version:?}");
        // ...but the connection was made: not a connect error.
        assert_eq!(
            mesh_error.as_deref(),
            Some(UPSTREAM_PROTOCOL_ERROR),
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn http1_and_grpc_callers_read_that_the_upstream_is_not_http() {
    let upstream = garbling().await;
    let (addr, trigger, server) = proxy::proxy(upstream).await;

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let get = Request::get("/list")
        .header("host", "emoji")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(get).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()[MESH_ERROR], UPSTREAM_PROTOCOL_ERROR);
    drop(send);
    conn.await.unwrap().unwrap();

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let call = Request::post("http://emoji/pkg.Svc/Method")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], UPSTREAM_PROTOCOL_ERROR);
    drop(send);
    conn.await.unwrap().unwrap();

    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn http2_and_grpc_callers_read_that_the_upstream_reset_the_stream() {
    let upstream = resetting(Some(h2::Reason::INTERNAL_ERROR)).await;
    let (addr, trigger, server) = proxy::proxy(upstream).await;

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let get = Request::get("http://emoji/list")
        .version(Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(get).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()[MESH_ERROR], UPSTREAM_RESET);
    let call = Request::post("http://emoji/pkg.Svc/Method")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], UPSTREAM_RESET);
    drop(send);
    conn.await.unwrap().unwrap();

    trigger.trigger();
    server.await.unwrap();
}

/// A connection that reads `ETIMEDOUT` once the request is written, as
/// a socket does whose keepalive probes the upstream's host stopped
/// answering: a connection that was made, and broke in a way that names
/// none of the causes.
struct TimesOut {
    tcp: TcpStream,
    written: bool,
}

impl tokio::io::AsyncRead for TimesOut {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.written {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        std::task::Poll::Pending
    }
}

impl tokio::io::AsyncWrite for TimesOut {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf);
        if written.is_ready() {
            self.written = true;
            // The read that was waiting learns of the failure now.
            cx.waker().wake_by_ref();
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for TimesOut {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

#[tokio::test]
async fn a_connection_that_broke_without_a_known_cause_is_no_connect_error() {
    let upstream = closing().await;
    let connector = tower::service_fn(move |_: http::Uri| {
        Box::pin(async move {
            let tcp = TcpStream::connect(upstream).await?;
            Ok::<_, std::io::Error>(TokioIo::new(TimesOut {
                tcp,
                written: false,
            }))
        })
    });
    let client = Client::<BoxBody, _>::with_connector(&ClientConfig::default(), connector);
    let forward = Forward::new(client, [upstream]).unwrap();
    let get = Request::get("/list")
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = forward.oneshot(get).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::UpstreamUnreachable)
    );
    assert_eq!(res.extensions().get::<UpstreamCause>(), None);
    assert_eq!(res.headers()[MESH_ERROR], UPSTREAM_FAILED);
}

/// An HTTP/1 upstream that answers each request `200` with a body coded
/// `gzip` and no `chunked`, delimited by the connection's close.
async fn gzipping() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\
                          connection: close\r\n\r\ncoded",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_response_coded_past_what_the_proxy_undoes_names_a_protocol_error() {
    let upstream = gzipping().await;
    let get = Request::get("/list")
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let (status, mesh_error, carried) = answer(upstream, get).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(mesh_error.as_deref(), Some(UPSTREAM_CODING));
    assert_eq!(carried, Some(UpstreamCause::Protocol));
}

/// What a `ConnectTunnel` for `db`, over `forward`, answers a `CONNECT`
/// to `db:5432` with, as the server hands it the request.
async fn tunnel_answer<C>(forward: ForwardTcp<C>) -> Response<BoxBody>
where
    C: tower::Service<http::Uri> + Clone,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<mesh_core::BoxError>,
{
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| forward.clone());
    let inner = tower::service_fn(|_: Request<BoxBody>| async {
        Ok::<_, std::convert::Infallible>(Response::new(BoxBody::default()))
    });
    let mut req = Request::connect("db:5432")
        .body(BoxBody::default())
        .unwrap();
    // Where a server would have put the connection's upgrade.
    let upgrade = hyper::upgrade::on(&mut req);
    req.extensions_mut().insert(upgrade);
    ConnectTunnel::new(inner, targets)
        .oneshot(req)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_connect_tunnel_that_cannot_connect_carries_the_cause() {
    let refused = refused_addr();
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.enforce_http(false);
    let res = tunnel_answer(ForwardTcp::new(connector, [refused]).unwrap()).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()[MESH_ERROR], "upstream connect error");
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::UpstreamUnreachable)
    );
    assert_eq!(
        res.extensions().get::<UpstreamCause>(),
        Some(&UpstreamCause::Connect)
    );
}

#[tokio::test(start_paused = true)]
async fn a_connect_tunnel_that_times_out_carries_the_cause() {
    // A connect that never completes: the tunnel's connect timeout ends it.
    let hang = tower::service_fn(|_: http::Uri| {
        std::future::pending::<Result<TokioIo<TcpStream>, std::io::Error>>()
    });
    let endpoint = SocketAddr::from(([10, 0, 0, 1], 5432));
    let forward = ForwardTcp::new(hang, [endpoint])
        .unwrap()
        .with_connect_timeout(std::time::Duration::from_secs(1));
    let res = tunnel_answer(forward).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()[MESH_ERROR], "upstream connect error");
    assert_eq!(
        res.extensions().get::<UpstreamCause>(),
        Some(&UpstreamCause::Connect)
    );
}
