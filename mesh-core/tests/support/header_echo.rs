//! An HTTP/1 upstream that shows a test what reached it: each request is
//! answered with the headers it was sent, one `name: value` line each.

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Starts a header echo on a port of 127.0.0.1; its address.
pub(crate) async fn header_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let lines: String = req
                    .headers()
                    .iter()
                    .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap()))
                    .collect();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(lines))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}
