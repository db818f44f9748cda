//! `Forward::in_failfast`, which a traffic split asks to pass a backend
//! over: true only while a request would be answered `service in
//! fail-fast` at once, over real sockets, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{EndpointSet, FailureAccrual, Forward, IN_FAILFAST, Queue},
};
use tokio::{net::TcpListener, time::Instant};
use tower::ServiceExt;

type Fwd = Forward<Client<Empty<Bytes>>>;

/// An HTTP/1.1 upstream answering `500` to `/fail` and `200` to
/// anything else.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let status = if req.uri().path() == "/fail" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                let mut res = Response::new(Full::new(Bytes::from_static(b"hi")));
                *res.status_mut() = status;
                Ok::<_, Infallible>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

fn forward(set: &EndpointSet) -> Fwd {
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    Forward::with_endpoints(client, set)
}

/// The status and `mesh-error` of the answer to `GET path`.
async fn answer(forward: &Fwd, path: &str) -> (StatusCode, Option<String>) {
    let req = Request::get(path)
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    let res = forward.clone().oneshot(req).await.unwrap();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    res.into_body().collect().await.unwrap();
    (status, error)
}

fn failfast() -> (StatusCode, Option<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Some(IN_FAILFAST.to_owned()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_set_without_endpoints_is_in_failfast_from_the_timeout_until_an_update() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::from_secs(3)));
    let forward = forward(&set);
    // Not yet: a request would wait for an endpoint.
    assert!(!forward.in_failfast());
    let start = Instant::now();
    assert_eq!(answer(&forward, "/").await, failfast());
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    assert!(forward.in_failfast());
    assert!(forward.clone().in_failfast(), "clones share the state");
    set.update([upstream().await]).unwrap();
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, (StatusCode::OK, None));
}

#[tokio::test(start_paused = true)]
async fn endpoints_that_fail_without_failure_accrual_are_never_in_failfast() {
    let forward = forward(&EndpointSet::new([upstream().await]).unwrap());
    assert_eq!(
        answer(&forward, "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(!forward.in_failfast());
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_past_its_penalty_ends_failfast_for_the_asker() {
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([upstream().await])
        .unwrap()
        .with_failure_accrual(accrual);
    let forward = forward(&set);
    assert_eq!(
        answer(&forward, "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let start = Instant::now();
    // Out for 60 s: the first request waits the 3 s timeout.
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, failfast());
    assert!(forward.in_failfast());
    tokio::time::sleep_until(start + Duration::from_secs(30)).await;
    assert!(forward.in_failfast());
    // The penalty is over: with no request sent since, the endpoint may
    // take one, its probe, which a split must still send it.
    tokio::time::sleep_until(start + Duration::from_secs(61)).await;
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, (StatusCode::OK, None));
    assert!(!forward.in_failfast());
}
