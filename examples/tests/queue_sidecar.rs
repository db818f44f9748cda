//! The balancer queues' settings, end to end through a sidecar: with
//! every endpoint of a service out under failure accrual, a request, a
//! TCP port's connection or a `CONNECT` waits for the penalty to end when
//! its queue's fail-fast timeout allows, and is refused at once when it
//! is `0s`; HTTP and TCP are set apart, as in Linkerd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use mesh_examples::sidecar::Running;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Endpoints are taken out at their first failure, for 2 s.
const ACCRUAL: &str = "      failure_accrual: {max_failures: 1, min_penalty: 2s, \
                       max_penalty: 2s, jitter: 0}\n";

/// A sidecar on one runtime with service `web` (HTTP) at `web` and `db`
/// (a TCP port) at `db`, both with failure accrual, and `queues` written
/// into `outbound`.
fn start(web: SocketAddr, db: SocketAddr, queues: &str) -> Running {
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n{queues}  services:\n\
         \x20   - name: web\n      endpoints: [{web}]\n{ACCRUAL}\
         \x20   - name: db\n      endpoints: [{db}]\n{ACCRUAL}\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ))
}

async fn get(sidecar: &Running) -> (StatusCode, Option<String>) {
    let req = Request::get(format!("http://{}/", sidecar.outbound))
        .header("host", "web")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), error)
}

/// Sends `hello` through the TCP port: `Some` of what came back, `None`
/// when the connection was closed.
async fn tcp_hello(sidecar: &Running) -> Option<Vec<u8>> {
    let mut tcp = TcpStream::connect(sidecar.outbound_ports[0]).await.unwrap();
    tcp.write_all(b"hello").await.ok()?;
    let mut back = [0; 5];
    tcp.read_exact(&mut back).await.ok()?;
    Some(back.to_vec())
}

/// The status line of the answer to `CONNECT db:5432`.
async fn connect_db(sidecar: &Running) -> String {
    let mut tcp = TcpStream::connect(sidecar.outbound).await.unwrap();
    tcp.write_all(b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Takes both services' endpoints out (each refuses once), then has them
/// listen: `web` answering `ok` over HTTP, `db` echoing.
async fn take_out_then_listen(sidecar: &Running, web: SocketAddr, db: SocketAddr) {
    assert_eq!(get(sidecar).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(tcp_hello(sidecar).await, None, "refused");
    serve(TcpListener::bind(web).await.unwrap(), |_| async {
        Ok(Response::new(full("ok")))
    });
    let listener = TcpListener::bind(db).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

#[tokio::test]
async fn a_zero_http_timeout_refuses_requests_at_once_while_tcp_waits() {
    let (web, db) = (refused_addr().await, refused_addr().await);
    let sidecar = start(
        web,
        db,
        "  http_failfast_timeout: 0s\n  tcp_failfast_timeout: 1m\n",
    );
    take_out_then_listen(&sidecar, web, db).await;
    // The endpoint is out: the request is not queued. Its zero wait is
    // over at once, and it fails fast, as with Linkerd's zero timeout;
    // the next is shed, the service in fail-fast.
    for error in ["service in fail-fast", "service unavailable"] {
        assert_eq!(
            get(&sidecar).await,
            (StatusCode::SERVICE_UNAVAILABLE, Some(error.to_owned()))
        );
    }
    // A connection and a CONNECT wait for the penalty to end.
    let (hello, connect) = tokio::join!(tcp_hello(&sidecar), connect_db(&sidecar));
    assert_eq!(hello.as_deref(), Some(&b"hello"[..]));
    assert!(connect.starts_with("HTTP/1.1 200 "), "{connect}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_zero_tcp_timeout_closes_connections_and_refuses_connects_at_once_while_http_waits() {
    let (web, db) = (refused_addr().await, refused_addr().await);
    let sidecar = start(
        web,
        db,
        "  http_failfast_timeout: 1m\n  tcp_failfast_timeout: 0s\n",
    );
    take_out_then_listen(&sidecar, web, db).await;
    assert_eq!(tcp_hello(&sidecar).await, None, "not queued");
    let connect = connect_db(&sidecar).await;
    assert!(connect.starts_with("HTTP/1.1 503 "), "{connect}");
    // The request waits for the penalty to end, and is its probe.
    assert_eq!(get(&sidecar).await, (StatusCode::OK, None));
    stop(sidecar).await;
}
