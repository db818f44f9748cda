//! A tiny backend to put behind the sidecar.
//!
//! It answers every request with a line naming itself, the method and the
//! path, and echoes the request body after it:
//!
//! ```text
//! cargo run --release --example hello -- 127.0.0.1:8080 web
//! curl -s localhost:8080/hi      # hello from web: GET /hi
//! ```
//!
//! Both arguments are optional (defaults `127.0.0.1:8080` and `hello`). It
//! speaks HTTP/1.1 and HTTP/2 (prior knowledge), prints
//! `hello backend 'web' listening on 127.0.0.1:8080`, and serves until it is
//! stopped (Ctrl-C).
//!
//! A path `/status/CODE` answers with that status code instead of 200, so
//! failures can be sent through a mesh on purpose:
//!
//! ```text
//! curl -si localhost:8080/status/503   # HTTP/1.1 503 Service Unavailable
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("an address such as 127.0.0.1:8080");
    let name: &'static str = args.next().unwrap_or_else(|| "hello".into()).leak();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "hello backend '{name}' listening on {}",
        listener.local_addr()?
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| respond(name, req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

async fn respond(
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let line = format!("hello from {name}: {} {}\n", req.method(), req.uri().path());
    let status = req
        .uri()
        .path()
        .strip_prefix("/status/")
        .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
        .unwrap_or(StatusCode::OK);
    let body = req.into_body().collect().await?.to_bytes();
    let mut out = line.into_bytes();
    out.extend_from_slice(&body);
    let mut res = Response::new(Full::new(Bytes::from(out)));
    *res.status_mut() = status;
    Ok(res)
}
