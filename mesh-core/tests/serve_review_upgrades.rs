//! A connection the application's own service upgrades (a WebSocket
//! server built on the mesh's `Server`, say), rather than the proxy's
//! tunnel: it keeps its place under the connection limit while it is
//! open, and shutdown gives it the grace period, as it does a proxied
//! tunnel. Otherwise every upgraded connection would free a place and
//! `max_connections` would bound nothing for such a server.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    time::Duration,
};

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    conn::{NoTlsReason, Tls},
    serve::{Accept, Accepted, Protocol, Retirement, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// Answers an `Upgrade` request `101` and echoes the upgraded connection
/// in a task of its own, as a WebSocket server does; anything else `ok`.
async fn app(req: Request<Incoming>) -> Result<Response<mesh_core::body::BoxBody>, Infallible> {
    if !req.headers().contains_key(header::UPGRADE) {
        return Ok(Response::new(mesh_core::body::full("ok")));
    }
    tokio::spawn(async move {
        let upgraded = hyper::upgrade::on(req).await.unwrap();
        let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let mut res = Response::new(mesh_core::body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    res.headers_mut()
        .insert(header::CONNECTION, "upgrade".parse().unwrap());
    res.headers_mut()
        .insert(header::UPGRADE, "echo".parse().unwrap());
    Ok(res)
}

const HOUR: Duration = Duration::from_secs(3600);

async fn server(config: ServerConfig) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Http,
        ..config
    };
    let server =
        tokio::spawn(Server::new(config).serve_http(listener, tower::service_fn(app), shutdown));
    (addr, trigger, server)
}

async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

async fn echo(conn: &mut TcpStream, bytes: &[u8]) {
    conn.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(back, bytes);
}

async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    echo(&mut conn, b"ping").await;
    conn
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_the_application_holds_keeps_its_place() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let (addr, trigger, server) = server(config).await;
    let mut first = upgraded(addr).await;

    // The kernel takes a second connection, but the server may not serve
    // it while the upgraded one holds the only place.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(5), read_head(&mut second)).await;
    assert!(
        waited.is_err(),
        "served past the limit while an upgraded connection was open: {waited:?}"
    );
    echo(&mut first, b"still open").await;

    // Once the application drops it, the place is free.
    drop(first);
    let head = read_head(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_an_upgraded_connection_the_application_holds_the_grace_period_then_cuts_it()
{
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let (addr, trigger, server) = server(config).await;
    let mut conn = upgraded(addr).await;
    let start = tokio::time::Instant::now();
    trigger.trigger();
    echo(&mut conn, b"still here").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !server.is_finished(),
        "the server stopped with an upgraded connection open"
    );
    echo(&mut conn, b"and here").await;
    // The application ignores the shutdown: at the end of the grace
    // period the server is done, and the connection is cut, as a proxied
    // tunnel is.
    server.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "still open after the grace period: {closed:?}"
    );
}

/// Plaintext, every connection closed an hour after it was accepted.
#[derive(Clone)]
struct Expiring;

impl Accept<TcpStream> for Expiring {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, mesh_core::BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
            retire: Retirement::new(
                std::future::pending(),
                Some(tokio::time::Instant::now() + HOUR),
            ),
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_the_application_holds_is_closed_at_its_close_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, signal) = shutdown::channel();
    tokio::spawn(
        Server::new(ServerConfig::default())
            .with_accept(Expiring)
            .serve_http(listener, tower::service_fn(app), signal),
    );
    let start = tokio::time::Instant::now();
    let mut conn = upgraded(addr).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(HOUR + HOUR, conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "still open past its close time: {closed:?}"
    );
    assert_eq!(start.elapsed(), HOUR);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_done_once_the_application_closes_its_upgraded_connection() {
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let (addr, trigger, server) = server(config).await;
    let conn = upgraded(addr).await;
    let start = tokio::time::Instant::now();
    trigger.trigger();
    tokio::task::yield_now().await;
    drop(conn);
    server.await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
