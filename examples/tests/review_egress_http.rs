//! Egress of plain HTTP through a real sidecar, at its edges: a target
//! that asks for TLS (`https://`, in HTTP/1's absolute form or HTTP/2's
//! `:scheme`) is refused rather than sent in plaintext, and the loop guard
//! holds for an outbound listener on every interface. 127.0.0.1 is
//! outside the default cluster networks, so a network without `networks`
//! captures a local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::atomic::Ordering};

use http::{Request, StatusCode};
use mesh_examples::sidecar::Running;
use support::egress::{self, network};
use support::upstreams::named;
use support::*;

/// A plaintext sidecar in `emojivoto`, its outbound listener on `listen`,
/// without outbound services, with `policy` as its policy file.
fn egress_sidecar(dir: &std::path::Path, listen: &str, policy: &str) -> Running {
    let config = format!(
        "outbound:\n  listen: {listen}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    );
    egress::sidecar(dir, &config, policy).0
}

/// An `EgressNetwork` of `emojivoto` with `trafficPolicy: Allow` and no
/// `networks`: every address outside the cluster networks.
fn allow_all() -> String {
    network("all", "Allow", "")
}

/// Sends `GET scheme://upstream/` in absolute form, as a client of a
/// forward proxy does, to `outbound`: the whole answer.
async fn proxy_get(outbound: SocketAddr, scheme: &str, upstream: SocketAddr) -> String {
    let request = format!(
        "GET {scheme}://{upstream}/ HTTP/1.1\r\nhost: {upstream}\r\nconnection: close\r\n\r\n"
    );
    raw_exchange(outbound, &request).await
}

/// The status line and `mesh-error` of `raw`, a whole HTTP/1 answer.
fn status_and_error(raw: &str) -> (&str, Option<&str>) {
    let status = raw.lines().next().unwrap_or_default();
    let error = raw
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("mesh-error: "));
    (status, error)
}

/// A client that asks the proxy for `https://` wants TLS to the
/// destination. Egress sends plaintext: it would carry the request's
/// headers and body in the clear, to the port the target names (or 80).
/// It is refused `501`, naming `CONNECT`, and nothing is sent; a target in
/// `http://`, on the same connection's terms, still goes out.
#[tokio::test]
async fn an_https_target_is_refused_501_and_sent_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let running = egress_sidecar(dir.path(), "127.0.0.1:0", &allow_all());

    for target in [
        format!("https://{upstream}/secret"),
        format!("HTTPS://localhost:{}/secret", upstream.port()),
    ] {
        let raw = raw_exchange(
            running.outbound,
            &format!(
                "GET {target} HTTP/1.1\r\nhost: {upstream}\r\n\
                 authorization: Bearer s3cret\r\nconnection: close\r\n\r\n"
            ),
        )
        .await;
        let (status, error) = status_and_error(&raw);
        assert!(status.starts_with("HTTP/1.1 501 "), "{target}: {raw}");
        assert_eq!(
            error,
            Some("egress sends http only: use CONNECT for https"),
            "{raw}"
        );
    }

    // HTTP/2's `:scheme https`, on a gRPC call: UNIMPLEMENTED.
    let call = Request::post(format!(
        "https://{upstream}/emojivoto.v1.EmojiService/ListAll"
    ))
    .version(http::Version::HTTP_2)
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(full(""))
    .unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "12");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The same destination in `http://` is sent.
    let raw = proxy_get(running.outbound, "http", upstream).await;
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert!(raw.ends_with("upstream"), "{raw}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}

/// Without an `EgressNetwork` nothing changes, `https://` targets
/// included: the 404 of an unknown authority.
#[tokio::test]
async fn without_egress_networks_an_https_target_keeps_the_404() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let running = egress_sidecar(dir.path(), "127.0.0.1:0", "");
    let raw = proxy_get(running.outbound, "https", upstream).await;
    assert_eq!(
        status_and_error(&raw),
        ("HTTP/1.1 404 Not Found", Some("no route")),
        "{raw}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    stop(running).await;
}

/// An outbound listener on every interface is reached by its loopback
/// address and by `0.0.0.0` (which Linux connects to loopback): neither is
/// egress, where each request would come back to the listener as egress
/// again, on a new connection each round.
#[tokio::test]
async fn a_listener_on_every_interface_is_never_egress() {
    let dir = tempfile::tempdir().unwrap();
    let running = egress_sidecar(dir.path(), "0.0.0.0:0", &allow_all());
    let port = running.outbound.port();
    let listener = SocketAddr::from(([127, 0, 0, 1], port));
    for host in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let raw = tokio::time::timeout(
            WAIT_BOUND,
            raw_exchange(
                listener,
                &format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
            ),
        )
        .await
        .expect("the request looped");
        assert_eq!(
            status_and_error(&raw),
            ("HTTP/1.1 404 Not Found", Some("no route")),
            "{host}: {raw}"
        );
    }
    stop(running).await;
}

/// The admin server serves `/shutdown` and `/env.json` to loopback peers
/// alone. Egress would reach it, and the inbound listener, from loopback
/// whoever sent the request: an ingress's client, say. Neither is egress,
/// by request or by `CONNECT`: both get the 404 of an unknown authority,
/// and the sidecar keeps running.
#[tokio::test]
async fn the_admin_and_inbound_listeners_are_never_egress() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = named("app").await;
    let config = format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    );
    let (running, _) = egress::sidecar(dir.path(), &config, &allow_all());
    let (admin, inbound) = (running.admin, running.inbound[0]);
    for target in [admin, inbound] {
        let port = target.port();
        for request in [
            format!(
                "POST http://127.0.0.1:{port}/shutdown HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
            format!(
                "GET /env.json HTTP/1.1\r\nhost: localhost:{port}\r\nconnection: close\r\n\r\n"
            ),
        ] {
            let raw = tokio::time::timeout(WAIT_BOUND, raw_exchange(running.outbound, &request))
                .await
                .expect("answered");
            assert_eq!(
                status_and_error(&raw),
                ("HTTP/1.1 404 Not Found", Some("no route")),
                "{request}: {raw}"
            );
        }
        let (_, head) = connect_head(running.outbound, &format!("127.0.0.1:{port}")).await;
        assert_eq!(
            status_and_error(&head),
            ("HTTP/1.1 404 Not Found", Some("no route")),
            "CONNECT to {port}: {head}"
        );
    }
    // Still serving: the admin server answers its own loopback peers.
    let raw = raw_exchange(
        admin,
        "GET /live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    stop(running).await;
}

/// A `CONNECT` through a `Deny` network whose port has HTTP routes (and
/// no TLS or TCP routes) is refused as any `CONNECT` there: `403`, not the
/// `501` a route's forwarding would give a request it cannot send, and
/// counted under the default route.
#[tokio::test]
async fn a_connect_to_a_denied_port_with_http_routes_is_refused_403() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let port = upstream.port();
    let policy = format!(
        "{}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: anything, namespace: emojivoto}}\n\
         spec:\n  parentRefs: [{{group: policy.linkerd.io, kind: EgressNetwork, name: all, port: {port}}}]\n\
         \x20 rules: [{{}}]\n",
        network("all", "Deny", "")
    );
    let running = egress_sidecar(dir.path(), "127.0.0.1:0", &policy);
    // The route lets requests through.
    let raw = proxy_get(running.outbound, "http", upstream).await;
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    let (_, head) = connect_head(running.outbound, &upstream.to_string()).await;
    assert_eq!(
        status_and_error(&head),
        ("HTTP/1.1 403 Forbidden", Some("egress denied")),
        "{head}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}
