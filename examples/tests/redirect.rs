//! An `HTTPRoute` rule's `RequestRedirect` on an outbound route: the
//! sidecar answers the application's request with the redirect itself,
//! and the service the route belongs to never sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use http::{Request, Response, StatusCode};
use support::*;

/// `emoji`'s old API moved: requests under `/old` are sent to `/new` over
/// HTTPS, for good.
const MOVED: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-moved, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 301
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-moved-by, value: mesh}]
  - matches: [{path: {type: PathPrefix, value: /}}]
";

/// A backend that counts the requests it gets and answers `hello`.
async fn counting() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    serve(listener, move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        async move { Ok(Response::new(full("hello"))) }
    });
    (addr, seen)
}

#[tokio::test]
async fn an_outbound_route_with_a_redirect_answers_with_it_and_calls_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, MOVED).unwrap();
    let (app, seen) = counting().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ));
    let client = http1();
    let get = |path: &str| {
        Request::get(format!("http://{}{path}", sidecar.outbound))
            .header("host", "emoji:8080")
            .body(full(""))
            .unwrap()
    };

    let res = client.request(get("/old/list?page=2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    // The new scheme brings its own port; the query stays.
    assert_eq!(res.headers()["location"], "https://emoji/new/list?page=2");
    assert_eq!(res.headers()["x-moved-by"], "mesh");
    assert!(!res.headers().contains_key("mesh-error"));
    assert!(body_bytes(res).await.is_empty());
    assert_eq!(
        seen.load(Ordering::Relaxed),
        0,
        "the redirect reached emoji"
    );

    // Off the redirect, the catch-all rule sends requests to emoji.
    let res = client.request(get("/older")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "hello");
    assert_eq!(seen.load(Ordering::Relaxed), 1);

    // The redirect is counted under its route, as a 301 and not an error.
    let metrics = scrape(sidecar.admin).await;
    let counted = metrics.lines().any(|line| {
        line.starts_with("response_total{")
            && line.contains("route_name=\"emoji-moved\"")
            && line.contains("status_code=\"301\"")
            && line.contains("classification=\"success\"")
            && line.ends_with(" 1")
    });
    assert!(counted, "{metrics}");
    stop(sidecar).await;
}
