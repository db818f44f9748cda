//! Response heads as large as the server takes in requests cross a
//! `Forward` over either HTTP version; a larger one is an upstream
//! protocol error, not a connect error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    error::{UPSTREAM_PROTOCOL_ERROR, UpstreamCause},
    proxy::Forward,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An upstream speaking HTTP/1.1 and HTTP/2 whose every response carries
/// a 32 KiB cookie, as a session store's can.
async fn big_cookie_upstream() -> SocketAddr {
    cookie_upstream(32 * 1024).await
}

/// An upstream speaking HTTP/1.1 and HTTP/2 whose every response carries
/// a cookie of `len` bytes.
async fn cookie_upstream(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                let cookie = format!("session={}", "a".repeat(len));
                let res = Response::builder()
                    .header("set-cookie", cookie)
                    .body(full("ok"))
                    .unwrap();
                Ok::<_, Infallible>(res)
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_32_kib_response_head_crosses_over_http_1_and_http_2() {
    let upstream = big_cookie_upstream().await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let req = Request::get("/")
            .version(version)
            .header("host", "web")
            .body(full(""))
            .unwrap();
        let res = forward.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{version:?}: {:?}",
            res.headers().get("mesh-error")
        );
        assert_eq!(
            res.headers()["set-cookie"].len(),
            32 * 1024 + 8,
            "{version:?}"
        );
    }
}

/// A head larger than the client reads (64 KiB over HTTP/2, hyper's
/// buffer of about 400 KiB over HTTP/1) came from an upstream that was
/// reached and answered: `502`, but not a connect error.
#[tokio::test]
async fn a_response_head_larger_than_the_client_takes_is_a_protocol_error() {
    for (version, len) in [(Version::HTTP_11, 512 * 1024), (Version::HTTP_2, 96 * 1024)] {
        let upstream = cookie_upstream(len).await;
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let forward = Forward::new(client, [upstream]).unwrap();
        let req = Request::get("/")
            .version(version)
            .header("host", "web")
            .body(full(""))
            .unwrap();
        let res = forward.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{version:?}");
        assert_eq!(
            res.headers()["mesh-error"],
            UPSTREAM_PROTOCOL_ERROR,
            "{version:?}"
        );
        assert_eq!(
            res.extensions().get::<UpstreamCause>(),
            Some(&UpstreamCause::Protocol),
            "{version:?}"
        );
    }
}
