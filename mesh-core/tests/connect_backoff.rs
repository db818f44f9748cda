//! An endpoint whose HTTP/2 connect fails backs off, as Linkerd's proxy
//! reconnects one (linkerd2-proxy `linkerd/reconnect`): the request whose
//! connect failed is answered `502`, no other is sent to it while it backs
//! off, a service with no other endpoint fails fast, and the endpoint
//! takes requests again once a connect after its backoff succeeds. A plain
//! HTTP/1 endpoint does not back off.
//!
//! The backoffs here are long (a minute), so that nothing real time does
//! ends one under a test; the tests that wait for one, or for the
//! fail-fast timeout, do it on tokio's paused clock while no I/O is under
//! way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{accrual::h2_upstream, refused::refused_addr};

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use mesh_core::{
    body::full,
    client::{Client, ClientConfig},
    proxy::{
        BalancerView, EndpointSet, EndpointState, Forward, IN_FAILFAST, balance::ConnectBackoff,
        orig_proto,
    },
};
use tower::ServiceExt;

type Fwd = Forward<Client<Empty<Bytes>>>;

/// A minute, doubling to two.
fn long_backoff() -> ConnectBackoff {
    ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(120), 0.0).unwrap()
}

fn client() -> Client<Empty<Bytes>> {
    Client::new(&ClientConfig::default())
}

fn get(version: Version) -> Request<Empty<Bytes>> {
    Request::get("/")
        .version(version)
        .header("host", "web")
        .body(Empty::new())
        .unwrap()
}

/// The status and `mesh-error` of `forward`'s answer to `req`, its body
/// read whole.
async fn send(forward: &Fwd, req: Request<Empty<Bytes>>) -> (StatusCode, Option<String>) {
    let res = forward.clone().oneshot(req).await.unwrap();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    res.into_body().collect().await.unwrap();
    (status, error)
}

async fn ok_h2_upstream() -> SocketAddr {
    h2_upstream(|_| async { Response::new(full("ok")) }).await
}

fn state_of(view: &BalancerView, addr: SocketAddr) -> EndpointState {
    view.endpoints()
        .unwrap()
        .into_iter()
        .find(|(a, _)| *a == addr)
        .unwrap()
        .1
}

#[tokio::test(flavor = "current_thread")]
async fn an_http2_endpoint_refusing_backs_off_fails_fast_and_comes_back_after_its_backoff() {
    let endpoint = refused_addr();
    let forward = Forward::new(client(), [endpoint])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let view = forward.balancer_view().unwrap();

    let (status, error) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error.as_deref(), Some("upstream connect error"));
    assert_eq!(state_of(&view, endpoint), EndpointState::Pending);

    // The next request is not sent to it: it waits for an endpoint, and
    // after the fail-fast timeout (3 s, on the paused clock, no I/O under
    // way) gets the mesh's 503, not a 502 of a connect attempted.
    tokio::time::pause();
    let waited = send(&forward, get(Version::HTTP_2)).await;
    tokio::time::resume();
    assert_eq!(
        waited,
        (StatusCode::SERVICE_UNAVAILABLE, Some(IN_FAILFAST.into()))
    );
    assert!(forward.in_failfast());
    // In fail-fast, shed at once.
    let at_once = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(
        at_once,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("service unavailable".into())
        )
    );
    assert_eq!(state_of(&view, endpoint), EndpointState::Pending);

    // The endpoint comes back, and once its backoff is over the next
    // request connects, is answered, and puts it back.
    let _upstream = serve_h2_on(endpoint).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    assert!(!forward.in_failfast(), "a request may probe it");
    let (status, _) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state_of(&view, endpoint), EndpointState::Ready);
    assert!(!forward.in_failfast());
    let (status, _) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_reconnect_backs_off_again() {
    let endpoint = refused_addr();
    let forward = Forward::new(client(), [endpoint])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let view = forward.balancer_view().unwrap();
    let (status, _) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    // The probe connects, and is refused again: 502, and out again.
    let (status, _) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(state_of(&view, endpoint), EndpointState::Pending);
    // For twice as long: a minute later it is still out.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    assert_eq!(state_of(&view, endpoint), EndpointState::Pending);
    let waited = {
        tokio::time::pause();
        let answer = send(&forward, get(Version::HTTP_2)).await;
        tokio::time::resume();
        answer
    };
    assert_eq!(
        waited,
        (StatusCode::SERVICE_UNAVAILABLE, Some(IN_FAILFAST.into()))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn of_two_endpoints_one_refusing_gets_no_request_after_its_first_failure() {
    // The one refusing fails a first request, and then an endpoint that
    // answers joins: every request goes to it, even once it holds so
    // many unanswered that the one refusing would look cheaper (its
    // failure counts as a 1 s round trip; 40 requests in flight to one
    // estimated at 30 ms weigh 1.2 s), as its peak-EWMA cost alone would
    // draw it.
    let dead = refused_addr();
    let alive = Held::start().await;
    let set = EndpointSet::new([dead])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let forward = Forward::with_endpoints(client(), &set);
    let view = set.view();
    let (status, _) = send(&forward, get(Version::HTTP_2)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(set.update([dead, alive.addr]).unwrap());
    assert_eq!(state_of(&view, dead), EndpointState::Pending, "kept");
    let mut answers = Vec::new();
    for n in 1..=45 {
        let forward = forward.clone();
        answers.push(tokio::spawn(async move {
            send(&forward, get(Version::HTTP_2)).await.0
        }));
        alive.wait_for(n).await;
    }
    alive.release();
    for answer in answers {
        assert_eq!(answer.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(state_of(&view, dead), EndpointState::Pending);
    assert_eq!(state_of(&view, alive.addr), EndpointState::Ready);
}

/// An HTTP/2 upstream that counts the requests it gets and answers them
/// only once released.
struct Held {
    addr: SocketAddr,
    seen: tokio::sync::watch::Receiver<usize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl Held {
    async fn start() -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, seen) = tokio::sync::watch::channel(0_usize);
        let (open, opened) = tokio::sync::watch::channel(false);
        let count = std::sync::Arc::new(count);
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let (count, opened) = (count.clone(), opened.clone());
                let svc = hyper::service::service_fn(move |_req| {
                    let mut opened = opened.clone();
                    count.send_modify(|n| *n += 1);
                    async move {
                        opened.wait_for(|open| *open).await.unwrap();
                        Ok::<_, std::convert::Infallible>(Response::new(full("ok")))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(conn), svc),
                );
            }
        });
        Self { addr, seen, open }
    }

    /// Waits until it has had `n` requests.
    async fn wait_for(&self, n: usize) {
        let mut seen = self.seen.clone();
        seen.wait_for(|seen| *seen >= n).await.unwrap();
    }

    fn release(&self) {
        self.open.send_replace(true);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_http1_request_upgraded_to_http2_backs_its_endpoint_off() {
    let endpoint = refused_addr();
    let forward = Forward::new(client(), [endpoint])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let view = forward.balancer_view().unwrap();
    let mut req = get(Version::HTTP_11);
    assert!(orig_proto::upgrade(&mut req));
    let (status, _) = send(&forward, req).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(state_of(&view, endpoint), EndpointState::Pending);
}

#[tokio::test(flavor = "current_thread")]
async fn a_plain_http1_endpoint_refusing_answers_502_each_time_and_stays_ready() {
    let endpoint = refused_addr();
    let forward = Forward::new(client(), [endpoint])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let view = forward.balancer_view().unwrap();
    for _ in 0..3 {
        let (status, error) = send(&forward, get(Version::HTTP_11)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(error.as_deref(), Some("upstream connect error"));
        assert_eq!(state_of(&view, endpoint), EndpointState::Ready);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_update_keeps_an_endpoint_backing_off() {
    let dead = refused_addr();
    let (alive, other) = (ok_h2_upstream().await, ok_h2_upstream().await);
    let set = EndpointSet::new([dead, alive])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let forward = Forward::with_endpoints(client(), &set);
    let view = set.view();
    // Until one is drawn to the one refusing.
    let mut failed = false;
    for _ in 0..100 {
        if send(&forward, get(Version::HTTP_2)).await.0 == StatusCode::BAD_GATEWAY {
            failed = true;
            break;
        }
        // Its default estimate would be drawn again long after this,
        // and the other's answers decay: start them afresh.
        assert!(set.update([dead]).unwrap());
        assert!(set.update([dead, alive]).unwrap());
    }
    assert!(failed, "never drawn");
    assert_eq!(state_of(&view, dead), EndpointState::Pending);
    assert!(set.update([dead, alive, other]).unwrap());
    assert_eq!(state_of(&view, dead), EndpointState::Pending, "kept");
    for _ in 0..20 {
        let (status, _) = send(&forward, get(Version::HTTP_2)).await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// An HTTP/2 upstream answering `ok` on `addr`, a port refused until now.
async fn serve_h2_on(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(Response::new(full("ok")))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    })
}
