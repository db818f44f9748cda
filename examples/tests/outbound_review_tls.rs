//! A route's backends are each reached over their own service's TLS: a
//! request a rule sends to a mutual-TLS backend proves the caller's
//! identity to that backend's sidecar and checks the identity the backend
//! names, whatever the TLS of the service the request was addressed to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use http::{Request, StatusCode};
use mesh_examples::sidecar::certs;
use support::*;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const VOTING: &str = "spiffe://example.org/ns/emojivoto/sa/voting";

/// `emoji`'s routes: `/v2` to `emoji-v2`, `/v3` to `emoji-v3`, the rest
/// to `emoji` itself.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: emoji-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /v3}}]
    backendRefs: [{name: emoji-v3, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
";

/// An application that answers every request with its headers, one
/// `name: value` a line.
async fn headers_app() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        let mut text = String::new();
        for (name, value) in req.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        Ok(http::Response::new(full(text)))
    });
    addr
}

#[tokio::test]
async fn each_backend_of_a_route_is_reached_over_its_own_services_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    let emoji_certs = dir.path().join("emoji");
    certs::issue(&ca, EMOJI, Duration::from_secs(3600), &emoji_certs).unwrap();
    let app = headers_app().await;
    // The backends' sidecar, which takes mutual TLS only.
    let server = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        emoji_certs.display()
    ));
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    // `emoji` is plaintext, straight to the application; `emoji-v2` the
    // server sidecar over mutual TLS; `emoji-v3` the same sidecar,
    // expecting an identity it does not have.
    let inbound = server.inbound[0];
    let client = sidecar(&format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{inbound}]\n      identity: {EMOJI}\n\
         \x20   - name: emoji-v3\n      endpoints: [{inbound}]\n      identity: {VOTING}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        ca.display(),
        routes.display()
    ));
    let get = |path: &str| {
        let req = Request::get(format!("http://{}{path}", client.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        http1().request(req)
    };
    // Through the server sidecar, which tells the application who called.
    let res = get("/v2").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(seen.contains(&format!("mesh-client-id: {WEB}\n")), "{seen}");
    // The wrong identity fails closed, never in plaintext.
    let res = get("/v3").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
    // Straight to the application, in plaintext: no identity to tell.
    let res = get("/other").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(!seen.contains("mesh-client-id"), "{seen}");
    let metrics = scrape(client.admin).await;
    let over_tls = series(
        &metrics,
        "tcp_open_total",
        &[
            "direction=\"outbound\"",
            "peer=\"dst\"",
            &format!("server_id=\"{EMOJI}\""),
        ],
    );
    assert!(over_tls >= 1, "{metrics}");
    stop(client).await;
    stop(server).await;
}
