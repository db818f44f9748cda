//! An endpoint backing off a failed HTTP/2 connect is back once a probe's
//! connect succeeds, as Linkerd's proxy has a reconnected endpoint ready
//! once its connection is made (linkerd2-proxy `linkerd/reconnect`), and
//! not only once the probe's response head comes: a probe the upstream
//! holds (a long poll, a slow handler) must not keep the endpoint pending,
//! and every other request waiting behind it until fail-fast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::refused::refused_addr;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use mesh_core::{
    body::full,
    client::{Client, ClientConfig},
    proxy::{BalancerView, EndpointState, Forward, balance::ConnectBackoff},
};
use tower::ServiceExt;

type Fwd = Forward<Client<Empty<Bytes>>>;

fn get() -> Request<Empty<Bytes>> {
    Request::get("/")
        .version(Version::HTTP_2)
        .body(Empty::new())
        .unwrap()
}

async fn send(forward: &Fwd) -> (StatusCode, Option<String>) {
    let res = forward.clone().oneshot(get()).await.unwrap();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    res.into_body().collect().await.unwrap();
    (status, error)
}

fn state_of(view: &BalancerView) -> EndpointState {
    view.endpoints().unwrap()[0].1
}

/// An HTTP/2 upstream on `addr` that holds the response to the first
/// request it gets until released, and answers every other at once.
struct HoldsFirst {
    seen: tokio::sync::watch::Receiver<usize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl HoldsFirst {
    async fn serve_on(addr: SocketAddr) -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (count, seen) = tokio::sync::watch::channel(0_usize);
        let (open, opened) = tokio::sync::watch::channel(false);
        let count = Arc::new(count);
        let first = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let (count, opened, first) = (count.clone(), opened.clone(), first.clone());
                let svc = hyper::service::service_fn(move |_req| {
                    let mut opened = opened.clone();
                    let held = first.fetch_add(1, Ordering::SeqCst) == 0;
                    count.send_modify(|n| *n += 1);
                    async move {
                        if held {
                            opened.wait_for(|open| *open).await.unwrap();
                        }
                        Ok::<_, std::convert::Infallible>(Response::new(full("ok")))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(conn), svc),
                );
            }
        });
        Self { seen, open }
    }

    async fn wait_for(&self, n: usize) {
        let mut seen = self.seen.clone();
        seen.wait_for(|seen| *seen >= n).await.unwrap();
    }

    fn release(&self) {
        self.open.send_replace(true);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_probe_whose_response_is_held_puts_its_endpoint_back_once_connected() {
    let endpoint = refused_addr();
    let backoff =
        ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(120), 0.0).unwrap();
    let forward = Forward::new(Client::new(&ClientConfig::default()), [endpoint])
        .unwrap()
        .with_connect_backoff(backoff);
    let view = forward.balancer_view().unwrap();
    let (status, _) = send(&forward).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(state_of(&view), EndpointState::Pending);

    // The endpoint comes back; once its backoff is over, the next request
    // is its probe, whose response the upstream holds.
    let upstream = HoldsFirst::serve_on(endpoint).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    let probe = tokio::spawn({
        let forward = forward.clone();
        async move { send(&forward).await }
    });
    upstream.wait_for(1).await;

    // The probe's connection is made: the endpoint is ready, and the next
    // request is answered, not held behind the probe's response until the
    // service fails fast.
    assert_eq!(send(&forward).await, (StatusCode::OK, None));
    assert_eq!(state_of(&view), EndpointState::Ready);
    upstream.release();
    assert_eq!(probe.await.unwrap(), (StatusCode::OK, None));
    assert_eq!(state_of(&view), EndpointState::Ready);
}

#[tokio::test(flavor = "current_thread")]
async fn a_probe_whose_connect_is_refused_again_still_backs_off_longer() {
    let endpoint = refused_addr();
    let backoff =
        ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(120), 0.0).unwrap();
    let forward = Forward::new(Client::new(&ClientConfig::default()), [endpoint])
        .unwrap()
        .with_connect_backoff(backoff);
    let view = forward.balancer_view().unwrap();
    assert_eq!(send(&forward).await.0, StatusCode::BAD_GATEWAY);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    // The probe is refused: no connection is captured, and the endpoint
    // is out for twice as long.
    assert_eq!(send(&forward).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(state_of(&view), EndpointState::Pending);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    assert_eq!(state_of(&view), EndpointState::Pending);
}
