//! The sidecar's admin port as its clients use it: `HEAD` over HTTP/2 on
//! mesh-core's paths and on the dashboard the sidecar adds gets the head
//! alone (before, curl and hyper reset the stream), and a shutdown closes
//! idle admin connections, HTTP/1 and HTTP/2, at once rather than at the
//! end of the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn admin_sidecar(app: std::net::SocketAddr) -> mesh_examples::sidecar::Running {
    sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n  dashboard:\n    name: web\n\
         server:\n  threads: 1\n  shutdown_grace: 1h\n"
    ))
}

#[tokio::test]
async fn head_over_http2_answers_every_admin_path_with_its_head() {
    let (app, _) = backend().await;
    let running = admin_sidecar(app);
    let admin = running.admin;
    for path in [
        "/live",
        "/ready",
        "/metrics",
        "/proxy-log-level",
        "/dashboard",
    ] {
        let uri = format!("http://{admin}{path}");
        let get = http1()
            .request(Request::get(&uri).body(full("")).unwrap())
            .await
            .unwrap();
        // Without a log filter handed over, `/proxy-log-level` is 404: its
        // head is still answered as its `GET` is.
        let status = get.status();
        let length = body_bytes(get).await.len();
        assert!(length > 0, "{path}");
        let head = http2()
            .request(
                Request::builder()
                    .method(Method::HEAD)
                    .uri(&uri)
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(head.status(), status, "{path}");
        let head_length: usize = head.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // `/metrics` counts the requests in between.
        if path == "/metrics" {
            assert!(head_length > 0);
        } else {
            assert_eq!(head_length, length, "{path}");
        }
        let body = http_body_util::BodyExt::collect(head.into_body()).await;
        let body = body.unwrap_or_else(|e| panic!("HEAD {path} over HTTP/2: {e:?}"));
        assert!(body.to_bytes().is_empty(), "{path}");
    }
    stop(running).await;
}

#[tokio::test]
async fn shutdown_closes_idle_admin_connections_at_once() {
    let (app, _) = backend().await;
    let running = admin_sidecar(app);
    let admin = running.admin;
    // An HTTP/1 connection kept alive after a probe...
    let mut idle = tokio::net::TcpStream::connect(admin).await.unwrap();
    idle.write_all(b"GET /live HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    // ...and an HTTP/2 one after a scrape.
    let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut h2, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let h2_connection = tokio::spawn(connection);
    let res = h2
        .send_request(
            Request::get(format!("http://{admin}/metrics"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    body_bytes(res).await;

    running.shutdown();
    // The grace period is an hour: only a server that closes idle
    // connections at once ends these within the bound.
    let bound = Duration::from_secs(20);
    let rest = read_to_close(&mut idle).await;
    assert!(rest.is_empty(), "{rest:?}");
    tokio::time::timeout(bound, h2_connection)
        .await
        .expect("the idle HTTP/2 admin connection is closed at shutdown")
        .unwrap()
        .unwrap();
    tokio::task::spawn_blocking(move || running.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_path_the_admin_port_does_not_serve_is_a_404_naming_those_it_does() {
    let (app, _) = backend().await;
    let running = admin_sidecar(app);
    let admin = running.admin;
    // A probe or scrape with a typo, naming the pod by a DNS name:
    // before, the dashboard took every unknown path and answered this
    // one 403 for the host it named.
    for host in ["localhost", "web.emojivoto.svc.cluster.local"] {
        let res = http1()
            .request(
                Request::get(format!("http://{admin}/readyz"))
                    .header(header::HOST, host)
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{host}");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = body_bytes(res).await;
        assert_eq!(
            body,
            "not found: the admin port serves /live, /ready, /metrics, /proxy-log-level, \
             /env.json, /shutdown, /tap and /dashboard\n"
        );
    }
    // The dashboard keeps its own paths.
    for (path, status) in [
        ("/dashboard", StatusCode::OK),
        ("/dashboard/api", StatusCode::OK),
        ("/dashboard/nope", StatusCode::NOT_FOUND),
        ("/dashboardx", StatusCode::NOT_FOUND),
    ] {
        let res = http1()
            .request(
                Request::get(format!("http://{admin}{path}"))
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
    stop(running).await;
}
