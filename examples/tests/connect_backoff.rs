//! A traffic split whose HTTP/2 backend refuses connections: its endpoint
//! backs off after its first failed connect, as Linkerd's proxy reconnects
//! an HTTP/2 endpoint, so the backend goes into fail-fast and its share
//! goes to the other backend, as Linkerd's `RandomAvailable` sends it.
//! (Before, an endpoint was connected per request whatever its protocol:
//! the backend answered `502` to its whole share and never went into
//! fail-fast.)
//!
//! HTTP/1.1 requests the sidecar carries to a meshed service as HTTP/2
//! (`http2_upgrade`) back its refusing endpoint off too, as Linkerd's
//! proxy reconnects the endpoint of a meshed peer it upgrades HTTP/1 to
//! (linkerd2-proxy `Params::OrigProtoUpgrade`); those it sends as they
//! came (HTTP/1.0, or to a service without the upgrade) do not. (Before,
//! the balancer judged by the version the request reached it with, and
//! the upgrade came after: the endpoint never backed off.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{collections::BTreeMap, net::SocketAddr};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_examples::sidecar::{Running, certs};
use support::*;

/// An application that answers each request `emoji`, over HTTP/1.1 or
/// HTTP/2.
async fn emoji() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |_: Request<Incoming>| async move {
        Ok(Response::new(full("emoji")))
    });
    addr
}

/// A plaintext sidecar whose `emoji` route splits 50/50 between `emoji`
/// at `live` and `emoji-v2` at `dead`, with a fail-fast timeout of
/// 100 ms, its policy file in `dir`; one runtime, so one balancer each.
fn start(dir: &tempfile::TempDir, live: SocketAddr, dead: SocketAddr) -> Running {
    upstreams::split_sidecar(dir.path(), "100ms", live, dead, "", 1)
}

/// One HTTP/2 connection to `addr`.
async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Body> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    h2
}

/// The answer to an HTTP/2 request for `emoji`: its status, its
/// `mesh-error` and its body.
async fn answer(
    h2: &mut hyper::client::conn::http2::SendRequest<Body>,
) -> (u16, Option<String>, String) {
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
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, error, body)
}

#[tokio::test]
async fn an_http2_backend_refusing_goes_into_failfast_and_gives_its_share_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let dead = SocketAddr::from(([127, 0, 0, 1], refused_port()));
    let sidecar = start(&dir, emoji().await, dead);
    let mut h2 = h2_client(sidecar.outbound).await;
    let served = (200, None, "emoji".to_owned());
    let refused = (
        502,
        Some("upstream connect error".to_owned()),
        String::new(),
    );
    let in_failfast = (503, Some("service in fail-fast".to_owned()), String::new());
    // A request drawn to `emoji-v2` fails to connect: the endpoint backs
    // off, and the next request drawn to it waits for it, and is answered
    // in fail-fast after 100 ms. From then on, `emoji-v2` is.
    let mut answers = BTreeMap::new();
    loop {
        let got = answer(&mut h2).await;
        *answers.entry(got.clone()).or_insert(0) += 1;
        assert!(
            answers.values().sum::<usize>() <= 200,
            "emoji-v2 never went into fail-fast: {answers:?}"
        );
        if got == in_failfast {
            break;
        }
        assert!(got == served || got == refused, "{got:?}");
    }
    // Its share goes to `emoji`. Only a request that takes `emoji-v2`'s
    // connect after a backoff ends is sent to it, and answered `502`:
    // backoffs double from 100 ms, so a handful at most.
    let mut answers = BTreeMap::new();
    for _ in 0..100 {
        *answers.entry(answer(&mut h2).await).or_insert(0) += 1;
    }
    let probes = answers.get(&refused).copied().unwrap_or(0);
    assert_eq!(
        answers.get(&served).copied().unwrap_or(0) + probes,
        100,
        "{answers:?}"
    );
    assert!(probes <= 10, "{answers:?}");
    stop(sidecar).await;
}

/// `service`'s endpoints in `state` on `/metrics` at `admin`.
async fn endpoints(admin: SocketAddr, service: &str, state: &str) -> u64 {
    let metrics = scrape(admin).await;
    series(
        &metrics,
        "outbound_http_balancer_endpoints",
        &[
            &format!("service=\"{service}\""),
            &format!("endpoint_state=\"{state}\""),
        ],
    )
}

/// The status and `mesh-error` of a request for `host` in `version`
/// through `outbound`, on a connection of its own.
async fn status(outbound: SocketAddr, host: &str, version: Version) -> (u16, Option<String>) {
    let req = Request::get(format!("http://{outbound}/"))
        .version(version)
        .header("host", host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status().as_u16();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    body_bytes(res).await;
    (status, error)
}

#[tokio::test]
async fn an_http_11_request_upgraded_to_a_meshed_peer_backs_its_refusing_endpoint_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    // `emoji`, meshed, takes HTTP/1.1 as HTTP/2; `voting` does not. Both
    // endpoints refuse connections.
    let sidecar = sidecar(&format!(
        "identity:\n  ca: {}\n  identity: {}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {}\n      http2_upgrade: true\n\
         \x20   - name: voting\n      endpoints: [{}]\n      identity: {}\n      http2_upgrade: false\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        ca.display(),
        identity("web"),
        refused_addr().await,
        identity("emoji"),
        refused_addr().await,
        identity("voting"),
    ));
    let refused = (502, Some("upstream connect error".to_owned()));
    // Sent as they came, over HTTP/1: each connect is the request's own,
    // as Linkerd's proxy connects a plain HTTP/1 endpoint, and a refused
    // one backs nothing off.
    assert_eq!(
        status(sidecar.outbound, "voting", Version::HTTP_11).await,
        refused
    );
    assert_eq!(
        status(sidecar.outbound, "emoji", Version::HTTP_10).await,
        refused
    );
    assert_eq!(endpoints(sidecar.admin, "voting", "ready").await, 1);
    assert_eq!(endpoints(sidecar.admin, "emoji", "ready").await, 1);
    // Carried as HTTP/2: its refused connect takes the endpoint out until
    // a connect after the backoff succeeds, which none will.
    assert_eq!(
        status(sidecar.outbound, "emoji", Version::HTTP_11).await,
        refused
    );
    assert_eq!(endpoints(sidecar.admin, "emoji", "pending").await, 1);
    assert_eq!(endpoints(sidecar.admin, "emoji", "ready").await, 0);
    assert_eq!(endpoints(sidecar.admin, "voting", "ready").await, 1);
    stop(sidecar).await;
}
