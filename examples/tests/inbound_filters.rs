//! The filters of the workload's own `HTTPRoute`s (under a `Server`)
//! through the sidecar's inbound listener: a redirect answers an allowed
//! request without the application, header modifiers edit what the
//! application gets and what the caller gets back, and a request
//! authorization refuses gets its 403, not the redirect.
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

/// `emoji`'s HTTP port, reachable from loopback on its `emoji-public`
/// routes and from `10.0.0.0/8` only on `emoji-private`.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: emoji}}
  port: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-public, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 301
  - matches: [{path: {type: Exact, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-env, value: canary}]
        remove: [x-debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-served-by, value: mesh}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-private, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /private}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: private.example.com}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec:
  networks: [{cidr: 127.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: cluster, namespace: emojivoto}
spec:
  networks: [{cidr: 10.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: public-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: emoji-public}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: private-from-cluster, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: emoji-private}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: cluster}
";

/// An application that counts its requests and answers with the request
/// headers it got, one `name: value` a line.
async fn app() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        count.fetch_add(1, Ordering::Relaxed);
        let mut text = String::new();
        for (name, value) in req.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        async move { Ok(Response::new(full(text))) }
    });
    (addr, seen)
}

#[tokio::test]
async fn inbound_routes_redirect_and_edit_headers_after_authorization() {
    let (app, seen) = app().await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    let inbound = sidecar.inbound[0];
    let client = http1();
    let get = |path: &str| {
        Request::get(format!("http://{inbound}{path}"))
            .header("host", "emoji.emojivoto:8080")
            .header("x-env", "prod")
            .header("x-debug", "1")
            .body(full(""))
            .unwrap()
    };

    // An allowed request on the redirecting rule: the sidecar answers.
    let res = client.request(get("/old/list?page=2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        res.headers()["location"],
        "http://emoji.emojivoto:8080/new/list?page=2"
    );
    assert!(body_bytes(res).await.is_empty());
    assert_eq!(
        seen.load(Ordering::Relaxed),
        0,
        "the redirect reached the app"
    );

    // A refused request gets its 403, not the route's redirect.
    let res = client.request(get("/private/x")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.headers().contains_key("location"));
    assert_eq!(seen.load(Ordering::Relaxed), 0);

    // Header modifiers: the app gets the edited request, the caller the
    // edited response.
    let res = client.request(get("/headers")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-served-by"], "mesh");
    let text = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"x-env: canary"), "{lines:?}");
    assert!(!lines.contains(&"x-env: prod"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("x-debug")), "{lines:?}");
    assert_eq!(seen.load(Ordering::Relaxed), 1);

    // The redirect is counted as the route's response, a success.
    let metrics = scrape(sidecar.admin).await;
    let counted = metrics.lines().any(|line| {
        line.starts_with("response_total{")
            && line.contains("direction=\"inbound\"")
            && line.contains("route_name=\"emoji-public\"")
            && line.contains("status_code=\"301\"")
            && line.contains("classification=\"success\"")
            && line.ends_with(" 1")
    });
    assert!(counted, "{metrics}");
    stop(sidecar).await;
}

/// A header a route's filter sets reaches the application even when the
/// client's `Connection` header names it: the client's copy is the one
/// that belongs to the hop, and is dropped before the filter runs, not
/// the filter's after it.
#[tokio::test]
async fn a_client_cannot_drop_a_header_the_route_sets_by_naming_it_in_connection() {
    let (app, _) = app().await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    let req = Request::get(format!("http://{}/headers", sidecar.inbound[0]))
        .header("host", "emoji.emojivoto:8080")
        .header("connection", "keep-alive, X-Env")
        .header("x-env", "prod")
        .header("x-hop", "1")
        .header("connection", "x-hop")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"x-env: canary"), "{lines:?}");
    assert!(!lines.contains(&"x-env: prod"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("x-hop")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("connection")),
        "{lines:?}"
    );
    stop(sidecar).await;
}
