//! The accept hook's `Retirement`: a drained HTTP connection finishes and
//! closes, and any connection, opaque ones included, is closed at its
//! close time. Clocks are paused once traffic has settled, so only the
//! retirement's timers are pending when the paused clock jumps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let accept = Retiring::default();
    let addr = serve(accept.clone(), Protocol::Http).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
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
