//! Which outbound service a request goes to, by its authority, and which
//! authority the service is then told: the one the request was routed by.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode, Version};
use mesh_examples::sidecar::Running;
use support::*;

/// A backend that answers with `name` and the host it was asked for: its
/// `Host`, or over HTTP/2, where the sidecar sends none, its `:authority`.
async fn named(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let host = req
            .headers()
            .get("host")
            .map(|h| h.to_str().unwrap().to_owned())
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
        async move { Ok(Response::new(full(format!("{name} {host:?}")))) }
    });
    addr
}

/// A plaintext sidecar with the outbound services `emoji` and `voting`.
async fn two_services() -> Running {
    let (emoji, voting) = (named("emoji").await, named("voting").await);
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{emoji}]\n\
         \x20   - name: voting\n      endpoints: [{voting}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

async fn text(res: Response<hyper::body::Incoming>) -> (StatusCode, String) {
    let status = res.status();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, body)
}

#[tokio::test]
async fn the_host_names_the_service_whatever_its_case_port_or_trailing_dot() {
    let sidecar = two_services().await;
    for host in ["emoji", "EMOJI", "emoji:8080", "emoji.", "Emoji.:80"] {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", host)
            .body(full(""))
            .unwrap();
        let (status, body) = text(http1().request(req).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{host}");
        assert_eq!(body, format!("emoji Some({host:?})"), "{host}");
    }
    for host in ["emoji..", "emoji:http", "web"] {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", host)
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{host}");
        assert_eq!(res.headers()["mesh-error"], "no route", "{host}");
    }
    stop(sidecar).await;
}

/// `GET http://voting/ HTTP/1.1` with `Host: emoji`: the target's
/// authority wins (RFC 9112 §3.2.2), for the route and for the `Host` the
/// service gets.
#[tokio::test]
async fn an_absolute_target_wins_over_the_host_header() {
    let sidecar = two_services().await;
    let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET http://voting/ HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("voting Some(\"voting\")"), "{answer}");
    stop(sidecar).await;
}

/// An HTTP/2 request whose `Host` disagrees with its `:authority` is
/// routed by the `:authority`, and the service is told that authority,
/// not the other (RFC 9113 §8.3.1): it is not served a host the route
/// was not chosen for.
#[tokio::test]
async fn an_http_2_request_is_routed_and_forwarded_by_its_authority() {
    let sidecar = two_services().await;
    let req = Request::get("http://emoji/")
        .version(Version::HTTP_2)
        .header("host", "voting")
        .body(full(""))
        .unwrap();
    let (status, body) = text(h2_via(sidecar.outbound, req).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "emoji Some(\"emoji\")");
    // Without a `Host`, the `:authority` is the one.
    let req = Request::get("http://voting:8080/").body(full("")).unwrap();
    let (_, body) = text(h2_via(sidecar.outbound, req).await.unwrap()).await;
    assert_eq!(body, "voting Some(\"voting:8080\")");
    stop(sidecar).await;
}

/// HTTP/1.0 without `Host`, and HTTP/1.1 with an empty one, name no
/// service: the mesh's 404.
#[tokio::test]
async fn a_request_without_a_host_gets_the_no_route_404() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar = two_services().await;
    for request in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound)
            .await
            .unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.0 404") || answer.starts_with("HTTP/1.1 404"),
            "{answer}"
        );
        assert!(answer.contains("mesh-error: no route"), "{answer}");
    }
    stop(sidecar).await;
}

/// Two `Host` headers, or one with userinfo (never part of `Host`): the
/// request was routed by the first, and the service's application might
/// read another. `400`, as RFC 9112 §3.2 has a server answer.
#[tokio::test]
async fn a_repeated_host_or_one_with_userinfo_is_a_bad_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar = two_services().await;
    for hosts in ["host: emoji\r\nhost: voting\r\n", "host: voting@emoji\r\n"] {
        let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound)
            .await
            .unwrap();
        let request = format!("GET / HTTP/1.1\r\n{hosts}connection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{hosts}: {answer}");
        assert!(
            answer.contains("mesh-error: invalid host"),
            "{hosts}: {answer}"
        );
    }
    stop(sidecar).await;
}

/// A target or `:authority` with userinfo names no one authority either:
/// RFC 9110 §4.2.4 has a recipient treat it as an error, as a `Host`
/// with userinfo is one. `400`, not routed by the host after the `@`.
#[tokio::test]
async fn a_target_or_authority_with_userinfo_is_a_bad_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar = two_services().await;
    let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound)
        .await
        .unwrap();
    tcp.write_all(b"GET http://voting@emoji/ HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("mesh-error: invalid host"), "{answer}");

    let req = Request::get("http://voting@emoji/")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    let status = res.status();
    let (_, body) = text(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    stop(sidecar).await;
}
