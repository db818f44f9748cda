//! The client's pools, seen from the upstream: how many connections a
//! `Forward` opens for the requests it sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
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

/// How many connections an upstream has accepted, and how many of them
/// have closed.
#[derive(Clone)]
struct Counts {
    accepted: Arc<AtomicUsize>,
    closed: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Counts {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        *self.closed.borrow()
    }

    /// Waits until `n` connections have closed.
    async fn until_closed(&self, n: usize) {
        let mut closed = self.closed.subscribe();
        closed.wait_for(|&closed| closed >= n).await.unwrap();
    }
}

/// An upstream speaking HTTP/1.1 and HTTP/2 (prior knowledge) that
/// counts its connections.
async fn counting_upstream() -> (SocketAddr, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Counts {
        accepted: Arc::default(),
        closed: Arc::new(tokio::sync::watch::channel(0).0),
    };
    let count = counts.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            count.accepted.fetch_add(1, Ordering::SeqCst);
            let closed = count.closed.clone();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(full("ok")))
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
                closed.send_modify(|n| *n += 1);
            });
        }
    });
    (addr, counts)
}

async fn send(forward: &Forward<Client<BoxBody>>, version: Version, body: &'static str) {
    let req = Request::post("/")
        .version(version)
        .header("host", "web")
        .body(full(body))
        .unwrap();
    let res = forward.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn requests_one_after_another_reuse_one_connection() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (upstream, accepted) = counting_upstream().await;
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let forward = Forward::new(client, [upstream]).unwrap();
        for _ in 0..10 {
            send(&forward, version, "hello").await;
        }
        assert_eq!(accepted.accepted(), 1, "{version:?}");
    }
}

#[tokio::test]
async fn connections_to_an_endpoint_that_left_the_set_close_once_idle() {
    let (a, at_a) = counting_upstream().await;
    let (b, at_b) = counting_upstream().await;
    let set = EndpointSet::new([a]).unwrap();
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::with_endpoints(client, &set);
    send(&forward, Version::HTTP_11, "hello").await;
    set.update([b]).unwrap();
    send(&forward, Version::HTTP_11, "hello").await;
    assert_eq!((at_a.accepted(), at_b.accepted()), (1, 1));
    assert_eq!(at_a.closed(), 0);
    // Only the pool's timers are left: the paused clock jumps to them.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(61)).await;
    tokio::time::resume();
    // Closing is I/O, which the clock does not drive; the bound only
    // keeps a failure from hanging.
    tokio::time::timeout(Duration::from_secs(10), at_a.until_closed(1))
        .await
        .expect("the connection to the endpoint that left is still open");
}
