//! Responses served by a real hyper HTTP/1 server, which drops a response
//! body without reading it to its end when HTTP says no more of it may be
//! sent: a response to `HEAD`, a 204 or 304, or a body whose declared
//! `content-length` has been written. Each is a complete response, not a
//! cancelled one, to the metrics and to a tap.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Empty, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use mesh_metrics::{
    Direction, HttpMetrics, MetricsLayer,
    tap::{Tap, TapEventKind, TapFilter, TapLayer},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, service_fn};

type AppBody = Either<Full<Bytes>, OneChunk>;

/// A body of one chunk that does not know it has ended after it, as a
/// stream does not; it may report its exact length as a size hint, which
/// hyper then writes as the `content-length`.
struct OneChunk {
    chunk: Option<Bytes>,
    exact: bool,
}

impl http_body::Body for OneChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.chunk.take().map(|c| Ok(http_body::Frame::data(c))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match (&self.chunk, self.exact) {
            (Some(c), true) => http_body::SizeHint::with_exact(c.len() as u64),
            (None, true) => http_body::SizeHint::with_exact(0),
            (_, false) => http_body::SizeHint::default(),
        }
    }
}

/// Answers `hello` to every request, `/204` and `/304` with those statuses,
/// `/stream` as a body of one chunk under an explicit `content-length`,
/// which the body itself does not know, and `/sized` as such a body that
/// reports its length only as an exact size hint.
async fn app(req: Request<Incoming>) -> Result<Response<AppBody>, Infallible> {
    let hello = || Either::Left(Full::new(Bytes::from_static(b"hello")));
    let one_chunk = |exact| {
        Either::Right(OneChunk {
            chunk: Some(Bytes::from_static(b"hello")),
            exact,
        })
    };
    Ok(match req.uri().path() {
        "/204" => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(hello())
            .unwrap(),
        "/304" => Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .body(hello())
            .unwrap(),
        "/stream" => Response::builder()
            .header(header::CONTENT_LENGTH, "5")
            .body(one_chunk(false))
            .unwrap(),
        "/sized" => Response::new(one_chunk(true)),
        _ => Response::new(hello()),
    })
}

/// Sends `requests` one after another on one connection to a hyper server
/// of `svc`, and returns once the server has finished with every exchange.
async fn serve<S, B>(svc: S, requests: &[(Method, &str)])
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    for (method, path) in requests {
        let req = Request::builder()
            .method(method)
            .uri(*path)
            .header(header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    // Closing the connection ends the server's connection task, and with it
    // every response it held.
    drop(sender);
    driver.await.unwrap().unwrap();
    server.await.unwrap().unwrap();
}

/// Sends `requests` one after another on one connection to a hyper server
/// that records with `MetricsLayer`, and returns the scrape once the server
/// has finished with every exchange.
async fn serve_and_scrape(requests: &[(Method, &str)]) -> String {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    serve(
        MetricsLayer::inbound(&metrics).layer(service_fn(app)),
        requests,
    )
    .await;
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    text
}

fn responses(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("response_total{"))
        .collect()
}

#[tokio::test]
async fn a_response_to_head_is_a_success_not_a_cancellation() {
    let text = serve_and_scrape(&[(Method::HEAD, "/"), (Method::GET, "/")]).await;
    assert_eq!(
        responses(&text),
        [r#"response_total{direction="inbound",status_code="200",classification="success"} 2"#],
        "{text}"
    );
}

#[tokio::test]
async fn a_204_or_304_whose_body_is_never_sent_is_a_success() {
    let text = serve_and_scrape(&[(Method::GET, "/204"), (Method::GET, "/304")]).await;
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="inbound",status_code="204",classification="success"} 1"#,
            r#"response_total{direction="inbound",status_code="304",classification="success"} 1"#,
        ],
        "{text}"
    );
}

#[tokio::test]
async fn a_body_that_sent_its_whole_content_length_is_a_success() {
    let text = serve_and_scrape(&[(Method::GET, "/stream"), (Method::GET, "/sized")]).await;
    assert_eq!(
        responses(&text),
        [r#"response_total{direction="inbound",status_code="200",classification="success"} 2"#],
        "{text}"
    );
}

/// The same rules without a server: each response is counted once, at its
/// head, as the success it is, and dropping its unread body changes nothing.
#[tokio::test]
async fn a_response_without_a_body_by_http_rules_is_counted_at_its_head() {
    use tower::ServiceExt;

    let cases = [
        (Method::HEAD, StatusCode::OK),
        (Method::CONNECT, StatusCode::OK),
        (Method::GET, StatusCode::SWITCHING_PROTOCOLS),
        (Method::GET, StatusCode::NO_CONTENT),
        (Method::GET, StatusCode::NOT_MODIFIED),
    ];
    for (method, status) in cases {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let svc =
            MetricsLayer::inbound(&metrics).layer(service_fn(move |_: Request<()>| async move {
                let res = Response::builder()
                    .status(status)
                    .header(header::CONTENT_LENGTH, "5")
                    .body(Full::new(Bytes::from_static(b"hello")))
                    .unwrap();
                Ok::<_, Infallible>(res)
            }));
        let req = Request::builder().method(method.clone()).body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let scrape = || {
            let mut text = String::new();
            encode(&mut text, &registry).unwrap();
            text
        };
        let expected = format!(
            r#"response_total{{direction="inbound",status_code="{}",classification="success"}} 1"#,
            status.as_u16()
        );
        assert_eq!(
            responses(&scrape()),
            [expected.as_str()],
            "{method} {status}"
        );
        drop(res);
        assert_eq!(
            responses(&scrape()),
            [expected.as_str()],
            "{method} {status}"
        );
    }
}

/// A body dropped before it sent its declared length was cut short: a
/// cancellation, as without a length.
#[tokio::test]
async fn a_body_dropped_before_its_content_length_was_sent_is_cancelled() {
    use tower::ServiceExt;

    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        let frames: Vec<Result<_, Infallible>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"hel"))),
            Ok(http_body::Frame::data(Bytes::from_static(b"lo"))),
        ];
        let res = Response::builder()
            .header(header::CONTENT_LENGTH, "5")
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        Ok::<_, Infallible>(res)
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="inbound",status_code="200",classification="failure",error="cancel"} 1"#
        ],
        "{text}"
    );
}

/// A gRPC response is classified by its trailers: one dropped after its
/// declared length but before them was cut short, whatever its length said.
#[tokio::test]
async fn a_grpc_body_dropped_before_its_trailers_is_cancelled() {
    use tower::ServiceExt;

    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        let data = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"\0\0\0\0\0"),
        ))]);
        let frames = futures_util::StreamExt::chain(data, futures_util::stream::pending());
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::CONTENT_LENGTH, "5")
            .body(StreamBody::new(frames))
            .unwrap();
        Ok::<_, Infallible>(res)
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        responses(&text),
        [
            r#"response_total{direction="inbound",status_code="200",classification="failure",error="cancel"} 1"#
        ],
        "{text}"
    );
}

/// A tap reads the same exchanges as ended too, with the bytes each sent.
#[tokio::test]
async fn a_tap_ends_the_exchanges_a_server_drops_unread_without_a_cancellation() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let requests = [
        (Method::HEAD, "/"),
        (Method::GET, "/204"),
        (Method::GET, "/304"),
        (Method::GET, "/stream"),
        (Method::GET, "/sized"),
        (Method::GET, "/"),
    ];
    serve(
        TapLayer::new(&tap, Direction::Inbound).layer(service_fn(app)),
        &requests,
    )
    .await;
    let mut ends = Vec::new();
    while ends.len() < requests.len() {
        let event = sub.next().await.unwrap();
        if let TapEventKind::End {
            error,
            response_bytes,
            ..
        } = event.kind
        {
            ends.push((error, response_bytes));
        }
    }
    assert_eq!(
        ends,
        [
            (None, 0),
            (None, 0),
            (None, 0),
            (None, 5),
            (None, 5),
            (None, 5)
        ]
    );
}
