//! A traffic split whose HTTP/2 backend refuses connections: its endpoint
//! backs off after its first failed connect, as Linkerd's proxy reconnects
//! an HTTP/2 endpoint, so the backend goes into fail-fast and its share
//! goes to the other backend, as Linkerd's `RandomAvailable` sends it.
//! (Before, an endpoint was connected per request whatever its protocol:
//! the backend answered `502` to its whole share and never went into
//! fail-fast.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{collections::BTreeMap, net::SocketAddr};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_examples::sidecar::Running;
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
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji, port: 80, weight: 1}, {name: emoji-v2, port: 80, weight: 1}]
",
    )
    .unwrap();
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 100ms\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{live}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{dead}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ))
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
