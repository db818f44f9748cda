//! An HTTP/2 connect whose request is given up on (a route timeout
//! shorter than the connect timeout cut it) still ends, and backs its
//! endpoint off when it fails, as Linkerd's proxy, which reconnects an
//! endpoint apart from the requests sent to it (linkerd2-proxy
//! `linkerd/reconnect`), learns from every connect. Otherwise an
//! endpoint whose connects never end in time (its SYNs dropped) behind
//! such a timeout would take its share of requests for ever, each timed
//! out.
//!
//! The endpoint here is a listener whose accept queue is full: the
//! kernel drops the SYNs of any further connect, which then ends only at
//! the client's connect timeout (1 s). Time runs on tokio's paused clock
//! while only that connect and the timeouts are under way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::accrual::h2_upstream;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use mesh_core::{
    body::full,
    client::{Client, ClientConfig},
    proxy::{
        BalancerView, EndpointSet, EndpointState, Forward, IN_FAILFAST, balance::ConnectBackoff,
    },
};
use tokio::net::{TcpSocket, TcpStream};
use tower::ServiceExt;

type Fwd = Forward<Client<Empty<Bytes>>>;

/// Shorter than the client's connect timeout, 1 s.
const ROUTE_TIMEOUT: Duration = Duration::from_millis(300);

/// A listener whose accept queue is full, and the connections that fill
/// it: a connect to it is never answered while they are held.
struct Blackhole {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    async fn start() -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // Linux queues one connection more than the backlog, then drops
        // the SYNs of the next.
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let queued = vec![TcpStream::connect(addr).await.unwrap()];
        Self {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// A minute, doubling to two.
fn long_backoff() -> ConnectBackoff {
    ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(120), 0.0).unwrap()
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/")
        .version(Version::HTTP_2)
        .header("host", "web")
        .body(Empty::new())
        .unwrap()
}

/// The status and `mesh-error` of `forward`'s answer, its body read
/// whole; `None` when the route timeout cut it first.
async fn send_within(forward: &Fwd, timeout: Duration) -> Option<(StatusCode, Option<String>)> {
    let send = async {
        let res = forward.clone().oneshot(get()).await.unwrap();
        let error = res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status();
        res.into_body().collect().await.unwrap();
        (status, error)
    };
    tokio::time::timeout(timeout, send).await.ok()
}

fn state_of(view: &BalancerView, addr: SocketAddr) -> EndpointState {
    view.endpoints()
        .unwrap()
        .into_iter()
        .find(|(a, _)| *a == addr)
        .unwrap()
        .1
}

/// Lets the paused clock run until `addr` reads `state`, for at most a
/// few of its seconds.
async fn wait_for_state(view: &BalancerView, addr: SocketAddr, state: EndpointState) {
    for _ in 0..50 {
        if state_of(view, addr) == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state_of(view, addr), state);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_connect_cut_by_a_route_timeout_still_backs_its_endpoint_off() {
    let dead = Blackhole::start().await;
    let set = EndpointSet::new([dead.addr])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let forward = Forward::with_endpoints(client(), &set);
    let view = set.view();

    // The request to it is cut before its connect ends, and the
    // endpoint is still ready then: nothing has failed yet.
    assert_eq!(send_within(&forward, ROUTE_TIMEOUT).await, None);
    assert_eq!(state_of(&view, dead.addr), EndpointState::Ready);
    // Its connect ends at the connect timeout all the same, and fails.
    wait_for_state(&view, dead.addr, EndpointState::Pending).await;

    // An endpoint that answers joins: every request goes to it, none
    // to the one backing off, which stays so.
    let alive = h2_upstream(|_| async { Response::new(full("ok")) }).await;
    assert!(set.update([dead.addr, alive]).unwrap());
    tokio::time::resume();
    for _ in 0..20 {
        let answer = send_within(&forward, Duration::from_secs(10)).await;
        assert_eq!(answer, Some((StatusCode::OK, None)));
    }
    assert_eq!(state_of(&view, dead.addr), EndpointState::Pending);
    assert_eq!(state_of(&view, alive), EndpointState::Ready);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_probe_cut_by_a_route_timeout_backs_its_endpoint_off_longer() {
    let dead = Blackhole::start().await;
    let set = EndpointSet::new([dead.addr])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let forward = Forward::with_endpoints(client(), &set);
    let view = set.view();
    assert_eq!(send_within(&forward, ROUTE_TIMEOUT).await, None);
    wait_for_state(&view, dead.addr, EndpointState::Pending).await;

    // Its backoff over, the next request is its probe, cut too; the
    // probe's connect fails after it, and doubles the backoff.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(!forward.in_failfast(), "a request may probe it");
    assert_eq!(send_within(&forward, ROUTE_TIMEOUT).await, None);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // So the next request finds no endpoint to probe: it waits, and
    // fails fast, rather than being sent to connect again.
    let answer = send_within(&forward, Duration::from_secs(10)).await;
    assert_eq!(
        answer,
        Some((StatusCode::SERVICE_UNAVAILABLE, Some(IN_FAILFAST.into())))
    );
    assert_eq!(state_of(&view, dead.addr), EndpointState::Pending);
}

fn client() -> Client<Empty<Bytes>> {
    Client::new(&ClientConfig::default())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_endpoint_that_left_and_came_back_between_requests_still_backs_off() {
    let dead = Blackhole::start().await;
    let other = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let set = EndpointSet::new([dead.addr])
        .unwrap()
        .with_connect_backoff(long_backoff());
    let forward = Forward::with_endpoints(client(), &set);
    let view = set.view();

    // The endpoint leaves and comes back, fresh, with no request in
    // between to see it go.
    assert!(set.update([other]).unwrap());
    assert!(set.update([dead.addr]).unwrap());

    // A request to it is cut before its connect ends, which fails after
    // it: the endpoint in the set backs off.
    assert_eq!(send_within(&forward, ROUTE_TIMEOUT).await, None);
    wait_for_state(&view, dead.addr, EndpointState::Pending).await;
}
