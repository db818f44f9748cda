//! Graceful shutdown over real sockets: a request in flight finishes, an
//! idle connection closes, and new connections are refused.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
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
