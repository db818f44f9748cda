//! A traffic split whose backend is down: once that backend is in
//! fail-fast, its share goes to the others, as Linkerd's `RandomAvailable`
//! sends it, rather than being answered `503` `service in fail-fast`; and
//! when every backend is down, requests are shed (`503` `service
//! unavailable`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{collections::BTreeMap, net::SocketAddr};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_examples::sidecar::Running;
use support::*;

/// An application that answers each request `emoji`.
async fn emoji() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |_: Request<Incoming>| async move {
        Ok(Response::new(full("emoji")))
    });
    addr
}

/// A plaintext sidecar whose `emoji` route splits 50/50 between
/// `first` and `second` (name and endpoint each), with a fail-fast
/// timeout of 100 ms, its policy file in `dir`. It runs one runtime:
/// each runtime has its own balancers, which go into fail-fast each on
/// its own.
fn start(dir: &tempfile::TempDir, first: (&str, &str), second: (&str, &str)) -> Running {
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - backendRefs: [{{name: {}, port: 80, weight: 1}}, {{name: {}, port: 80, weight: 1}}]
",
            first.0, second.0
        ),
    )
    .unwrap();
    let mut services = String::new();
    // The route's parent is `emoji`, a backend or not.
    for (name, endpoint) in [first, second, ("emoji", "emoji.invalid:80")] {
        if !services.contains(&format!("name: {name}\n")) {
            services.push_str(&format!(
                "    - name: {name}\n      endpoints: [{endpoint}]\n"
            ));
        }
    }
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 100ms\n  services:\n{services}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ))
}

fn in_failfast() -> (StatusCode, Option<String>, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("service in fail-fast".to_owned()),
        String::new(),
    )
}

#[tokio::test]
async fn a_backend_in_failfast_gives_its_share_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let emoji = emoji().await.to_string();
    // `emoji-v2`'s one endpoint is a name that never resolves.
    let sidecar = start(
        &dir,
        ("emoji", emoji.as_str()),
        ("emoji-v2", "emoji-v2.invalid:80"),
    );
    // A request drawn to `emoji-v2` waits the fail-fast timeout for an
    // endpoint, and is answered in fail-fast: from then on, `emoji-v2` is.
    let mut waited = 0;
    loop {
        waited += 1;
        assert!(waited <= 200, "emoji-v2 never went into fail-fast");
        if upstreams::get(sidecar.outbound, "/").await == in_failfast() {
            break;
        }
    }
    let mut answers = BTreeMap::new();
    for _ in 0..100 {
        *answers
            .entry(upstreams::get(sidecar.outbound, "/").await)
            .or_insert(0) += 1;
    }
    let served = (StatusCode::OK, None, "emoji".to_owned());
    assert_eq!(answers, BTreeMap::from([(served, 100)]));
    stop(sidecar).await;
}

#[tokio::test]
async fn when_every_backend_is_in_failfast_each_request_is_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = start(
        &dir,
        ("emoji-v2", "emoji-v2.invalid:80"),
        ("emoji-v3", "emoji-v3.invalid:80"),
    );
    // The first request waits the fail-fast timeout of the backend it
    // is drawn to, and the second that of the other, which it is sent
    // to instead: each is answered in fail-fast. The rest are shed at
    // once, both backends in fail-fast, as Linkerd sheds a request no
    // backend is ready for.
    for _ in 0..2 {
        assert_eq!(upstreams::get(sidecar.outbound, "/").await, in_failfast());
    }
    let shed = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("service unavailable".to_owned()),
        String::new(),
    );
    for _ in 0..18 {
        assert_eq!(upstreams::get(sidecar.outbound, "/").await, shed);
    }
    stop(sidecar).await;
}
