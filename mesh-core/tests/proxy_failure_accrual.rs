//! Failure accrual through a `Forward`, over real sockets: failures that
//! are the caller's, not the endpoint's, must not take a healthy endpoint
//! out, and an endpoint taken out comes back through its probe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{accrual, refused::refused_addr};

use accrual::{aborted_body, h2_upstream, proxy, strict};
use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    proxy::{EndpointState, Forward, IN_FAILFAST, INVALID_REQUEST},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;

/// An HTTP/1.1 upstream that reads each request's body and answers `200`.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_ok(listener);
    addr
}

/// Serves `listener` as [`upstream`] does.
fn serve_ok(listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(full("ok")))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
}

/// An HTTP/2 upstream that reads each request's body and answers `200`.
async fn upstream_h2() -> SocketAddr {
    h2_upstream(|req: Request<Incoming>| async move {
        let _ = req.into_body().collect().await;
        Response::new(full("ok"))
    })
    .await
}

#[tokio::test]
async fn a_request_body_that_fails_does_not_take_the_endpoint_out() {
    let endpoint = upstream().await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();

    let aborted = Request::post("/upload")
        .header("host", "files")
        .body(aborted_body())
        .unwrap();
    let res = forward.clone().oneshot(aborted).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["mesh-error"], INVALID_REQUEST);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::InvalidRequest),
        "labelled as the mesh's answer"
    );
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller's body failed, not the endpoint"
    );

    let next = Request::get("/")
        .header("host", "files")
        .body(full(""))
        .unwrap();
    let res = forward.oneshot(next).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
}

#[tokio::test]
async fn an_http2_request_body_that_fails_does_not_take_the_endpoint_out() {
    // Over HTTP/2 the failed body is not a hyper error of its own: the
    // client resets the stream, and the reset (one the client sent, not
    // one the upstream did) is what comes back.
    let endpoint = upstream_h2().await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();

    let aborted = Request::post("http://files/upload")
        .version(Version::HTTP_2)
        .body(aborted_body())
        .unwrap();
    let res = forward.clone().oneshot(aborted).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{:?}", res.headers());
    assert_eq!(res.headers()["mesh-error"], INVALID_REQUEST);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::InvalidRequest),
        "labelled as the mesh's answer"
    );
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller's body failed, not the endpoint"
    );

    let next = Request::get("http://files/")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let res = forward.oneshot(next).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
}

/// Sends `head` to `addr` and reads the answer's status line.
async fn status_line(addr: SocketAddr, head: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_malformed_request_body_does_not_take_the_endpoint_out() {
    let endpoint = upstream().await;
    let (proxy, view, trigger) = proxy(endpoint).await;
    // A chunked body whose second chunk size is not hex: the client's
    // fault, found once the head has gone upstream. The client stays
    // connected, so the proxy answers it.
    let malformed = status_line(
        proxy,
        "POST /upload HTTP/1.1\r\nhost: files\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    )
    .await;
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller's body failed, not the endpoint"
    );
    let next = status_line(
        proxy,
        "GET / HTTP/1.1\r\nhost: files\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(next.starts_with("HTTP/1.1 200"), "{next}");
    trigger.trigger();
}

#[tokio::test]
async fn an_endpoint_taken_out_for_failing_is_probed_and_comes_back() {
    // The endpoint is down: its port refuses connections.
    let endpoint = refused_addr();
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    let get = || {
        Request::get("/")
            .header("host", "web")
            .body(full(""))
            .unwrap()
    };

    let res = forward.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
    // Out for its penalty, a minute: the next caller waits for an endpoint
    // for the fail-fast timeout, 3 s (on tokio's paused clock; it does no
    // I/O meanwhile), and is answered that the service is in fail-fast.
    tokio::time::pause();
    let asked = tokio::time::Instant::now();
    let res = forward.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], IN_FAILFAST);
    // Timers fire on the millisecond after their instant.
    let waited = asked.elapsed();
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(4)).contains(&waited),
        "the fail-fast timeout, not the penalty: {waited:?}"
    );
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );

    // It comes back on the same port; the penalty ends.
    let listener = TcpListener::bind(endpoint).await.unwrap();
    serve_ok(listener);
    tokio::time::advance(Duration::from_secs(57)).await;
    tokio::time::resume();
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Probing)]
    );
    // The next request is its probe, sent although the service is in
    // fail-fast, and its success, judged at the end of its body, puts the
    // endpoint back.
    let res = forward.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
    let res = forward.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
