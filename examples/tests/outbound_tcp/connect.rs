//! A `CONNECT` the sidecar cannot tunnel is answered with the mesh's
//! error before any `200`: the client learns that the tunnel failed, and
//! that the proxy says so, before it sends a byte into it.

use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{client_side, server_side};
use crate::support::*;

#[tokio::test]
async fn a_connect_to_a_sidecar_that_proves_another_identity_is_answered_502() {
    let dir = tempfile::tempdir().unwrap();
    let issue = issuer(dir.path());
    let (app, accepted) = tcp_echo().await;
    let db = sidecar(&server_side(&issue("db"), app));
    // The client expects `emoji`, and `db` answers: the handshake fails
    // closed, and the tunnel is never opened.
    let emoji_id = identity("emoji");
    let web = sidecar(&client_side(
        Some(&issue("web")),
        &[db.inbound[0]],
        Some(&emoji_id),
    ));
    let (_tunnel, head) = connect_head(web.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    assert!(
        head.contains("mesh-error: upstream connect error\r\n"),
        "{head}"
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn a_connect_to_an_endpoint_that_refuses_is_answered_502_and_the_next_one_too() {
    let web = sidecar(&client_side(None, &[refused_addr().await], None));
    for _ in 0..2 {
        let (_tunnel, head) = connect_head(web.outbound, "db:5432").await;
        assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
        assert!(
            head.contains("mesh-error: upstream connect error\r\n"),
            "{head}"
        );
    }
    stop(web).await;
}

#[tokio::test]
async fn an_http2_connect_to_an_endpoint_that_refuses_is_answered_502() {
    let web = sidecar(&client_side(None, &[refused_addr().await], None));
    let req = http::Request::connect("db:5432")
        .version(http::Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let res = h2_via(web.outbound, req).await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
    stop(web).await;
}

#[tokio::test]
async fn a_connect_names_its_service_as_a_request_does() {
    // The tunnel must find the service the HTTP router would, not leave
    // the CONNECT to the service's HTTP stack and its 501.
    let (app, accepted) = tcp_echo().await;
    let web = sidecar(&client_side(None, &[app], None));
    // Only the host names the service, so a missing port is no matter.
    for authority in ["DB.:5432", "db"] {
        let (mut tunnel, head) = connect_head(web.outbound, authority).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{authority}: {head}");
        tunnel.write_all(b"ping").await.unwrap();
        let mut back = [0; 4];
        tunnel.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    // Userinfo names no one authority, for the router as for the tunnel:
    // the router's 400, not a tunnel to the host after the `@`.
    let (_conn, head) = connect_head(web.outbound, "user@db:5432").await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(head.contains("mesh-error: invalid host\r\n"), "{head}");
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    stop(web).await;
}
