//! The balancer's endpoints as they change, over real sockets: an update
//! to the same endpoints reconnects nothing, an endpoint removed while a
//! response streams lets it finish and is then let go, an endpoint back
//! from its penalty takes exactly one probe, and requests waiting for an
//! endpoint all go once one is ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    proxy::{
        EndpointSet, FailureAccrual, Forward, Queue,
        resolve::{EndpointAddr, Resolution, Resolver},
    },
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    time::Instant,
};
use tower::{Service, ServiceExt};

/// What an upstream has seen: requests, connections accepted and
/// connections closed.
#[derive(Clone)]
struct Seen {
    requests: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    closed: Arc<watch::Sender<usize>>,
}

impl Seen {
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        *self.closed.borrow()
    }

    async fn until_closed(&self, n: usize) {
        let mut closed = self.closed.subscribe();
        closed.wait_for(|&closed| closed >= n).await.unwrap();
    }
}

/// An upstream speaking HTTP/1.1 and HTTP/2 that answers each request
/// with what `answer` makes of its path, and counts what it sees.
async fn upstream<F>(answer: F) -> (SocketAddr, Seen)
where
    F: Fn(String) -> Response<BoxBody> + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen {
        requests: Arc::default(),
        accepted: Arc::default(),
        closed: Arc::new(watch::channel(0).0),
    };
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let (counts, answer) = (counts.clone(), answer.clone());
            tokio::spawn(async move {
                let requests = counts.requests.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let res = answer(req.uri().path().to_owned());
                    async move { Ok::<_, Infallible>(res) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
                counts.closed.send_modify(|n| *n += 1);
            });
        }
    });
    (addr, seen)
}

fn ok(_: String) -> Response<BoxBody> {
    Response::new(full("ok"))
}

fn get(version: Version, path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .version(version)
        .header("host", "web")
        .body(Empty::new())
        .unwrap()
}

type Fwd = Forward<Client<Empty<Bytes>>>;

fn forward(set: &EndpointSet) -> Fwd {
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    Forward::with_endpoints(client, set)
}

/// Sends `req` through `forward` itself, not a clone, and reads the
/// answer whole: its status and body.
async fn send(forward: &mut Fwd, req: Request<Empty<Bytes>>) -> (StatusCode, Bytes) {
    let res = forward.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn an_update_to_the_same_endpoints_reconnects_nothing() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (a, at_a) = upstream(ok).await;
        let (b, at_b) = upstream(ok).await;
        let set = EndpointSet::new([b, a]).unwrap();
        let mut forward = forward(&set);
        // Until both endpoints hold a connection.
        while at_a.accepted() == 0 || at_b.accepted() == 0 {
            assert_eq!(
                send(&mut forward, get(version, "/")).await.0,
                StatusCode::OK
            );
        }
        // The same endpoints, in another order, one of them twice: no
        // change, as a resolver's round that found the same answer.
        assert!(!set.update([a, b, a]).unwrap());
        let mut resolver = Resolver::new(
            Resolution::new(&[EndpointAddr::Name {
                host: "web".into(),
                port: a.port(),
            }]),
            move |_: String, _: u16| std::future::ready(Ok::<_, io::Error>(vec![b, a])),
        );
        let round = resolver.resolve().await;
        assert!(round.changed, "the name's first answer");
        assert!(!set.update(round.endpoints).unwrap());
        for _ in 0..20 {
            assert_eq!(
                send(&mut forward, get(version, "/")).await.0,
                StatusCode::OK
            );
        }
        assert_eq!((at_a.accepted(), at_b.accepted()), (1, 1), "{version:?}");
        assert_eq!((at_a.closed(), at_b.closed()), (0, 0), "{version:?}");
    }
}

#[tokio::test]
async fn an_endpoint_removed_while_its_response_streams_finishes_it_and_is_let_go() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        removed_while_streaming(version).await;
    }
}

async fn removed_while_streaming(version: Version) {
    // `a` sends its head at once and its body when told.
    let (release, released) = watch::channel(false);
    let (a, at_a) = upstream(move |_| {
        let mut released = released.clone();
        let body = futures_util::stream::once(async move {
            released.wait_for(|&go| go).await.unwrap();
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"the whole body")))
        });
        Response::new(boxed(StreamBody::new(body)))
    })
    .await;
    let (b, at_b) = upstream(ok).await;
    let set = EndpointSet::new([a]).unwrap();
    let mut forward = forward(&set);
    let res = forward
        .ready()
        .await
        .unwrap()
        .call(get(version, "/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // `a` leaves while its response's body is still to come.
    assert!(set.update([b]).unwrap());
    let body = tokio::spawn(res.into_body().collect());
    // Requests after the update go to `b` only.
    for _ in 0..10 {
        assert_eq!(
            send(&mut forward, get(version, "/")).await,
            (StatusCode::OK, Bytes::from_static(b"ok"))
        );
    }
    assert_eq!((at_a.requests(), at_b.requests()), (1, 10));
    // The response from `a` ends whole.
    release.send(true).unwrap();
    let body = body.await.unwrap().unwrap().to_bytes();
    assert_eq!(body, Bytes::from_static(b"the whole body"));
    // And then its connection is let go. The bound only keeps a failure
    // from hanging.
    tokio::time::timeout(Duration::from_secs(10), at_a.until_closed(1))
        .await
        .unwrap_or_else(|_| {
            panic!("{version:?}: the connection to the endpoint that left is still open")
        });
    assert_eq!(at_a.accepted(), 1);
}

/// Takes the endpoint out at its first failure, for 1 s, then 2 s...:
/// a probe holds its probation for up to an hour, longer than these
/// tests run.
fn out_at_first_failure() -> FailureAccrual {
    FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(1),
        Duration::from_secs(3600),
        0.0,
    )
    .unwrap()
}

/// An upstream on the paused clock: `/fail` is answered `500`, anything
/// else `200` with a body sent once `release` says so. Each request's
/// path and arrival time is reported on `arrived`.
async fn held_upstream(
    release: watch::Receiver<bool>,
    arrived: mpsc::UnboundedSender<(String, Instant)>,
) -> SocketAddr {
    let (addr, _) = upstream(move |path| {
        arrived.send((path.clone(), Instant::now())).unwrap();
        if path == "/fail" {
            let mut res = Response::new(full("no"));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return res;
        }
        let mut release = release.clone();
        let body = futures_util::stream::once(async move {
            release.wait_for(|&go| go).await.unwrap();
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"ok")))
        });
        Response::new(boxed(StreamBody::new(body)))
    })
    .await;
    addr
}

/// A forward over `endpoint` alone, taken out at its first failure, whose
/// requests wait for it for an hour.
fn one_out_at_first_failure(endpoint: SocketAddr) -> Fwd {
    let set = EndpointSet::new([endpoint])
        .unwrap()
        .with_failure_accrual(out_at_first_failure())
        .with_queue(Queue::new(100, Duration::from_secs(3600)));
    forward(&set)
}

fn spawn(forward: &Fwd, path: &'static str) -> tokio::task::JoinHandle<StatusCode> {
    let forward = forward.clone();
    tokio::spawn(async move {
        let res = forward.oneshot(get(Version::HTTP_11, path)).await.unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        status
    })
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_back_from_its_penalty_takes_one_probe_then_everyone_waiting() {
    let (release, released) = watch::channel(false);
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let forward = one_out_at_first_failure(held_upstream(released, arrived_tx).await);
    let out = Instant::now();
    assert_eq!(
        spawn(&forward, "/fail").await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    arrived.recv().await.unwrap();
    let waiting: Vec<_> = (0..5).map(|_| spawn(&forward, "/")).collect();
    // The penalty ends at 1 s: one request is sent, as the probe. Its
    // body is held, and with it the probation.
    let (_, at) = arrived.recv().await.unwrap();
    assert_eq!(at, out + Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(arrived.try_recv().is_err(), "one probe at a time");
    assert!(waiting.iter().all(|w| !w.is_finished()));
    // It succeeds: every request waiting is sent, and answered. The
    // clock runs again first: paused, it would jump to the waiters'
    // fail-fast timeout while the body's bytes are on their way.
    tokio::time::resume();
    release.send(true).unwrap();
    for waiting in waiting {
        assert_eq!(waiting.await.unwrap(), StatusCode::OK);
    }
    let mut sent = 1;
    while arrived.try_recv().is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 5);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_fails_doubles_the_penalty() {
    let (_release, released) = watch::channel(true);
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let forward = one_out_at_first_failure(held_upstream(released, arrived_tx).await);
    let out = Instant::now();
    assert_eq!(
        spawn(&forward, "/fail").await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    arrived.recv().await.unwrap();
    // The probe, at 1 s, fails: out for 2 s more.
    let probe = spawn(&forward, "/fail");
    let next = spawn(&forward, "/");
    assert_eq!(probe.await.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        arrived.recv().await.unwrap(),
        ("/fail".to_owned(), out + Duration::from_secs(1))
    );
    assert_eq!(next.await.unwrap(), StatusCode::OK);
    assert_eq!(
        arrived.recv().await.unwrap(),
        ("/".to_owned(), out + Duration::from_secs(3))
    );
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_for_a_first_endpoint_all_go_when_it_comes_and_the_queue_holds_no_more() {
    let (endpoint, seen) = upstream(ok).await;
    let set = EndpointSet::empty().with_queue(Queue::new(50, Duration::from_secs(3)));
    let forward = forward(&set);
    let waiting: Vec<_> = (0..50).map(|_| spawn(&forward, "/")).collect();
    tokio::task::yield_now().await;
    // The queue is full: one more is answered at once.
    let start = Instant::now();
    assert_eq!(
        spawn(&forward, "/").await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(Instant::now(), start);
    set.update([endpoint]).unwrap();
    for waiting in waiting {
        assert_eq!(waiting.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(seen.requests(), 50);
}
