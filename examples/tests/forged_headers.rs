//! Headers that tell a sidecar or an application something about the
//! mesh, which a client must not be able to write itself: the HTTP/2
//! mark `mesh-orig-proto` that makes a peer sidecar turn a request into
//! HTTP/1.1, and the caller's identity, in `mesh-client-id` and in
//! Linkerd's `l5d-client-id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use mesh_examples::sidecar::Running;
use support::*;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";

/// `emoji`'s port: one route, for requests whose identity header names
/// `web`, open to any client on loopback. The header a route matches is
/// the one the application is given: the identity the connection proved,
/// never one the client wrote, as in Linkerd, whose proxy sets
/// `l5d-client-id` before it routes and authorizes.
fn web_route_policy() -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: emoji-http, namespace: emojivoto}}
spec:
  podSelector: {{matchLabels: {{app: emoji}}}}
  port: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: from-web, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji-http}}]
  rules:
  - matches:
    - headers: [{{name: l5d-client-id, value: \"{WEB}\"}}]
    - headers: [{{name: mesh-client-id, value: \"{WEB}\"}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback, namespace: emojivoto}}
spec:
  networks: [{{cidr: 127.0.0.0/8}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: from-web-on-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: from-web}}
  requiredAuthenticationRefs:
  - {{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}
"
    )
}

/// An application that answers with the version it got and its request
/// headers, one `name: value` a line.
async fn app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        let mut text = format!("{:?}\n", req.version());
        for (name, value) in req.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        Ok(Response::new(full(text)))
    });
    addr
}

/// The lines of a response's body, once its status is checked.
async fn lines(res: Response<hyper::body::Incoming>) -> Vec<String> {
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// A plaintext sidecar in front of `app`, serving its inbound port as `http`.
fn plaintext_inbound(app: SocketAddr) -> Running {
    sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

/// An HTTP/2 request from an application carrying `mesh-orig-proto` itself,
/// to a plaintext service (no `http2_upgrade`, the default) whose endpoint
/// is another sidecar: that sidecar must not take it for an HTTP/1.1
/// request its peer carried, and hand it on as one. Nor does the mark
/// reach anyone on an HTTP/1.1 request.
#[tokio::test]
async fn an_application_cannot_mark_its_request_for_downgrade() {
    let emoji = plaintext_inbound(app().await);
    let web = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        emoji.inbound[0]
    ));
    let h2 = Request::get("http://emoji/h2")
        .header("mesh-orig-proto", "HTTP/1.1")
        .body(full(""))
        .unwrap();
    let seen = lines(h2_via(web.outbound, h2).await.unwrap()).await;
    assert_eq!(seen[0], "HTTP/2.0", "{seen:?}");
    assert!(
        !seen.iter().any(|l| l.starts_with("mesh-orig-proto")),
        "{seen:?}"
    );

    let h1 = Request::get(format!("http://{}/h1", web.outbound))
        .header("host", "emoji")
        .header("mesh-orig-proto", "HTTP/1.1")
        .body(full(""))
        .unwrap();
    let seen = lines(http1().request(h1).await.unwrap()).await;
    assert_eq!(seen[0], "HTTP/1.1", "{seen:?}");
    assert!(
        !seen.iter().any(|l| l.starts_with("mesh-orig-proto")),
        "{seen:?}"
    );
    stop(web).await;
    stop(emoji).await;
}

/// An application written for Linkerd reads the caller's identity in
/// `l5d-client-id`: a client without one cannot write it.
#[tokio::test]
async fn a_plaintext_client_cannot_forge_either_identity_header() {
    let emoji = plaintext_inbound(app().await);
    let req = Request::get(format!("http://{}/", emoji.inbound[0]))
        .header("host", "emoji")
        .header("l5d-client-id", WEB)
        .header("mesh-client-id", WEB)
        .body(full(""))
        .unwrap();
    let seen = lines(http1().request(req).await.unwrap()).await;
    assert!(
        !seen.iter().any(|l| l.contains("client-id")),
        "a forged identity reached the application: {seen:?}"
    );
    stop(emoji).await;
}

/// Nor can it forge either header into a route that matches the caller's
/// identity: the route is chosen, and authorized, by the identity the
/// connection proved (none), so no route matches.
#[tokio::test]
async fn a_plaintext_client_cannot_forge_its_way_into_an_identity_route() {
    let (_dir, emoji) = emoji_inbound(app().await, &web_route_policy());
    for header in ["l5d-client-id", "mesh-client-id"] {
        let req = Request::get(format!("http://{}/", emoji.inbound[0]))
            .header("host", "emoji")
            .header(header, WEB)
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "a route was matched by a forged {header}"
        );
    }
    stop(emoji).await;
}

/// A route's `RequestHeaderModifier` cannot write either header: the
/// sidecar sets both after the route's filters, from the connection.
#[tokio::test]
async fn a_routes_header_modifier_cannot_forge_either_identity_header() {
    let policy = format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: emoji-http, namespace: emojivoto}}
spec:
  podSelector: {{matchLabels: {{app: emoji}}}}
  port: http
  accessPolicy: all-unauthenticated
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: emoji, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji-http}}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {{name: l5d-client-id, value: \"{WEB}\"}}
        - {{name: mesh-client-id, value: \"{WEB}\"}}
        add: [{{name: x-edited, value: \"yes\"}}]
"
    );
    let (_dir, emoji) = emoji_inbound(app().await, &policy);
    let req = Request::get(format!("http://{}/", emoji.inbound[0]))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let seen = lines(http1().request(req).await.unwrap()).await;
    // The rule's filter did run.
    assert!(seen.iter().any(|l| l == "x-edited: yes"), "{seen:?}");
    assert!(
        !seen.iter().any(|l| l.contains("client-id")),
        "a route's filter wrote an identity header: {seen:?}"
    );
    stop(emoji).await;
}

/// Over mutual TLS the application is told the caller's identity in both
/// headers, once each, whatever the caller wrote; and the route matched
/// on them is the one for that identity.
#[tokio::test]
async fn an_mtls_caller_is_named_in_both_identity_headers() {
    let dir = tempfile::tempdir().unwrap();
    let emoji_certs = issuer(dir.path())("emoji");
    let ca = dir.path().join("ca");
    // The only route matches `web`'s identity: the one the connection
    // proved, not the one the caller wrote.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, web_route_policy()).unwrap();
    let app = app().await;
    let emoji = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{http: {}}}\n  files: [{}]\n",
        emoji_certs.display(),
        app.port(),
        policy.display(),
    ));
    let web = sidecar(&format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {EMOJI}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        ca.display(),
        emoji.inbound[0],
    ));
    let forged = "spiffe://example.org/ns/emojivoto/sa/admin";
    let req = Request::get(format!("http://{}/", web.outbound))
        .header("host", "emoji")
        .header("l5d-client-id", forged)
        .header("mesh-client-id", forged)
        .body(full(""))
        .unwrap();
    let seen = lines(http1().request(req).await.unwrap()).await;
    let mut ids: Vec<&String> = seen.iter().filter(|l| l.contains("client-id")).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            &format!("l5d-client-id: {WEB}"),
            &format!("mesh-client-id: {WEB}")
        ],
        "{seen:?}"
    );
    stop(web).await;
    stop(emoji).await;
}
