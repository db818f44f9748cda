//! `MetricsLayer` over real HTTP/2 connections: a caller's `RST_STREAM`, a
//! gRPC status in the headers or in the trailers, and an upstream that
//! resets its stream, each counted once; and a body that ends short of its
//! `content-length`, which its client reads as a failure, counted as one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use mesh_core::BoxError;
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use tower::{Layer, ServiceExt, service_fn};

use crate::http_review_counting::{scrape, total};

type Body = BoxBody<Bytes, BoxError>;

/// The `response_total` lines of a scrape.
fn responses(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("response_total{"))
        .collect()
}

/// Serves `svc` over HTTP/2 on a new listener; returns its address.
async fn serve_h2<S, B>(svc: S) -> std::net::SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .await;
    });
    addr
}

/// An HTTP/2 client connection to `addr`.
async fn client(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

fn request(addr: std::net::SocketAddr, grpc: bool) -> Request<Empty<Bytes>> {
    let mut req = Request::post(format!("http://{addr}/svc/Method"));
    if grpc {
        req = req.header(header::CONTENT_TYPE, "application/grpc");
    }
    req.body(Empty::new()).unwrap()
}

/// Sends `signal` when dropped.
struct OnDrop(Option<oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_caller_that_resets_its_stream_mid_body_is_counted_once_as_cancelled() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let app = service_fn(move |_: Request<Incoming>| {
        let guard = OnDrop(dropped_tx.lock().unwrap().take());
        async move {
            // One chunk, then nothing until the body is dropped.
            let frames = futures_util::stream::once(async {
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"partial")))
            });
            let rest = futures_util::stream::unfold(guard, |guard| async move {
                std::future::pending::<()>().await;
                drop(guard);
                None
            });
            let body = StreamBody::new(futures_util::StreamExt::chain(frames, rest));
            Ok::<_, Infallible>(Response::new(body))
        }
    });
    let addr = serve_h2(MetricsLayer::inbound(&metrics).layer(app)).await;
    let mut sender = client(addr).await;
    let res = sender.send_request(request(addr, false)).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    // Dropping the body resets the stream; the server drops its body.
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .unwrap()
        .unwrap();
    let text = scrape(&registry);
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="inbound",status_code="200",classification="failure",error="cancel"} 1"#
        ],
        "{text}"
    );
    assert_eq!(total(&text, "request_total{"), 1);
    assert_eq!(total(&text, "response_latency_ms_count{"), 1);
}

/// An upstream that answers gRPC as its path says: `/only` a trailers-only
/// `UNAVAILABLE`, `/trailers` a message and `OK` in the trailers, `/fail` a
/// message and then, once `fail` fires, a failed body, which resets the
/// stream.
async fn grpc_upstream(
    req: Request<Incoming>,
    fail: Option<oneshot::Receiver<()>>,
) -> Result<Response<Body>, Infallible> {
    let message = || Bytes::from_static(b"\0\0\0\0\0");
    let body: Body = match req.uri().path() {
        "/only" => Empty::new().map_err(|e: Infallible| match e {}).boxed(),
        "/trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            Full::new(message())
                .with_trailers(async move { Some(Ok(trailers)) })
                .map_err(|e: Infallible| match e {})
                .boxed()
        }
        _ => {
            let data = futures_util::stream::iter([Ok(http_body::Frame::data(message()))]);
            let error = futures_util::stream::once(async move {
                if let Some(fail) = fail {
                    let _ = fail.await;
                }
                Err::<http_body::Frame<Bytes>, BoxError>("the handler failed".into())
            });
            BodyExt::boxed(StreamBody::new(futures_util::StreamExt::chain(data, error)))
        }
    };
    let mut res = Response::new(body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if req.uri().path() == "/only" {
        res.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("14"));
    }
    Ok(res)
}

#[tokio::test]
async fn grpc_statuses_over_http2_are_counted_once_each_from_headers_or_trailers() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let (fail_tx, fail) = oneshot::channel();
    let fail = std::sync::Arc::new(std::sync::Mutex::new(Some(fail)));
    let addr = serve_h2(service_fn(move |req: Request<Incoming>| {
        let fail = if req.uri().path() == "/fail" {
            fail.lock().unwrap().take()
        } else {
            None
        };
        grpc_upstream(req, fail)
    }))
    .await;
    let sender = client(addr).await;
    let outbound = MetricsLayer::outbound(&metrics).layer(service_fn(move |req| {
        let mut sender = sender.clone();
        async move { sender.send_request(req).await }
    }));
    let call = |path: &str| {
        let mut req = request(addr, true);
        *req.uri_mut() = format!("http://{addr}{path}").parse().unwrap();
        outbound.clone().oneshot(req)
    };
    for path in ["/only", "/trailers"] {
        let res = call(path).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    // The message arrives; then the upstream fails and resets the stream.
    let mut body = call("/fail").await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    fail_tx.send(()).unwrap();
    assert!(body.collect().await.is_err());
    let text = scrape(&registry);
    assert_eq!(total(&text, "request_total{"), 3, "{text}");
    assert_eq!(total(&text, "response_latency_ms_count{"), 3, "{text}");
    let lines = responses(&text);
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.contains(
        &r#"response_total{direction="outbound",status_code="200",grpc_status="14",classification="failure"} 1"#
    ));
    assert!(lines.contains(
        &r#"response_total{direction="outbound",status_code="200",grpc_status="0",classification="success"} 1"#
    ));
    // The upstream's reset fails the body: a failure, once, with the
    // status its head had.
    assert!(
        lines.iter().any(|l| l.starts_with(
            r#"response_total{direction="outbound",status_code="200",classification="failure",error=""#
        ) && l.ends_with("} 1")),
        "{text}"
    );
}

/// An HTTP/2 upstream written frame by frame: it answers stream 1 with a
/// `content-length: 10` head and 5 bytes of data, then ends the stream with
/// `RST_STREAM(NO_ERROR)`. hyper's client reads that reset as the body's
/// clean end (RFC 9113 allows it after a complete response), so the body
/// the caller gets is 5 bytes short of its length.
async fn short_h2_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        // An empty SETTINGS frame.
        tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        loop {
            let mut head = [0; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            tcp.read_exact(&mut payload).await.unwrap();
            match head[3] {
                // SETTINGS, not an ACK: acknowledge it.
                4 if head[4] & 1 == 0 => {
                    tcp.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await.unwrap();
                }
                // The request's HEADERS on stream 1.
                1 => break,
                _ => {}
            }
        }
        let mut frames = Vec::new();
        // HEADERS, END_HEADERS: `:status: 200` (static index 8) and
        // `content-length: 10` (a literal with the name of static index 28).
        let block = [0x88, 0x0f, 0x0d, 0x02, b'1', b'0'];
        frames.extend_from_slice(&[0, 0, block.len() as u8, 1, 4, 0, 0, 0, 1]);
        frames.extend_from_slice(&block);
        // DATA: 5 bytes.
        frames.extend_from_slice(&[0, 0, 5, 0, 0, 0, 0, 0, 1]);
        frames.extend_from_slice(b"hello");
        // RST_STREAM(NO_ERROR).
        frames.extend_from_slice(&[0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        tcp.write_all(&frames).await.unwrap();
        // Keep the connection open until the client closes it.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

#[tokio::test]
async fn a_body_that_ends_short_of_its_content_length_is_a_failure() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let addr = short_h2_upstream().await;
    let sender = client(addr).await;
    let outbound = MetricsLayer::outbound(&metrics).layer(service_fn(move |req| {
        let mut sender = sender.clone();
        async move { sender.send_request(req).await }
    }));
    let res = outbound.oneshot(request(addr, false)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "10");
    // The body ends cleanly, 5 bytes short.
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    let text = scrape(&registry);
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="outbound",status_code="200",classification="failure",error="reset"} 1"#
        ],
        "{text}"
    );
}

/// The same through a real HTTP/1 server: an application body that ends
/// before its declared length makes hyper abort the response, and its
/// client sees an incomplete message. The metrics count that failure.
#[tokio::test]
async fn an_application_body_short_of_its_content_length_is_a_failure_over_http1() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let app = service_fn(|_: Request<Incoming>| async {
        let frames = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"hello"),
        ))]);
        let res = Response::builder()
            .header(header::CONTENT_LENGTH, "10")
            .body(StreamBody::new(frames))
            .unwrap();
        Ok::<_, Infallible>(res)
    });
    let svc = MetricsLayer::inbound(&metrics).layer(app);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .await
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get("/")
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    // hyper may abort before it flushed the head: either way, the client
    // gets no complete response.
    match sender.send_request(req).await {
        Ok(res) => assert!(res.into_body().collect().await.is_err()),
        Err(error) => assert!(error.is_incomplete_message(), "{error}"),
    }
    // The server aborted the connection: its task has ended.
    assert!(server.await.unwrap().is_err());
    drop(sender);
    let _ = driver.await;
    let text = scrape(&registry);
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="inbound",status_code="200",classification="failure",error="reset"} 1"#
        ],
        "{text}"
    );
}
