//! An HTTP/1.1 upgrade through a `Forward` that has nothing to tunnel
//! over: the upstream is not asked to switch a connection nobody uses.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    proxy::Forward,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An upstream that answers each request with the `connection` and
/// `upgrade` headers it was sent.
async fn upgrade_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let seen = ["connection", "upgrade"]
                    .iter()
                    .filter_map(|name| {
                        let value = req.headers().get(*name)?;
                        Some(format!("{name}: {}\n", value.to_str().unwrap()))
                    })
                    .collect::<String>();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

#[tokio::test]
async fn an_upgrade_with_no_connection_to_tunnel_over_goes_as_a_plain_request() {
    // A request that asks for a WebSocket but carries no hyper
    // `OnUpgrade` (a layer above rebuilt it, or a server without
    // upgrades served it): were the upstream asked, it would switch, and
    // the caller would get a 101 with no tunnel behind it.
    let upstream = upgrade_echo().await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let req = Request::get("/chat")
        .header("host", "chat")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(full(""))
        .unwrap();
    let res = forward.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(seen, "", "the upstream was asked to switch");
}
