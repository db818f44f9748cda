//! A service whose route timeout is shorter than the connect timeout,
//! and one of whose endpoints never answers a connect (its SYNs dropped):
//! the request drawn to it is answered `504` when the timeout cuts it,
//! and the connect, which goes on without it, fails at the connect
//! timeout and backs the endpoint off, as Linkerd's proxy, connecting
//! apart from requests (linkerd2-proxy `linkerd/reconnect`), backs it
//! off. Every request after goes to the endpoint that answers. (Before,
//! the connect was dropped with its request: nothing was learnt, and
//! the endpoint took its share of requests for ever, each timed out.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Version};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpSocket, TcpStream};

use support::*;

/// A listener whose accept queue is full, and the connection that fills
/// it: Linux queues one connection more than the backlog, then drops the
/// SYNs of the next, so a connect to it never ends while they are held.
struct Blackhole {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: TcpStream,
}

impl Blackhole {
    async fn start() -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let queued = TcpStream::connect(addr).await.unwrap();
        Self {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// One HTTP/2 connection to `addr`.
async fn h2_client(addr: SocketAddr) -> SendRequest<Body> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    h2
}

/// The status and `mesh-error` of an HTTP/2 request for `emoji`.
async fn answer(h2: &mut SendRequest<Body>) -> (u16, Option<String>) {
    let req = Request::get("http://emoji/")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    h2.ready().await.unwrap();
    let res = h2.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    body_bytes(res).await;
    (status, error)
}

/// `emoji`'s endpoints in `state` in `metrics`.
fn endpoints(metrics: &str, state: &str) -> u64 {
    series(
        metrics,
        "outbound_http_balancer_endpoints",
        &["service=\"emoji\"", &format!("endpoint_state=\"{state}\"")],
    )
}

#[tokio::test]
async fn an_endpoint_whose_connects_outlast_the_route_timeout_backs_off() {
    let dead = Blackhole::start().await;
    let (alive, _) = backend().await;
    // The connect timeout is the client's default, 1 s.
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}, {alive}]\n      timeouts: {{request: 300ms}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        dead.addr
    ));
    let mut h2 = h2_client(sidecar.outbound).await;
    let served = (200, None);
    // Until a request is drawn to the endpoint that never connects: the
    // route timeout cuts it.
    let mut sent = 0;
    let cut = loop {
        let got = answer(&mut h2).await;
        if got != served {
            break got;
        }
        sent += 1;
        assert!(sent < 200, "no request was drawn to {}", dead.addr);
    };
    assert_eq!(cut.0, 504, "{cut:?}");
    // Its connect ends at the connect timeout all the same, and backs the
    // endpoint off.
    let metrics = scrape_until(sidecar.admin, |m| endpoints(m, "pending") == 1).await;
    assert_eq!(endpoints(&metrics, "pending"), 1, "{metrics}");
    assert_eq!(endpoints(&metrics, "ready"), 1, "{metrics}");
    // From then on every request goes to the endpoint that answers (the
    // backoff, 100 ms doubling, lets a probe through now and then, which
    // the route timeout cuts, and which backs it off for longer).
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..50 {
        *answers.entry(answer(&mut h2).await).or_insert(0) += 1;
    }
    let probes = 50 - answers.get(&served).copied().unwrap_or(0);
    assert!(probes <= 3, "{answers:?}");
    stop(sidecar).await;
}
