//! An endpoint that leaves a `Forward`'s set drains: requests already
//! sent to it finish, head and body, while the next ones go to the
//! endpoints that stay, over HTTP/1.1 and HTTP/2 alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    proxy::{EndpointSet, Forward},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::{Service, ServiceExt};

type Frames = tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>;

/// A body of the frames sent on a channel, until it closes.
fn chunks(
    mut rx: Frames,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// An upstream speaking HTTP/1.1 and HTTP/2 whose every answer waits for
/// a permit of `gate` before its head, and for another before its last
/// chunk: `head` then `tail`.
async fn gated_upstream(gate: Arc<Semaphore>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let gate = gate.clone();
            let svc = hyper::service::service_fn(move |_: Request<Incoming>| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    let (tx, rx) = tokio::sync::mpsc::channel(2);
                    tx.send(Ok(Frame::data(Bytes::from("head "))))
                        .await
                        .unwrap();
                    tokio::spawn(async move {
                        gate.acquire().await.unwrap().forget();
                        let _ = tx.send(Ok(Frame::data(Bytes::from("tail")))).await;
                    });
                    Ok::<_, Infallible>(Response::new(chunks(rx)))
                }
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
            });
        }
    });
    addr
}

/// An upstream that answers `stayed` at once.
async fn plain_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(full("stayed")))
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
            });
        }
    });
    addr
}

fn request(version: Version) -> Request<BoxBody> {
    Request::get("http://web.ns.svc:8080/")
        .version(version)
        .body(full(""))
        .unwrap()
}

/// Sends through `forward` itself, not a clone: the request after an
/// update lets go of the clients of the endpoints that left.
async fn call(
    forward: &mut Forward<Client<BoxBody>>,
    version: Version,
) -> <Forward<Client<BoxBody>> as Service<Request<BoxBody>>>::Future {
    forward.ready().await.unwrap();
    forward.call(request(version))
}

#[tokio::test]
async fn a_request_whose_endpoint_leaves_before_its_head_still_gets_its_whole_answer() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let gate = Arc::new(Semaphore::new(0));
        let (leaving, staying) = (gated_upstream(gate.clone()).await, plain_upstream().await);
        let set = EndpointSet::new([leaving]).unwrap();
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let mut forward = Forward::with_endpoints(client, &set);

        // Its endpoint is picked as it is called: it goes to `leaving`,
        // whether or not it has connected yet when `leaving` leaves.
        let in_flight = tokio::spawn(call(&mut forward, version).await);
        tokio::task::yield_now().await;
        assert!(set.update([staying]).unwrap());
        let next = call(&mut forward, version).await.await.unwrap();
        let next = next.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(next, "stayed", "{version:?}");

        gate.add_permits(2);
        let res = in_flight.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{version:?}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "head tail", "{version:?}");
    }
}

#[tokio::test]
async fn a_response_whose_endpoint_leaves_while_its_body_streams_ends_whole() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let gate = Arc::new(Semaphore::new(1));
        let (leaving, staying) = (gated_upstream(gate.clone()).await, plain_upstream().await);
        let set = EndpointSet::new([leaving]).unwrap();
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let mut forward = Forward::with_endpoints(client, &set);

        let res = call(&mut forward, version).await.await.unwrap();
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "head ", "{version:?}");

        assert!(set.update([staying]).unwrap());
        let next = call(&mut forward, version).await.await.unwrap();
        let next = next.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(next, "stayed", "{version:?}");
        // Nothing holds the leaving endpoint's client now but the body.
        drop(forward);
        drop(set);

        gate.add_permits(1);
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "tail", "{version:?}");
    }
}
