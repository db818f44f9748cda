//! Graceful shutdown over real sockets, for every kind of connection: a
//! request in flight finishes, an idle connection closes, HTTP/2 refuses
//! new streams with GOAWAY, finishes its streams and closes, an opaque pipe is cut when the grace period
//! ends, a peer still in detection (or, past ALPN, silent) is closed at
//! once, a request already sent when shutdown comes is answered, and new
//! connections are refused.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::serve::{Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

/// Reads from `conn` until the peer closes it.
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Requests with `x-wait` are answered once `release` is notified.
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let http = {
        let (arrived, release) = (arrived.clone(), release.clone());
        tower::service_fn(move |req: Request<Incoming>| {
            let (arrived, release) = (arrived.clone(), release.clone());
            async move {
                if req.headers().contains_key("x-wait") {
                    arrived.notify_one();
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(mesh_core::body::full("done")))
            }
        })
    };
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, http, shutdown));

    // One connection with a request in flight, one idle after its request.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-wait: 1\r\n\r\n")
        .await
        .unwrap();
    arrived.notified().await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 17];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");

    trigger.trigger();
    // The idle connection closes without another response.
    let rest = read_to_close(&mut idle).await;
    assert!(rest.ends_with("done"), "{rest:?}");
    // The request in flight still gets its response, then the close.
    release.notify_one();
    let answer = read_to_close(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert!(answer.contains("connection: close\r\n"), "{answer:?}");
    assert!(answer.ends_with("done"), "{answer:?}");
    server.await.unwrap();
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A server whose requests with `x-wait` are answered once `release` is
/// notified, with `arrived` notified when they come in; and whose opaque
/// connections echo.
fn waiting_server(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: shutdown::Shutdown,
) -> (Arc<Notify>, Arc<Notify>, tokio::task::JoinHandle<()>) {
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let http = {
        let (arrived, release) = (arrived.clone(), release.clone());
        tower::service_fn(move |req: Request<Incoming>| {
            let (arrived, release) = (arrived.clone(), release.clone());
            async move {
                if req.headers().contains_key("x-wait") {
                    arrived.notify_one();
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(mesh_core::body::full("done")))
            }
        })
    };
    let echo = tower::service_fn(|conn: mesh_core::serve::OpaqueConnection| async move {
        let (mut read, mut write) = tokio::io::split(conn.io);
        tokio::io::copy(&mut read, &mut write).await?;
        Ok::<_, std::io::Error>(())
    });
    let server = tokio::spawn(Server::new(config).serve(listener, http, echo, shutdown));
    (arrived, release, server)
}

#[tokio::test]
async fn http2_shutdown_lets_the_stream_in_flight_finish_then_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let (arrived, release, server) = waiting_server(listener, ServerConfig::default(), shutdown);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get("http://a/")
        .header("x-wait", "1")
        .body(Empty::new())
        .unwrap();
    let in_flight = tokio::spawn(send.send_request(req));
    arrived.notified().await;

    trigger.trigger();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !server.is_finished(),
        "the server did not wait for the stream"
    );
    release.notify_one();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
    conn.await.unwrap().unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn http2_shutdown_refuses_new_streams_with_goaway_while_one_is_in_flight() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let (arrived, release, server) = waiting_server(listener, ServerConfig::default(), shutdown);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get("http://a/")
        .header("x-wait", "1")
        .body(Empty::new())
        .unwrap();
    let in_flight = tokio::spawn(send.send_request(req));
    arrived.notified().await;

    trigger.trigger();
    // The server's GOAWAY first names no last stream, so that streams the
    // client opened meanwhile are still served; then, a round trip later,
    // the last it took. From then on a new stream is refused, on this
    // connection that stays open for the stream in flight.
    let mut served_meanwhile = 0;
    let refused = loop {
        let req = Request::get("http://a/").body(Empty::new()).unwrap();
        match send.send_request(req).await {
            Ok(res) => {
                assert_eq!(res.status(), http::StatusCode::OK);
                served_meanwhile += 1;
                assert!(served_meanwhile < 1000, "new streams are still served");
            }
            Err(error) => break error,
        }
    };
    assert!(!in_flight.is_finished(), "{refused}");
    assert!(!server.is_finished(), "{refused}");
    release.notify_one();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
    conn.await.unwrap().unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_cuts_an_opaque_connection_at_the_end_of_the_grace_period() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let grace = config.shutdown_grace;
    let (_, _, server) = waiting_server(listener, config, shutdown);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    conn.read_exact(&mut echoed).await.unwrap();

    trigger.trigger();
    tokio::task::yield_now().await;
    // A byte pipe cannot be drained: it works until the grace period ends.
    conn.write_all(b"pong").await.unwrap();
    conn.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"pong");
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    assert_eq!(read_to_close(&mut conn).await, "");
    let lasted = start.elapsed();
    assert!(
        lasted.abs_diff(grace) < Duration::from_secs(1),
        "{lasted:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_a_peer_that_has_not_said_what_it_speaks() {
    // A peer still in detection has sent no request to finish: waiting
    // out the detection timeout would only hold the process up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let (_, _, server) = waiting_server(listener, ServerConfig::default(), shutdown);
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(b"GET / HT").await.unwrap();
    tokio::task::yield_now().await;

    tokio::time::pause();
    let start = tokio::time::Instant::now();
    trigger.trigger();
    server.await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    for conn in [&mut silent, &mut partial] {
        // Closed without an answer; a reset if the server had unread bytes.
        let mut rest = Vec::new();
        match conn.read_to_end(&mut rest).await {
            Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

/// Plaintext, reporting that ALPN chose HTTP/1.1, as a TLS accept hook
/// does once the handshake is over.
#[derive(Clone, Copy)]
struct AlpnHttp1;

impl mesh_core::serve::Accept<TcpStream> for AlpnHttp1 {
    type Io = TcpStream;
    type Future =
        std::future::Ready<Result<mesh_core::serve::Accepted<TcpStream>, mesh_core::BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        std::future::ready(Ok(mesh_core::serve::Accepted {
            io,
            tls: mesh_core::conn::Tls::NoClientCert,
            alpn: Some(mesh_core::serve::HttpVersion::Http1),
            retire: mesh_core::serve::Retirement::never(),
        }))
    }
}

#[tokio::test]
async fn shutdown_closes_a_connection_alpn_settled_that_has_sent_nothing() {
    // ALPN skips detection, but a peer that has not sent a byte since has
    // no request to finish either (a browser's preconnect, a pool's spare
    // connection): shutdown must not wait the grace period out for it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let server = Server::new(ServerConfig::default()).with_accept(AlpnHttp1);
    let server = tokio::spawn(server.serve_http(listener, http, shutdown));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // And one that has: its request is served.
    let mut asking = TcpStream::connect(addr).await.unwrap();
    asking
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 15];
    asking.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");

    tokio::time::pause();
    let start = tokio::time::Instant::now();
    trigger.trigger();
    server.await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

/// Hands each connection over once `open` turns true, and reports each
/// it holds on `held`.
#[derive(Clone)]
struct Gate {
    open: tokio::sync::watch::Receiver<bool>,
    held: tokio::sync::mpsc::UnboundedSender<()>,
}

impl mesh_core::serve::Accept<TcpStream> for Gate {
    type Io = TcpStream;
    type Future = std::pin::Pin<
        Box<
            dyn Future<Output = Result<mesh_core::serve::Accepted<TcpStream>, mesh_core::BoxError>>
                + Send,
        >,
    >;

    fn accept(&self, io: TcpStream) -> Self::Future {
        let mut open = self.open.clone();
        let _ = self.held.send(());
        Box::pin(async move {
            open.wait_for(|open| *open).await?;
            Ok(mesh_core::serve::Accepted {
                io,
                tls: mesh_core::conn::Tls::NoClientCert,
                alpn: None,
                retire: mesh_core::serve::Retirement::never(),
            })
        })
    }
}

#[tokio::test]
async fn a_request_already_sent_when_shutdown_comes_is_answered() {
    // A client that sent its request on a new connection cannot tell
    // whether a close without an answer lost it: the request must be
    // answered, however the shutdown and its bytes' arrival interleave.
    // Here both reach each connection at the same moment, as its accept
    // hook finishes.
    const CONNECTIONS: usize = 32;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let (open, open_rx) = tokio::sync::watch::channel(false);
    let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let gate = Gate {
        open: open_rx,
        held: held_tx,
    };
    let server = Server::new(ServerConfig::default()).with_accept(gate);
    let server = tokio::spawn(server.serve_http(listener, http, shutdown));
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        conns.push(conn);
    }
    for _ in 0..CONNECTIONS {
        held.recv().await.unwrap();
    }
    trigger.trigger();
    open.send_replace(true);
    let mut unanswered = 0;
    for conn in &mut conns {
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer).await;
        if !answer.starts_with(b"HTTP/1.1 200 OK\r\n") {
            unanswered += 1;
        }
    }
    assert_eq!(unanswered, 0, "of {CONNECTIONS}");
    server.await.unwrap();
}
