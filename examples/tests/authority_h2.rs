//! Over HTTP/2 the sidecar sends on the authority the client asked for
//! as `:authority` (RFC 9113 §8.3.1), on either side: to an h2c
//! application inbound, to an HTTP/2 endpoint outbound, and to a peer
//! sidecar that takes HTTP/1.1 requests as HTTP/2. The connection still
//! goes to the endpoint. Servers such as Go's net/http, grpc-go and Envoy
//! route by `:authority`, not by `Host`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode, Version};
use support::*;

/// What the server saw of `res`'s request, once it answered `200`.
async fn seen(res: Response<hyper::body::Incoming>) -> Vec<String> {
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{:?}",
        res.headers().get("mesh-error")
    );
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    body.lines().map(str::to_owned).collect()
}

fn h2_request() -> Request<Body> {
    Request::get("http://web.ns.svc:8080/list")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap()
}

#[tokio::test]
async fn inbound_an_h2c_application_gets_the_authority_the_client_asked_for() {
    let app = recording().await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let res = h2_via(sidecar.inbound[0], h2_request()).await.unwrap();
    assert_eq!(seen(res).await[..2], ["HTTP/2.0", "web.ns.svc:8080"]);
    stop(sidecar).await;
}

/// A plaintext sidecar whose service `web.ns.svc` is the endpoint
/// `endpoint`, its HTTP/1.1 requests carried as HTTP/2 as `upgrade` says.
fn outbound_to(endpoint: SocketAddr, upgrade: bool) -> mesh_examples::sidecar::Running {
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: web.ns.svc\n      endpoints: [{endpoint}]\n      http2_upgrade: {upgrade}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

#[tokio::test]
async fn outbound_an_http2_endpoint_gets_the_authority_the_client_asked_for() {
    let endpoint = recording().await;
    let sidecar = outbound_to(endpoint, false);
    let res = h2_via(sidecar.outbound, h2_request()).await.unwrap();
    assert_eq!(seen(res).await[..2], ["HTTP/2.0", "web.ns.svc:8080"]);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_http1_request_carried_as_http2_to_a_peer_sidecar_names_its_host_as_authority() {
    // The endpoint stands in for the peer sidecar: it shows what reaches
    // it before any downgrade.
    let endpoint = recording().await;
    let sidecar = outbound_to(endpoint, true);
    let req = Request::get(format!("http://{}/list", sidecar.outbound))
        .header("host", "web.ns.svc:8080")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(
        seen(res).await,
        ["HTTP/2.0", "web.ns.svc:8080", "web.ns.svc:8080", "HTTP/1.1"]
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn an_absolute_form_target_carried_as_http2_names_its_authority() {
    let endpoint = recording().await;
    let sidecar = outbound_to(endpoint, true);
    let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(
        b"GET http://web.ns.svc:8080/list HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        body.lines().collect::<Vec<_>>(),
        ["HTTP/2.0", "web.ns.svc:8080", "web.ns.svc:8080", "HTTP/1.1"]
    );
    stop(sidecar).await;
}
