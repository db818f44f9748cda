//! Each endpoint of a `Forward` has a client of its own, made once: one
//! that stays across an update of its set keeps its pooled connections,
//! whatever authority the requests name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    proxy::{EndpointSet, Forward},
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An upstream speaking HTTP/1.1 and HTTP/2 that counts the connections
/// it accepts.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let svc = hyper::service::service_fn(|_: Request<Incoming>| async move {
                Ok::<_, Infallible>(Response::new(full("ok")))
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
            });
        }
    });
    (addr, accepted)
}

async fn send(forward: &Forward<Client<BoxBody>>, version: Version) {
    let req = Request::get("http://web.ns.svc:8080/")
        .version(version)
        .body(full(""))
        .unwrap();
    let res = forward.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn an_endpoint_that_stays_across_updates_keeps_its_connection() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let ((a, at_a), (b, at_b)) = (counting_upstream().await, counting_upstream().await);
        let set = EndpointSet::new([a]).unwrap();
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let forward = Forward::with_endpoints(client, &set);
        send(&forward, version).await;
        // Two updates: `b` joins and leaves before the next request,
        // which finds `a` in a balancer it has not seen.
        set.update([a, b]).unwrap();
        set.update([a]).unwrap();
        send(&forward, version).await;
        assert_eq!(at_a.load(Ordering::SeqCst), 1, "{version:?}");
        assert_eq!(at_b.load(Ordering::SeqCst), 0, "{version:?}");
    }
}
