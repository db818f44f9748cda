//! Pieces shared by the failure-accrual tests: HTTP/2 and HTTP/1.1
//! upstreams, an accrual that takes an endpoint out at its first failure,
//! a proxy server with it, and a request body its client abandons.
#![allow(dead_code)]

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, Version};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    proxy::{BalancerView, FailureAccrual, Forward},
    serve::{Server, ServerConfig, shutdown, shutdown::ShutdownTrigger},
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

/// A proxy server forwarding to `endpoint` through a `Forward` that
/// takes it out at its first failure; the balancer's view beside it,
/// and what shuts it down.
pub(crate) async fn proxy(endpoint: SocketAddr) -> (SocketAddr, BalancerView, ShutdownTrigger) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));
    (addr, view, trigger)
}

/// How a gRPC test upstream ends a call, named by the call's `x-end`
/// header (`trailers:0` when it names none).
pub(crate) fn grpc_stream_end(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-end")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("trailers:0")
        .to_owned()
}

/// An HTTP/1.1 upstream answering each call `200`, `application/grpc`,
/// with no status and a body of known length: empty, or one message, as
/// its `x-end` header (`empty` or `whole`) says. HTTP/1.1 has no
/// trailers with a content-length, so the stream ends without a status.
pub(crate) async fn grpc_h1_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let body = match grpc_stream_end(&req).as_str() {
                    "empty" => full(""),
                    _ => full(Bytes::from_static(b"\0\0\0\0\x02hi")),
                };
                let res = Response::builder()
                    .header("content-type", "application/grpc")
                    .body(body)
                    .unwrap();
                Ok::<_, Infallible>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

/// Sends `()` on `0` when dropped.
pub(crate) struct OnDrop(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// An HTTP/2 upstream answering `only:<code>` trailers-only and
/// `trailers:0` with a message and an `OK` status; `hang` with headers
/// and a message, then nothing, sending word on `gone` when it drops the
/// call (its stream reset).
pub(crate) async fn grpc_upstream_watching_hangs(
    gone: tokio::sync::mpsc::UnboundedSender<()>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let gone = gone.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let end = grpc_stream_end(&req);
                let head = Response::builder().header("content-type", "application/grpc");
                if let Some(code) = end.strip_prefix("only:") {
                    let res = head.header("grpc-status", code).body(full("")).unwrap();
                    return std::future::ready(Ok::<_, Infallible>(res));
                }
                let message = Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")));
                let body = if end == "hang" {
                    let guard = OnDrop(gone.clone());
                    let stalled = futures_util::stream::iter([message])
                        .chain(futures_util::stream::pending())
                        .map(move |frame| {
                            let _ = &guard;
                            frame
                        });
                    boxed(StreamBody::new(stalled))
                } else {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    let frames = [message, Ok(Frame::trailers(trailers))];
                    boxed(StreamBody::new(futures_util::stream::iter(frames)))
                };
                std::future::ready(Ok(head.body(body).unwrap()))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

/// An HTTP/2 upstream answering each gRPC call with headers (`200`,
/// `application/grpc`, no `grpc-status`) and one message, then ending
/// as its `x-end` header says: `trailers:<code>`, trailers with that
/// `grpc-status`; `none`, the end of the stream without trailers;
/// `reset`, a reset of the stream; `hang`, nothing more. `only:<code>`
/// answers trailers-only instead; `empty`, headers that end the stream
/// with no status.
pub(crate) async fn grpc_stream_upstream() -> SocketAddr {
    h2_upstream(|req: Request<Incoming>| async move {
        let end = grpc_stream_end(&req);
        let head = Response::builder().header("content-type", "application/grpc");
        if let Some(code) = end.strip_prefix("only:") {
            return head.header("grpc-status", code).body(full("")).unwrap();
        }
        if end == "empty" {
            return head.body(full("")).unwrap();
        }
        let message = Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")));
        let rest: Vec<Result<Frame<Bytes>, BoxError>> = match end.as_str() {
            "none" => vec![],
            "reset" => vec![Err("the server broke mid-call".into())],
            "hang" => {
                let stalled =
                    futures_util::stream::iter([message]).chain(futures_util::stream::pending());
                return head.body(boxed(StreamBody::new(stalled))).unwrap();
            }
            trailers => {
                let code = trailers.strip_prefix("trailers:").unwrap().to_owned();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", code.parse().unwrap());
                vec![Ok(Frame::trailers(trailers))]
            }
        };
        let frames = std::iter::once(message).chain(rest);
        head.body(boxed(StreamBody::new(futures_util::stream::iter(frames))))
            .unwrap()
    })
    .await
}

/// A gRPC call to the emoji service, ended by the upstream as `end` says
/// (see [`grpc_stream_upstream`]).
pub(crate) fn grpc_call(end: &str) -> Request<BoxBody> {
    Request::post("http://emoji/emoji.EmojiService/ListAll")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-end", end)
        .body(full(""))
        .unwrap()
}
