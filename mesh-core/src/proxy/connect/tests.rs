use std::{convert::Infallible, net::SocketAddr};

use http::{Method, Request, Response, StatusCode, Version, uri::Authority};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::connect::HttpConnector,
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};

use super::ConnectTunnel;
use crate::{
    body::BoxBody,
    proxy::{ForwardTcp, tcp::tests::Hang},
};

/// An endpoint that accepts connections and holds them.
async fn endpoint() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// An HTTP/2 server that takes RFC 8441's extended CONNECT (a WebSocket
/// over HTTP/2, say), with a `ConnectTunnel` for `db` in front of a
/// service that answers `404`.
async fn extended_connect_server(target: SocketAddr) -> SocketAddr {
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, [target]).unwrap();
    let targets = move |authority: &Authority| (authority.host() == "db").then(|| forward.clone());
    let inner = tower::service_fn(|_: Request<Incoming>| async {
        let mut res = Response::new(BoxBody::default());
        *res.status_mut() = StatusCode::NOT_FOUND;
        Ok::<_, Infallible>(res)
    });
    let stack = ConnectTunnel::new(inner, targets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let service = TowerToHyperService::new(stack.clone());
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder.enable_connect_protocol();
                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    addr
}

fn request(method: Method, uri: &str) -> Request<BoxBody> {
    let mut req = Request::new(BoxBody::default());
    *req.method_mut() = method;
    *req.version_mut() = Version::HTTP_2;
    *req.uri_mut() = uri.parse().unwrap();
    req
}

#[tokio::test]
async fn an_extended_connect_is_not_taken_for_a_tunnel() {
    let addr = extended_connect_server(endpoint().await).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A first request, so that the server's settings (extended CONNECT
    // on) are in before the client sends one.
    let res = send
        .send_request(request(Method::GET, "http://db/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // `:protocol websocket` to `db`: a WebSocket, for the inner service,
    // not a raw tunnel to db's endpoint.
    let mut ws = request(Method::CONNECT, "http://db:5432/chat");
    ws.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let res = send.send_request(ws).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "tunnelled as raw TCP");

    // A classic CONNECT on the same connection is still tunnelled.
    let res = send
        .send_request(request(Method::CONNECT, "db:5432"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_times_out_is_answered_502_at_the_connect_timeout() {
    let a = SocketAddr::from(([10, 0, 0, 1], 5432));
    let forward = ForwardTcp::new(Hang, [a])
        .unwrap()
        .with_connect_timeout(std::time::Duration::from_secs(3));
    let targets = move |authority: &Authority| (authority.host() == "db").then(|| forward.clone());
    let inner = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(BoxBody::default()))
    });
    let stack = TowerToHyperService::new(ConnectTunnel::new(inner, targets));
    let (client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), stack)
            .with_upgrades()
            .await
    });
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::new(BoxBody::default());
    *req.method_mut() = Method::CONNECT;
    *req.uri_mut() = "db:5432".parse().unwrap();
    let started = tokio::time::Instant::now();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["mesh-error"], "upstream connect error");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(3));
}
