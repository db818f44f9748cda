//! The sidecar forwarding real traffic over real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn inbound_yaml(app: std::net::SocketAddr, protocol: &str) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: {protocol}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n"
    )
}

fn outbound_yaml(services: &[(&str, std::net::SocketAddr)]) -> String {
    let mut yaml = String::from("outbound:\n  listen: 127.0.0.1:0\n  services:\n");
    for (name, addr) in services {
        yaml.push_str(&format!("    - name: {name}\n      endpoints: [{addr}]\n"));
    }
    yaml.push_str("admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n");
    yaml
}

fn get(url: String, version: Version) -> Request<Body> {
    Request::get(url).version(version).body(full("")).unwrap()
}

#[tokio::test]
async fn get_and_post_pass_through_over_http1_and_http2() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "detect"));
    let inbound = sidecar.inbound[0];
    for (client, version) in [(http1(), Version::HTTP_11), (http2(), Version::HTTP_2)] {
        let res = client
            .request(get(format!("http://{inbound}/"), version))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), version);
        assert_eq!(body_bytes(res).await, "hello");

        let req = Request::post(format!("http://{inbound}/echo"))
            .version(version)
            .body(full("posted"))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(body_bytes(res).await, "posted");
    }
    stop(sidecar).await;
}

#[tokio::test]
async fn a_chunked_mebibyte_streams_both_ways_intact() {
    const MIB: usize = 1024 * 1024;
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "http"));
    let inbound = sidecar.inbound[0];
    for (client, version) in [(http1(), Version::HTTP_11), (http2(), Version::HTTP_2)] {
        // Upload: a streamed body with no content-length is sent chunked.
        let chunks = pattern(MIB)
            .chunks(10_000)
            .map(|c| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
                    Bytes::copy_from_slice(c),
                ))
            })
            .collect::<Vec<_>>();
        let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
        let req = Request::post(format!("http://{inbound}/echo"))
            .version(version)
            .body(body)
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            body_bytes(res).await.as_ref(),
            pattern(MIB).as_slice(),
            "{version:?} upload"
        );

        let res = client
            .request(get(
                format!("http://{inbound}/download?bytes={MIB}"),
                version,
            ))
            .await
            .unwrap();
        assert_eq!(
            body_bytes(res).await.as_ref(),
            pattern(MIB).as_slice(),
            "{version:?} download"
        );
    }
    stop(sidecar).await;
}

#[tokio::test]
async fn trailers_pass_through_over_http2() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "detect"));
    let inbound = sidecar.inbound[0];
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let frames = vec![
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(b"data"))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)));
    let req = Request::post(format!("http://{inbound}/echo"))
        .version(Version::HTTP_2)
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let res = http2().request(req).await.unwrap();
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "data");
    stop(sidecar).await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_end_to_end_ones_kept() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "detect"));
    let inbound = sidecar.inbound[0];
    let req = Request::get(format!("http://{inbound}/headers"))
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-end-to-end", "kept")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let seen = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(seen.contains("x-end-to-end: kept"), "{seen}");
    for hop in ["x-secret-hop", "keep-alive", "proxy-connection", "te:"] {
        assert!(!seen.contains(hop), "{hop} leaked: {seen}");
    }
    stop(sidecar).await;
}

#[tokio::test]
async fn app_down_answers_502_and_grpc_14() {
    let closed = refused_addr().await;
    let sidecar = sidecar(&inbound_yaml(closed, "http"));
    let inbound = sidecar.inbound[0];
    let res = http1()
        .request(get(format!("http://{inbound}/"), Version::HTTP_11))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");

    let req = Request::post(format!("http://{inbound}/pkg.Svc/Method"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(full(""))
        .unwrap();
    let res = http2().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert!(res.headers().contains_key("mesh-error"));
    stop(sidecar).await;
}

#[tokio::test]
async fn outbound_routes_by_authority_and_answers_404_for_unknown_ones() {
    let (emoji, _) = backend().await;
    let sidecar = sidecar(&outbound_yaml(&[("emoji", emoji)]));
    let outbound = sidecar.outbound;
    let client = http1();
    let req = Request::get(format!("http://{outbound}/"))
        .header("host", "emoji:8080")
        .body(full(""))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "hello");

    let req = Request::get(format!("http://{outbound}/"))
        .header("host", "voting:8080")
        .body(full(""))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["mesh-error"], "no route");

    // HTTP/2 routes by :authority: a connection to the outbound listener
    // carrying requests for `emoji:8080`.
    let tcp = tokio::net::TcpStream::connect(outbound).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let res = h2
        .send_request(get("http://emoji:8080/".into(), Version::HTTP_2))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = h2
        .send_request(get("http://nope:8080/".into(), Version::HTTP_2))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    stop(sidecar).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses_new_connections() {
    let (app, gate) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "http"));
    let inbound = sidecar.inbound[0];
    let in_flight =
        tokio::spawn(http1().request(get(format!("http://{inbound}/hold"), Version::HTTP_11)));
    gate.arrived.notified().await;

    sidecar.shutdown();
    // The listener closes: new connections are refused, once the
    // sidecar's runtime has had its turn, which a busy machine may take
    // a while to give it.
    let refused = tokio::time::timeout(WAIT_BOUND, async {
        while tokio::net::TcpStream::connect(inbound).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "new connections are refused once shutdown starts"
    );

    // The request in flight still completes.
    gate.release.notify_one();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "held");
    tokio::time::timeout(Duration::from_secs(30), stop(sidecar))
        .await
        .unwrap();
}

#[tokio::test]
async fn http1_upgrade_becomes_a_byte_tunnel() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app, "detect"));
    let mut tcp = tokio::net::TcpStream::connect(sidecar.inbound[0])
        .await
        .unwrap();
    tcp.write_all(
        b"GET /upgrade HTTP/1.1\r\nhost: app\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    tcp.write_all(b"ping through the tunnel").await.unwrap();
    let mut echoed = [0u8; 23];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping through the tunnel");
    // Closed first: an open tunnel holds the sidecar's drain for its whole
    // grace period.
    drop(tcp);
    stop(sidecar).await;
}

#[tokio::test]
async fn the_binary_serves_its_log_filter_and_environment_on_the_admin_port() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound: {{listen: 127.0.0.1:0, app: 127.0.0.1:9}}\n\
             outbound: {{listen: 127.0.0.1:0}}\nadmin: {{listen: {admin}}}\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(sidecar_binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("MESH_SIDECAR_TEST", "admin")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the sidecar example is built: run `cargo test` without `--test`");
    let client = http1();
    let url = format!("http://{admin}/proxy-log-level");
    let get = || async {
        let res = client
            .request(Request::get(&url).body(full("")).unwrap())
            .await?;
        Ok::<_, hyper_util::client::legacy::Error>(body_bytes(res).await)
    };
    let started = tokio::time::Instant::now();
    let first = loop {
        match get().await {
            Ok(body) => break body,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("the admin server did not come up: {error}"),
        }
    };
    assert_eq!(first, "info\n");
    let put = Request::put(&url)
        .body(full("mesh_core=debug,info"))
        .unwrap();
    assert_eq!(
        client.request(put).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(get().await.unwrap(), "mesh_core=debug,info\n");
    let bad = Request::put(&url).body(full("mesh_core=loud")).unwrap();
    assert_eq!(
        client.request(bad).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // The environment it was started with, as Linkerd's `/env.json`.
    let env = Request::get(format!(
        "http://{admin}/env.json?MESH_SIDECAR_TEST&RUST_LOG"
    ))
    .body(full(""))
    .unwrap();
    let env = body_bytes(client.request(env).await.unwrap()).await;
    assert_eq!(
        env,
        "{\n  \"MESH_SIDECAR_TEST\": \"admin\",\n  \"RUST_LOG\": null\n}\n"
    );

    let shutdown = Request::post(format!("http://{admin}/shutdown"))
        .body(full(""))
        .unwrap();
    assert_eq!(
        client.request(shutdown).await.unwrap().status(),
        StatusCode::OK
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
