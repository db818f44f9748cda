//! The accept hook's `Retirement`: a drained HTTP connection finishes and
//! closes, and any connection, opaque and upgraded ones included, is
//! closed at its close time. Clocks are paused once traffic has settled, so only the
//! retirement's timers are pending when the paused clock jumps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture;

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    conn::{NoTlsReason, Tls},
    serve::{
        Accept, Accepted, OpaqueConnection, Protocol, Retirement, Server, ServerConfig, shutdown,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::Instant,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Plaintext, with every connection drained when `drain` is notified and
/// closed an hour after it was accepted.
#[derive(Clone, Default)]
struct Retiring {
    drain: Arc<Notify>,
}

impl Accept<TcpStream> for Retiring {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        let drain = self.drain.clone();
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
            retire: Retirement::new(
                async move { drain.notified().await },
                Some(Instant::now() + HOUR),
            ),
        }))
    }
}

/// Serves HTTP "ok" and echoes opaque connections, on a `protocol` port.
async fn serve(accept: Retiring, protocol: Protocol) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let echo = tower::service_fn(|conn: OpaqueConnection| async move {
        let (mut read, mut write) = tokio::io::split(conn.io);
        tokio::io::copy(&mut read, &mut write).await?;
        Ok::<_, std::io::Error>(())
    });
    let config = ServerConfig {
        protocol,
        ..ServerConfig::default()
    };
    let server = Server::new(config).with_accept(accept);
    let (stop, signal) = shutdown::channel();
    tokio::spawn(async move {
        server.serve(listener, http, echo, signal).await;
        drop(stop);
    });
    addr
}

#[tokio::test]
async fn a_drained_http_connection_is_closed() {
    let (logs, _guard) = log_capture::Logs::capture();
    let accept = Retiring::default();
    let addr = serve(accept.clone(), Protocol::Http).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let res = send
        .send_request(Request::get("/").body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");

    accept.drain.notify_one();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the drained connection stayed open")
        .unwrap()
        .unwrap();
    // The log says whose connection, once: through the connection's span.
    let drained = logs.find("draining a connection whose credentials went stale");
    assert_eq!(
        drained,
        [format!(
            "conn{{peer={peer} port={}}}: draining a connection whose credentials went stale",
            addr.port()
        )]
    );
}

#[tokio::test]
async fn an_opaque_connection_is_closed_at_its_close_time() {
    let addr = serve(Retiring::default(), Protocol::Opaque).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    tokio::time::pause();
    let paused = Instant::now();
    let mut rest = Vec::new();
    let read = tcp.read_to_end(&mut rest).await;
    let elapsed = paused.elapsed();
    assert!(read.is_ok_and(|n| n == 0), "the connection ends");
    assert!(
        elapsed.abs_diff(HOUR) < Duration::from_secs(1),
        "closed after {elapsed:?}"
    );
}

/// An upstream that switches every connection to an echo.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut conn).await;
                conn.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
                )
                .await
                .unwrap();
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads a message head, byte by byte so nothing after it is taken.
async fn read_head(conn: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    head
}

#[tokio::test]
async fn an_upgraded_connection_is_closed_at_its_close_time() {
    let (logs, _guard) = log_capture::Logs::capture();
    // A tunnel is a byte pipe like an opaque connection: it cannot be
    // drained, and it must not outlive the certificate that let it in.
    let upstream = echo_upstream().await;
    let client = mesh_core::client::Client::<Incoming>::new(&Default::default());
    let forward = mesh_core::proxy::Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ServerConfig::default()).with_accept(Retiring::default());
    let (stop, signal) = shutdown::channel();
    tokio::spawn(async move {
        server.serve_http(listener, forward, signal).await;
        drop(stop);
    });

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    tcp.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    tokio::time::pause();
    let paused = Instant::now();
    let closed = tokio::time::timeout(2 * HOUR, async {
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await
    })
    .await;
    let elapsed = paused.elapsed();
    assert!(closed.is_ok(), "the tunnel outlived its close time");
    assert!(
        elapsed.abs_diff(HOUR) < Duration::from_secs(1),
        "closed after {elapsed:?}"
    );
    // The log says whose tunnel.
    let cut = logs.find("upgraded connection closed: its credentials expired");
    assert_eq!(
        cut,
        [format!(
            "upgraded connection closed: its credentials expired peer={peer}"
        )]
    );
}
