//! `response_latency_ms` is Linkerd's time to first byte: from the request
//! to the response's first data frame, or to its end when it has no data.
//! A server that sends its head at once and its body later (a streaming
//! answer, a framework that flushes headers first) is as slow as its
//! body: measured at the head, its latency would read as none at all.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

type Streamed =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A body whose one chunk comes `delay` after its head.
fn late_body(delay: Duration) -> Streamed {
    StreamBody::new(Box::pin(futures_util::stream::once(async move {
        tokio::time::sleep(delay).await;
        Ok(Frame::data(Bytes::from_static(b"hello")))
    })))
}

/// A body that ends, without data, `delay` after its head.
fn late_end(delay: Duration) -> Streamed {
    StreamBody::new(Box::pin(futures_util::stream::once(async move {
        tokio::time::sleep(delay).await;
        Ok(Frame::trailers(http::HeaderMap::new()))
    })))
}

fn histogram_line<'a>(text: &'a str, status: &str, le: &str) -> &'a str {
    let le = format!("response_latency_ms_bucket{{le=\"{le}\",");
    let status = format!("status_code=\"{status}\"");
    text.lines()
        .find(|l| l.starts_with(&le) && l.contains(&status))
        .unwrap_or_else(|| panic!("no {le} {status} in\n{text}"))
}

fn bucket(text: &str, status: &str, le: &str) -> u64 {
    histogram_line(text, status, le)
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_body_that_comes_after_its_head_counts_to_its_first_byte_over_a_real_server() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let app = service_fn(|_req: Request<Incoming>| async {
        // The head at once; the body 250 ms later.
        Ok::<_, Infallible>(Response::new(late_body(Duration::from_millis(250))))
    });
    let svc = MetricsLayer::inbound(&metrics).layer(app);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get("/")
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    drop(sender);
    driver.await.unwrap().unwrap();
    server.await.unwrap().unwrap();

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    // 250 ms to the first byte of the body: over 200, at most 300.
    assert_eq!(bucket(&text, "200", "200.0"), 0, "{text}");
    assert_eq!(bucket(&text, "200", "300.0"), 1, "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_body_without_data_counts_to_its_end_and_one_dropped_early_to_its_drop() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let app = service_fn(|req: Request<()>| async move {
        let body = match req.uri().path() {
            "/trailers" => late_end(Duration::from_millis(40)),
            _ => late_body(Duration::from_secs(60)),
        };
        Ok::<_, Infallible>(Response::new(body))
    });
    let svc = MetricsLayer::inbound(&metrics).layer(app);

    // No data: the end, 40 ms after the head, is the first byte.
    let res = svc
        .clone()
        .oneshot(Request::get("/trailers").body(()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    // Dropped 7 ms after its head, before any byte: counted then, as
    // Linkerd does, and once.
    let res = svc
        .clone()
        .oneshot(Request::get("/slow").body(()).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(7)).await;
    drop(res);

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(bucket(&text, "200", "5.0"), 0, "{text}");
    assert_eq!(bucket(&text, "200", "10.0"), 1, "{text}");
    assert_eq!(bucket(&text, "200", "30.0"), 1, "{text}");
    assert_eq!(bucket(&text, "200", "50.0"), 2, "{text}");
    assert_eq!(bucket(&text, "200", "+Inf"), 2, "{text}");
    assert!(
        text.contains("response_latency_ms_sum{direction=\"inbound\",status_code=\"200\"} 47.0\n"),
        "{text}"
    );
}
