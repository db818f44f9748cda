//! Pieces shared by the failure-accrual tests: an HTTP/2 upstream, an
//! accrual that takes an endpoint out at its first failure, and a request
//! body its client abandons.
#![allow(dead_code)]

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed},
    proxy::FailureAccrual,
};
use tokio::net::TcpListener;

/// An HTTP/2 (prior knowledge) upstream answering every request with
/// `answer`.
pub(crate) async fn h2_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(answer(req).await)
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

/// Takes an endpoint out at its first failure.
pub(crate) fn strict() -> FailureAccrual {
    FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap()
}

/// A body that sends a few bytes and then fails, as the body of a client
/// that went away mid-upload does.
pub(crate) fn aborted_body() -> BoxBody {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"part of an upload"))),
        Err("the client went away".into()),
    ];
    boxed(StreamBody::new(futures_util::stream::iter(frames)))
}
