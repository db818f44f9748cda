//! The sidecar's admin port as its clients use it: `HEAD` over HTTP/2 on
//! mesh-core's paths and on the dashboard the sidecar adds gets the head
//! alone (before, curl and hyper reset the stream); a shutdown closes idle
//! admin connections, HTTP/1 and HTTP/2, at once rather than at the end of
//! the grace period; a path it does not serve gets a 404 naming those it
//! does; and the log filter is read and replaced, a bad one refused with
//! the directive named and the filter in force kept.
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

#[tokio::test]
async fn the_log_filter_is_read_and_replaced_and_a_bad_one_is_named_and_refused() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let (level, layer) = mesh_examples::sidecar::log::ReloadableFilter::new(
        tracing_subscriber::EnvFilter::new("info"),
    );
    // The filter is replaced in this subscriber, which the test keeps
    // without installing it.
    let _subscriber = tracing_subscriber::registry().with(layer);
    let (app, _) = backend().await;
    let config = mesh_examples::sidecar::config::SidecarConfig::from_yaml(
        &format!(
            "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
             outbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
        ),
        "test.yaml",
    )
    .unwrap();
    let options = mesh_examples::sidecar::StartOptions {
        log_level: Some(std::sync::Arc::new(level)),
    };
    let running = mesh_examples::sidecar::start_with(config, options).unwrap();
    let url = format!("http://{}/proxy-log-level", running.admin);
    let send = |method: Method, body: &'static str| {
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .body(full(body))
            .unwrap();
        async move {
            let res = http1().request(req).await.unwrap();
            let status = res.status();
            let allow = res.headers().get(header::ALLOW).cloned();
            let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
            (status, body, allow)
        }
    };
    assert_eq!(send(Method::GET, "").await.1, "info\n");

    // The answer names the directive that does not parse; the filter in
    // force stays, as Linkerd's proxy keeps its level.
    let (status, body, _) = send(Method::PUT, "warn,mesh_core=loud,hyper=debug").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("`mesh_core=loud`"), "{body}");
    assert_eq!(send(Method::GET, "").await.1, "info\n");

    let (status, body, _) = send(Method::PUT, "hyper=debug,warn\n").await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(send(Method::GET, "").await.1, "hyper=debug,warn\n");

    let (status, body, allow) = send(Method::POST, "info").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow.unwrap(), "GET, HEAD, PUT");
    assert_eq!(
        body,
        "POST is not served at /proxy-log-level: it answers GET, HEAD, PUT\n"
    );
    stop(running).await;
}
