//! Failure accrual judged on the whole response, over real sockets: a
//! response whose head is good and whose body then breaks is a failure
//! of its endpoint, as Linkerd classifies a response at the end of its
//! stream (linkerd2-proxy `linkerd/http/classify/src/channel.rs`: an
//! error polled from the body is classified as one). A gRPC stream its
//! caller drops before its trailers is no failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::accrual;

use accrual::{grpc_call, grpc_stream_upstream, strict};
use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    proxy::{BalancerView, EndpointState, FailureAccrual, Forward, TimedOut},
};
use tokio::{io::AsyncWriteExt, net::TcpListener};
use tower::ServiceExt;

/// A `Forward` to `endpoint` with `accrual`, and the balancer's view.
fn forward(
    endpoint: SocketAddr,
    accrual: FailureAccrual,
) -> (Forward<Client<BoxBody>>, BalancerView) {
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(accrual);
    let view = forward.balancer_view().unwrap();
    (forward, view)
}

/// An HTTP/1.1 upstream that answers `200` with a content-length of 10,
/// sends 3 bytes of the body, and closes the connection.
async fn cut_h1_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut head).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                    .await;
                let _ = conn.flush().await;
            });
        }
    });
    addr
}

/// An HTTP/2 upstream that answers `200` and a chunk of the body, then
/// waits for `next` to be notified and ends its body, or resets the stream
/// when the request's path is `/reset`.
async fn h2_upstream_waiting(next: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let next = next.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let next = next.clone();
                let reset = req.uri().path() == "/reset";
                let chunk = Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"abc")));
                let rest = futures_util::stream::once(async move {
                    next.notified().await;
                    reset.then(|| Err::<Frame<Bytes>, BoxError>("the server broke mid-body".into()))
                })
                .filter_map(std::future::ready);
                let body = futures_util::stream::iter([chunk]).chain(rest);
                std::future::ready(Ok::<_, Infallible>(Response::new(boxed(StreamBody::new(
                    body,
                )))))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

fn get(version: Version) -> Request<BoxBody> {
    Request::get("http://web/")
        .version(version)
        .body(full(""))
        .unwrap()
}

/// An HTTP/2 `GET` of `path`.
fn get_h2(path: &str) -> Request<BoxBody> {
    Request::get(format!("http://web{path}"))
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap()
}

#[tokio::test]
async fn a_good_head_whose_http1_body_is_cut_short_counts_against_the_endpoint() {
    let endpoint = cut_h1_upstream().await;
    let (forward, view) = forward(endpoint, strict());
    let res = forward
        .clone()
        .oneshot(get(Version::HTTP_11))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.into_body().collect().await.is_err());
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
}

#[tokio::test]
async fn a_good_head_whose_http2_stream_is_reset_mid_body_counts_against_the_endpoint() {
    let reset = Arc::new(Notify::new());
    let endpoint = h2_upstream_waiting(reset.clone()).await;
    let (forward, view) = forward(endpoint, strict());
    let res = forward.clone().oneshot(get_h2("/reset")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    reset.notify_one();
    assert!(body.collect().await.is_err());
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
}

#[tokio::test]
async fn responses_that_break_mid_body_are_failures_in_a_row() {
    // Counted as a success at the head and a failure at the break, they
    // would reset the run of failures each time, and an endpoint breaking
    // every body would never be taken out.
    let endpoint = cut_h1_upstream().await;
    let accrual = FailureAccrual::new(
        NonZeroU32::new(3).unwrap(),
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let (forward, view) = forward(endpoint, accrual);
    for _ in 0..3 {
        let res = forward
            .clone()
            .oneshot(get(Version::HTTP_11))
            .await
            .unwrap();
        let _ = res.into_body().collect().await;
    }
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
}

#[tokio::test]
async fn a_grpc_stream_its_caller_drops_before_its_trailers_is_no_failure() {
    // Out at the second failure in a row: one failure, then a dropped
    // stream, leaves the endpoint in.
    let endpoint = grpc_stream_upstream().await;
    let accrual = FailureAccrual::new(
        NonZeroU32::new(2).unwrap(),
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let (forward, view) = forward(endpoint, accrual);
    let res = forward.clone().oneshot(grpc_call("only:14")).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    drop(res);
    let res = forward.clone().oneshot(grpc_call("hang")).await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    drop(body);
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller went away: no failure of the endpoint's"
    );
}

/// Sends a `GET` to an [`h2_upstream_waiting`] through a strict `Forward`,
/// reads the first chunk, and drops the body while it waits for the
/// rest; `cut_by_timeout` says whether a timeout above says it cut it.
/// Returns the endpoint's state after.
async fn stalled_body(cut_by_timeout: bool) -> EndpointState {
    let endpoint = h2_upstream_waiting(Arc::new(Notify::new())).await;
    let (forward, view) = forward(endpoint, strict());
    let mut req = get_h2("/");
    let timeout = TimedOut::on(&mut req);
    let res = forward.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    if cut_by_timeout {
        timeout.expire();
    }
    drop(body);
    let [(addr, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    assert_eq!(addr, endpoint);
    state
}

#[tokio::test]
async fn a_body_a_timeout_cuts_before_its_end_counts_against_the_endpoint() {
    assert_eq!(stalled_body(true).await, EndpointState::Failing);
}

#[tokio::test]
async fn a_body_its_caller_drops_before_its_end_is_what_its_head_said() {
    assert_eq!(stalled_body(false).await, EndpointState::Ready);
}

#[tokio::test]
async fn a_probe_holds_its_endpoint_until_its_body_ends() {
    // As Linkerd's breaker waits for the probe's classification, made at
    // the end of its stream.
    let next = Arc::new(Notify::new());
    let endpoint = h2_upstream_waiting(next.clone()).await;
    let (forward, view) = forward(endpoint, strict());
    let res = forward.clone().oneshot(get_h2("/reset")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
    next.notify_one();
    let _ = res.into_body().collect().await;
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();

    let probe = forward.clone().oneshot(get_h2("/")).await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK, "{:?}", probe.headers());
    let mut body = probe.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Probing)],
        "a good head and a first chunk decide nothing yet"
    );
    next.notify_one();
    assert!(body.collect().await.is_ok());
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
}
