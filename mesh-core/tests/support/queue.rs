//! Pieces of the balancer queue's tests: an upstream, requests through a
//! `Forward` on tokio's paused clock, and for the opaque side a TCP echo
//! and a server forwarding to it.
#![allow(dead_code)] // Not every test file uses every one.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{Forward, ForwardTcp},
    serve::{Protocol, Server, ServerConfig, shutdown},
};
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};
use tower::ServiceExt;

pub(crate) type Fwd = Forward<Client<Empty<Bytes>>>;

/// The status and `mesh-error` of an answer.
pub(crate) type Answer = (StatusCode, Option<String>);

/// An HTTP/1.1 upstream answering `500` to `/fail` and `200` to anything
/// else.
pub(crate) async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let mut res = Response::new(Full::new(Bytes::from_static(b"hi")));
                if req.uri().path() == "/fail" {
                    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok::<_, Infallible>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

/// A `GET` of `path` from service `web`.
pub(crate) fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "web")
        .body(Empty::new())
        .unwrap()
}

/// Sends `req` through a clone of `forward` on a task of its own: the
/// answer, its body read whole.
pub(crate) fn spawn(forward: &Fwd, req: Request<Empty<Bytes>>) -> JoinHandle<Answer> {
    let forward = forward.clone();
    tokio::spawn(async move {
        let res = forward.oneshot(req).await.unwrap();
        let error = res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status();
        res.into_body().collect().await.unwrap();
        (status, error)
    })
}

/// Lets the clock run to `at` (since `start`) and everything ready run.
pub(crate) async fn until(start: Instant, at: Duration) {
    tokio::time::sleep_until(start + at).await;
    tokio::task::yield_now().await;
}

/// A TCP server on 127.0.0.1:0 that echoes what it reads.
pub(crate) async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A connector for `ForwardTcp`: any URI scheme.
pub(crate) fn connector() -> HttpConnector {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    connector
}

/// An opaque server forwarding with `forward`; it lives until the test
/// ends.
pub(crate) async fn tcp_proxy(forward: ForwardTcp<HttpConnector>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    std::mem::forget(trigger);
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("")))
    });
    tokio::spawn(Server::new(config).serve(listener, http, forward, shutdown));
    addr
}
