//! The client's pool over real sockets: an idle connection is reused
//! until `pool_idle_timeout`, at most `pool_max_idle_per_host` of them
//! stay, and a client made for an endpoint closes its connections when it
//! is dropped.
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

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::client::{Client, ClientConfig, ForEndpoint};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc},
};
use tower::ServiceExt;

/// An HTTP/1.1 upstream that counts the connections it accepted, reports
/// each one that closes, and answers a request once it gets a permit from
/// `gate`.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
}

async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let (count, permits) = (accepted.clone(), gate.clone());
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let permits = permits.clone();
            let svc = hyper::service::service_fn(move |_: Request<Incoming>| {
                let permits = permits.clone();
                async move {
                    permits.acquire().await.unwrap().forget();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc)
                    .await;
                let _ = closed_tx.send(());
            });
        }
    });
    Upstream {
        addr,
        accepted,
        closed,
        gate,
    }
}

impl Upstream {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits for a connection to close and returns how long that took by
    /// the clock, which the callers pause: it runs to the client's timers
    /// at once, so the time is the one they set, and an hour is "never".
    async fn a_connection_closes(&mut self) -> Duration {
        let start = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(3600), self.closed.recv())
            .await
            .expect("no pooled connection was closed")
            .unwrap();
        start.elapsed()
    }
}

async fn get(client: &Client<Empty<Bytes>>, addr: SocketAddr) {
    let req = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The whole body read: the connection goes back to the pool.
    res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_reused_until_the_idle_timeout() {
    let mut up = upstream().await;
    up.gate.add_permits(3);
    let config = ClientConfig {
        pool_idle_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    let client = Client::<Empty<Bytes>>::new(&config);
    get(&client, up.addr).await;
    get(&client, up.addr).await;
    assert_eq!(up.accepted(), 1, "the idle connection was not reused");

    // Only the pool's timers are left: the paused clock runs to them.
    // hyper-util sweeps its pool once per idle timeout, starting when the
    // first connection went idle: the connection, idle since a moment
    // later, is found expired at the second sweep, between one and two
    // timeouts from now. Not before, and not on some other timeout.
    tokio::time::pause();
    let lasted = up.a_connection_closes().await;
    tokio::time::resume();
    assert!(
        (Duration::from_secs(10)..=Duration::from_secs(20)).contains(&lasted),
        "closed after {lasted:?} idle, with a 10 s idle timeout"
    );
    get(&client, up.addr).await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_zero_idle_timeout_keeps_no_idle_connection() {
    // hyper-util's pool never sweeps with a zero timeout, and only finds
    // an idle connection expired when it next looks for one: a client
    // that sent nothing more to the upstream would keep it open for good.
    let mut up = upstream().await;
    up.gate.add_permits(2);
    let config = ClientConfig {
        pool_idle_timeout: Duration::ZERO,
        ..ClientConfig::default()
    };
    let client = Client::<Empty<Bytes>>::new(&config);
    get(&client, up.addr).await;
    tokio::time::pause();
    assert_eq!(
        up.a_connection_closes().await,
        Duration::ZERO,
        "a connection was kept idle"
    );
    tokio::time::resume();
    get(&client, up.addr).await;
    assert_eq!(up.accepted(), 2, "a connection was kept idle");
}

#[tokio::test]
async fn no_more_idle_connections_than_the_limit_are_kept() {
    let mut up = upstream().await;
    let config = ClientConfig {
        pool_max_idle_per_host: 1,
        ..ClientConfig::default()
    };
    let client = Client::<Empty<Bytes>>::new(&config);
    // Two requests at once take two connections.
    let a = tokio::spawn({
        let client = client.clone();
        async move { get(&client, up.addr).await }
    });
    let b = tokio::spawn({
        let client = client.clone();
        async move { get(&client, up.addr).await }
    });
    while up.accepted() < 2 {
        tokio::task::yield_now().await;
    }
    up.gate.add_permits(2);
    a.await.unwrap();
    b.await.unwrap();
    // One of them is closed rather than kept, the other one is reused.
    tokio::time::pause();
    assert_eq!(
        up.a_connection_closes().await,
        Duration::ZERO,
        "the connection past the limit was kept idle"
    );
    tokio::time::resume();
    up.gate.add_permits(2);
    get(&client, up.addr).await;
    get(&client, up.addr).await;
    assert_eq!(up.accepted(), 2);
    assert!(up.closed.try_recv().is_err(), "the kept connection closed");
}

#[tokio::test]
async fn a_client_for_an_endpoint_closes_its_connections_when_dropped() {
    let mut up = upstream().await;
    up.gate.add_permits(1);
    let base = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let client = base.for_endpoint(up.addr);
    get(&client, up.addr).await;
    assert!(up.closed.try_recv().is_err());
    // The endpoint left its balancer: its pool goes, and with it the
    // connection, though the client it was made from lives on.
    drop(client);
    // At once, not when some pool's idle timeout finds it.
    tokio::time::pause();
    assert_eq!(up.a_connection_closes().await, Duration::ZERO);
    drop(base);
}
