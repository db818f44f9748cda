//! A Server's routes through the sidecar's inbound listener are its
//! `GRPCRoute`s when its `proxyProtocol` is `gRPC` and its `HTTPRoute`s
//! otherwise, as Linkerd serves them: the same policy documents give a
//! call a route of one kind or the other by the Server's protocol alone,
//! and the kind set aside (with what targets it) decides nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use mesh_examples::sidecar::{config::SidecarConfig, policy};
use support::*;

/// `emoji`'s port, of `protocol`, with three routes: the `HTTPRoute`
/// `health` (`/healthz`) and the `GRPCRoute` `list` (`ListAll`), each
/// opened to loopback by its own policy, and the `HTTPRoute`
/// `emoji-service` (every path of the service) that nothing authorizes.
fn policy_yaml(protocol: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: emoji, namespace: emojivoto}}
spec:
  podSelector: {{matchLabels: {{app: emoji}}}}
  port: http
  proxyProtocol: {protocol}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: health, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /healthz}}}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: emoji-service, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /emojivoto.v1.EmojiService}}}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: list, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji}}]
  rules: [{{matches: [{{method: {{service: emojivoto.v1.EmojiService, method: ListAll}}}}]}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback, namespace: emojivoto}}
spec: {{networks: [{{cidr: 127.0.0.0/8}}]}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: health-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: health}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: list-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: GRPCRoute, name: list}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
"
    )
}

/// A gRPC call of `method` of the emoji service over HTTP/2: its HTTP
/// status and `grpc-status` (`-` for the application's answer, which has
/// none).
async fn call(inbound: std::net::SocketAddr, method: &str) -> (StatusCode, String) {
    let req = emoji_call("emoji.emojivoto", method)
        .body(full(""))
        .unwrap();
    let res = h2_via(inbound, req).await.unwrap();
    let grpc = res
        .headers()
        .get("grpc-status")
        .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
    (res.status(), grpc)
}

/// The HTTP status of `method path` over HTTP/1.1, without gRPC's
/// `content-type`.
async fn status(inbound: std::net::SocketAddr, method: &str, path: &str) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{inbound}{path}"))
        .header("host", "emoji.emojivoto")
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap().status()
}

#[tokio::test]
async fn a_grpc_server_serves_its_grpc_routes_only() {
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_inbound(app, &policy_yaml("gRPC"));
    let inbound = sidecar.inbound[0];

    // ListAll takes the GRPCRoute, open to loopback.
    assert_eq!(call(inbound, "ListAll").await, (StatusCode::OK, "-".into()));
    // Another method is on no GRPCRoute: the HTTPRoute for the whole
    // service (which would refuse it) is set aside, so it is not found.
    assert_eq!(
        call(inbound, "FindByShortcode").await,
        (StatusCode::OK, "5".into())
    );
    assert_eq!(
        status(
            inbound,
            "POST",
            "/emojivoto.v1.EmojiService/FindByShortcode"
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // So is the health check, whose HTTPRoute and policy are set aside.
    assert_eq!(
        status(inbound, "GET", "/healthz").await,
        StatusCode::NOT_FOUND
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn an_unknown_protocol_server_serves_its_http_routes_only() {
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_inbound(app, &policy_yaml("unknown"));
    let inbound = sidecar.inbound[0];

    assert_eq!(status(inbound, "GET", "/healthz").await, StatusCode::OK);
    // ListAll takes the HTTPRoute for the whole service, which nothing
    // authorizes: the GRPCRoute and the policy that opens it to loopback
    // are set aside, as Linkerd would not serve them.
    assert_eq!(call(inbound, "ListAll").await, (StatusCode::OK, "7".into()));
    assert_eq!(
        status(inbound, "POST", "/emojivoto.v1.EmojiService/ListAll").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(inbound, "GET", "/elsewhere").await,
        StatusCode::NOT_FOUND
    );
    stop(sidecar).await;
}

#[test]
fn the_routes_set_aside_and_their_policies_are_named_in_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    for (protocol, route, policy_name) in [
        ("unknown", "GRPCRoute emojivoto/list", "list-from-loopback"),
        ("gRPC", "HTTPRoute emojivoto/health", "health-from-loopback"),
    ] {
        std::fs::write(&file, policy_yaml(protocol)).unwrap();
        let yaml = format!(
            "policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
             \x20   ports: {{http: 8080}}\n  files: [{}]\n",
            file.display()
        );
        let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
        let checked = policy::compile(&config.policy).unwrap();
        let warnings: Vec<String> = checked
            .compiled
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect();
        let expected = format!(
            "{route} targets Server emoji whose proxyProtocol is {protocol}: Linkerd serves"
        );
        assert!(
            warnings.iter().any(|w| w.contains(&expected)),
            "{protocol}: no {expected:?} in {warnings:#?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains(&format!(
                "(AuthorizationPolicy emojivoto/{policy_name}): spec.targetRef"
            )) && w.contains("authorizes nothing")),
            "{protocol}: {warnings:#?}"
        );
    }
}
