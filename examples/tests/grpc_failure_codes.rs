//! The gRPC codes the sidecar counts as failures are Linkerd's
//! (`UNKNOWN`, `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, `INTERNAL`,
//! `UNAVAILABLE`, `DATA_LOSS`), so its success rates read as
//! `linkerd viz stat` shows them: a call a Server's policy denies
//! (`PERMISSION_DENIED`) is a failure in its caller's `response_total`,
//! and a call the application answers `UNIMPLEMENTED` is a success, on
//! both sides. The denial itself stays out of the callee's
//! `response_total` (it is counted by `inbound_http_authz_deny_total`, as
//! in Linkerd), so the caller's sidecar is where it is classified. Real
//! sockets: a client sidecar, the callee's sidecar and its application.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::*;

/// `emoji`'s port with two routes: `list` (`ListAll`), open to loopback,
/// and `vote` (`Vote`), which nothing authorizes, so a call of it is
/// denied.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: emoji}}
  port: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: list, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  rules: [{matches: [{path: {type: Exact, value: /emojivoto.v1.EmojiService/ListAll}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: vote, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  rules: [{matches: [{path: {type: Exact, value: /emojivoto.v1.EmojiService/Vote}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec: {networks: [{cidr: 127.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: list-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: list}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
";

/// A gRPC server that has no method at all: every call is answered
/// `UNIMPLEMENTED`, trailers-only, as gRPC servers answer a method they
/// do not serve.
async fn unimplemented_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |_: Request<hyper::body::Incoming>| async move {
        Ok(Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "12")
            .body(full(""))
            .unwrap())
    });
    addr
}

/// Calls `method` through the client sidecar's outbound listener, reads
/// the answer to its end, and gives its HTTP status and `grpc-status`.
async fn call(outbound: SocketAddr, method: &str) -> (StatusCode, String) {
    let req = emoji_call("emoji", method).body(full("")).unwrap();
    let res = h2_via(outbound, req).await.unwrap();
    let status = res.status();
    let code = res
        .headers()
        .get("grpc-status")
        .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
    res.into_body().collect().await.unwrap();
    (status, code)
}

/// The `response_total` samples of `direction` with `grpc-status` `code`
/// and classification `class`.
fn responses(metrics: &str, direction: &str, code: &str, class: &str) -> u64 {
    series(
        metrics,
        "response_total",
        &[
            &format!("direction=\"{direction}\""),
            &format!("grpc_status=\"{code}\""),
            &format!("classification=\"{class}\""),
        ],
    )
}

/// Asserts the `response_total` count of `direction` for each
/// `(grpc-status, classification, count)` of `expected`.
#[track_caller]
fn assert_responses(metrics: &str, direction: &str, expected: &[(&str, &str, u64)]) {
    for &(code, class, n) in expected {
        assert_eq!(
            responses(metrics, direction, code, class),
            n,
            "{direction} {code} {class}\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_denied_grpc_call_is_a_failure_and_an_unimplemented_one_a_success() {
    let (_dir, emoji) = emoji_inbound(unimplemented_app().await, POLICY);
    let web = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        emoji.inbound[0]
    ));

    assert_eq!(
        call(web.outbound, "Vote").await,
        (StatusCode::OK, "7".into())
    );
    assert_eq!(
        call(web.outbound, "ListAll").await,
        (StatusCode::OK, "12".into())
    );

    let metrics = scrape_until(web.admin, |m| {
        responses(m, "outbound", "7", "failure") + responses(m, "outbound", "12", "success") == 2
    })
    .await;
    assert_responses(
        &metrics,
        "outbound",
        &[
            ("7", "failure", 1),
            ("7", "success", 0),
            ("12", "success", 1),
            ("12", "failure", 0),
        ],
    );

    // The callee counts the call its application answered, a success, and
    // the denial only as a denial.
    let metrics = scrape_until(emoji.admin, |m| {
        responses(m, "inbound", "12", "success") == 1
    })
    .await;
    assert_responses(
        &metrics,
        "inbound",
        &[("12", "success", 1), ("12", "failure", 0)],
    );
    // Under no status at all: that call is the callee's one response.
    assert_eq!(
        series(&metrics, "response_total", &["direction=\"inbound\""]),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "inbound_http_authz_deny_total",
            &["route_name=\"vote\""]
        ),
        1,
        "{metrics}"
    );

    stop(web).await;
    stop(emoji).await;
}
