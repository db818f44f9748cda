//! The failed response a retry is to replace, which the retry layer and
//! the route stack hold through the backoff and the wait for the service
//! to get ready: it is let go before the retry goes out, when the
//! deadline ends the wait, and when the caller goes away, with the retry
//! given back to the budget once; it reaches the caller whole when the
//! service refuses the retry. A long run of retried requests over real
//! sockets keeps the upstream's connections flat.

use std::{
    collections::HashSet,
    convert::Infallible,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::{
    BoxError,
    body::{BoxBody, empty},
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryLayer, RetryPolicy, RouteStack, RouteStackLayer, Timeouts,
    replay::ReplayBody,
};
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tower::{Layer, Service, ServiceExt};

use crate::support::{
    self, grpc_upstream,
    retrying::{Counted, Endpoints},
};

/// A response body that says when it is dropped.
#[derive(Default)]
struct Tracked {
    data: Option<Bytes>,
    dropped: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.data.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    // As a body with a `content-length` says: a retry holds a failed
    // response only when it knows the body is small.
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// What the service does once it has sent the first attempt.
#[derive(Clone, Copy)]
enum Then {
    /// Is ready for the retry at once.
    Ready,
    /// Fails to get ready, as a balancer left with no endpoints does.
    Fails,
    /// Gets ready this long after it was made.
    ReadyAfter(Duration),
    /// Fails to get ready this long after it was made.
    FailsAfter(Duration),
}

/// What the service saw, shared by its clones.
struct Script {
    then: Then,
    start: Instant,
    /// Each attempt's body's drop flag, in the order they were sent.
    bodies: Mutex<Vec<Arc<AtomicBool>>>,
    /// For each attempt after the first, whether the response before it
    /// had been dropped when the attempt was first polled.
    let_go: Mutex<Vec<bool>>,
    refusals: AtomicUsize,
}

impl Script {
    fn first_dropped(&self) -> bool {
        self.bodies.lock().unwrap()[0].load(Ordering::SeqCst)
    }

    fn attempts(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

/// A service answering its first attempt `503` ("first") and any other
/// `200` ("second"), in [`Tracked`] bodies; after the first attempt its
/// readiness does as its script's [`Then`] says.
#[derive(Clone)]
struct Scripted {
    script: Arc<Script>,
    wait: Option<Arc<Mutex<Pin<Box<Sleep>>>>>,
}

impl Scripted {
    fn new(then: Then) -> (Self, Arc<Script>) {
        let script = Arc::new(Script {
            then,
            start: Instant::now(),
            bodies: Mutex::default(),
            let_go: Mutex::default(),
            refusals: AtomicUsize::new(0),
        });
        (
            Self {
                script: script.clone(),
                wait: None,
            },
            script,
        )
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<Response<Tracked>, BoxError>> + Send>>;

impl Service<Request<ReplayBody<BoxBody>>> for Scripted {
    type Response = Response<Tracked>;
    type Error = BoxError;
    type Future = Attempt;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.script.attempts() == 0 {
            return Poll::Ready(Ok(()));
        }
        match self.script.then {
            Then::Ready => {}
            Then::Fails => {
                self.script.refusals.fetch_add(1, Ordering::SeqCst);
                return Poll::Ready(Err("no endpoints left".into()));
            }
            Then::ReadyAfter(after) | Then::FailsAfter(after) => {
                let at = self.script.start + after;
                let wait = self
                    .wait
                    .get_or_insert_with(|| Arc::new(Mutex::new(Box::pin(sleep_until(at)))));
                ready!(wait.lock().unwrap().as_mut().poll(cx));
                if let Then::FailsAfter(_) = self.script.then {
                    self.script.refusals.fetch_add(1, Ordering::SeqCst);
                    return Poll::Ready(Err("no endpoints left".into()));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReplayBody<BoxBody>>) -> Attempt {
        let dropped = Arc::new(AtomicBool::new(false));
        let index = {
            let mut bodies = self.script.bodies.lock().unwrap();
            bodies.push(dropped.clone());
            bodies.len() - 1
        };
        let script = self.script.clone();
        Box::pin(async move {
            if index > 0 {
                let before = script.bodies.lock().unwrap()[index - 1].load(Ordering::SeqCst);
                script.let_go.lock().unwrap().push(before);
            }
            let (status, text) = if index == 0 {
                (StatusCode::SERVICE_UNAVAILABLE, "first")
            } else {
                (StatusCode::OK, "second")
            };
            let mut res = Response::new(Tracked {
                data: Some(Bytes::from_static(text.as_bytes())),
                dropped,
            });
            *res.status_mut() = status;
            Ok(res)
        })
    }
}

/// A retry after exactly one second.
fn policy() -> RetryPolicy {
    let second = Duration::from_secs(1);
    RetryPolicy::default().with_backoff(Backoff::at_least(second, second).unwrap())
}

/// A ratio of 1.0 and a reserve of 10: one request leaves 11 retries, and
/// a retry taken and not given back leaves 10, one given back twice 12.
fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1.0, 1, Duration::from_secs(10)).unwrap(),
    ))
}

/// The balance after one request whose retry, if any, was given back.
const ONE_REQUEST: f64 = 11.0;

/// Every counter of why a retry was or was not sent, by name.
fn all(counted: &Counted) -> [(&'static str, u64); 5] {
    [
        ("retry_requests", counted.count("retry_requests", "")),
        (
            "deadline_exceeded",
            counted.count("retry_deadline_exceeded", ""),
        ),
        (
            "budget_exhausted",
            counted.count("retry_budget_exhausted", ""),
        ),
        ("limit_exceeded", counted.count("retry_limit_exceeded", "")),
        (
            "unavailable",
            counted.count("retry_not_retryable", ",reason=\"unavailable\""),
        ),
    ]
}

/// Asserts that `only` (if any) counted once and nothing else did.
fn assert_only(counted: &Counted, only: Option<&str>) {
    for (name, value) in all(counted) {
        assert_eq!(value, u64::from(only == Some(name)), "{name}");
    }
}

/// A route stack with `timeouts` over a [`Scripted`] service that does as
/// `then` says: the stack, what the service saw, the budget and the
/// route's counters.
fn route_stack(
    then: Then,
    timeouts: Timeouts,
) -> (RouteStack<Scripted>, Arc<Script>, Arc<Budget>, Counted) {
    let (svc, script) = Scripted::new(then);
    let counted = Counted::new();
    let budget = budget();
    let svc = RouteStackLayer::new(policy(), timeouts, budget.clone())
        .with_metrics(counted.metrics.clone())
        .layer(svc);
    (svc, script, budget, counted)
}

fn get() -> Request<BoxBody> {
    Request::get("http://upstream/items").body(empty()).unwrap()
}

/// Sends a request through `svc`, lets the backoff run half-way, and
/// returns the future, still waiting, with what the service saw.
macro_rules! in_the_backoff {
    ($svc:expr, $script:expr) => {{
        let mut fut = Box::pin($svc.oneshot(get()));
        assert!(
            timeout(Duration::from_millis(500), &mut fut).await.is_err(),
            "the retry waits out its backoff"
        );
        assert_eq!($script.attempts(), 1);
        fut
    }};
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_lets_the_failed_response_go_before_its_retry_is_polled() {
    let (svc, script, _, counted) = route_stack(Then::Ready, Timeouts::default());
    let fut = in_the_backoff!(svc, script);
    assert!(!script.first_dropped(), "held through the backoff");
    let res = fut.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "second"
    );
    assert_eq!(
        *script.let_go.lock().unwrap(),
        [true],
        "let go before the retry ran"
    );
    assert_only(&counted, Some("retry_requests"));
}

#[tokio::test(start_paused = true)]
async fn so_does_the_retry_layer() {
    let (svc, script) = Scripted::new(Then::Ready);
    let svc = RetryLayer::new(policy(), budget()).layer(svc);
    let fut = in_the_backoff!(svc, script);
    assert!(!script.first_dropped(), "held through the backoff");
    let res = fut.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        *script.let_go.lock().unwrap(),
        [true],
        "let go before the retry ran"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_gone_during_the_route_stacks_backoff_lets_the_response_go_and_the_retry_back() {
    let (svc, script, budget, counted) = route_stack(Then::Ready, Timeouts::default());
    let fut = in_the_backoff!(svc, script);
    drop(fut);
    assert!(script.first_dropped(), "let go with the future");
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, None);
}

#[tokio::test(start_paused = true)]
async fn a_caller_gone_while_the_service_is_not_ready_lets_the_response_go_and_the_retry_back() {
    let (svc, script, budget, counted) = route_stack(
        Then::ReadyAfter(Duration::from_secs(60)),
        Timeouts::default(),
    );
    let mut fut = Box::pin(svc.oneshot(get()));
    // Past the backoff, waiting for the service.
    assert!(timeout(Duration::from_secs(5), &mut fut).await.is_err());
    assert!(
        !script.first_dropped(),
        "held while the service is not ready"
    );
    drop(fut);
    assert!(script.first_dropped(), "let go with the future");
    assert_eq!(script.attempts(), 1);
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, None);
}

/// Sends a request through a route stack with a deadline of 1.5 s and a
/// 1 s backoff, over a service that does as `then` says, and asserts that
/// the stack answered 504, having let the failed response go and given the
/// retry back once: what the service saw.
async fn assert_the_504_at_the_deadline(then: Then) -> Arc<Script> {
    let timeouts = Timeouts {
        request: Some(Duration::from_millis(1500)),
        ..Timeouts::default()
    };
    let (mut svc, script, budget, counted) = route_stack(then, timeouts);
    // Called, not `oneshot`: tower's `Oneshot` drops the response future
    // as it completes, which would let the response go whatever the
    // future did.
    let mut fut = pin!(svc.ready().await.unwrap().call(get()));
    let res = (&mut fut).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        script.first_dropped(),
        "let go when the 504 is answered, not when the future is dropped"
    );
    assert_eq!(script.attempts(), 1);
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, Some("deadline_exceeded"));
    script
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_while_the_service_is_not_ready_lets_the_response_go_with_the_504() {
    // Decided at 0 with 1.5 s left and a 1 s backoff; the service is ready
    // only at 2 s: the route stack answers 504 at 1.5 s.
    assert_the_504_at_the_deadline(Then::ReadyAfter(Duration::from_secs(2))).await;
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_as_the_deadline_passes_is_the_route_stacks_504_counted_once() {
    // The service fails to get ready at 1.5 s, as the deadline passes: the
    // deadline is the stack's own, and answers first.
    let script =
        assert_the_504_at_the_deadline(Then::FailsAfter(Duration::from_millis(1500))).await;
    assert_eq!(script.refusals.load(Ordering::SeqCst), 0, "never asked");
}

#[tokio::test(start_paused = true)]
async fn a_refused_retry_hands_the_held_response_on_unread_and_gives_the_retry_back_once() {
    let (svc, script, budget, counted) = route_stack(Then::Fails, Timeouts::default());
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!script.first_dropped(), "the caller has it");
    assert_eq!(script.refusals.load(Ordering::SeqCst), 1);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "first");
    assert!(script.first_dropped());
    assert_eq!(script.attempts(), 1);
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, Some("unavailable"));
}

#[tokio::test(start_paused = true)]
async fn so_does_the_retry_layer_with_a_refused_retry() {
    let (svc, script) = Scripted::new(Then::Fails);
    let counted = Counted::new();
    let budget = budget();
    let svc = RetryLayer::new(policy(), budget.clone())
        .with_metrics(counted.metrics.clone())
        .layer(svc);
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.refusals.load(Ordering::SeqCst), 1);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "first");
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, Some("unavailable"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_retry_of_a_trailers_only_grpc_failure_hands_its_head_on_whole() {
    // The head-only stack decides by the head of a trailers-only answer
    // (`grpc-status` in the head, no body), over HTTP/2.
    let upstream = support::answering(|_, _| {
        Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "14")
            .header("grpc-message", "shard%207%20is%20draining")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let counted = Counted::new();
    let svc = RouteStackLayer::new(grpc_upstream::grpc_route(), Timeouts::default(), budget())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::gone());
    let req = Request::post(upstream.uri("/pkg.Svc/Call"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(mesh_core::body::full("request"))
        .unwrap();
    let res = svc.oneshot(req).await.expect("the upstream's answer");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], "shard%207%20is%20draining");
    let (data, trailers) = grpc_upstream::read(res).await;
    assert!(data.is_empty());
    assert_eq!(trailers, None, "nothing added to a trailers-only answer");
    assert_eq!(upstream.seen().len(), 1);
    assert_only(&counted, Some("unavailable"));
}

/// An upstream that answers the first request carrying an `x-n` it has
/// not seen with a `503` and a 256 KiB body (more
/// than a connection reads ahead of its caller), and the next with a `200`;
/// it counts the connections it accepted, and those still open.
struct Flaky {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

async fn flaky() -> Flaky {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let failed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (a, o) = (accepted.clone(), open.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            o.fetch_add(1, Ordering::SeqCst);
            let (o, failed) = (o.clone(), failed.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let failed = failed.clone();
                    async move {
                        let n = req.headers()["x-n"].to_str().unwrap().to_owned();
                        let _ = req.into_body().collect().await;
                        let first = failed.lock().unwrap().insert(n);
                        let res = if first {
                            Response::builder()
                                .status(503)
                                .body(Full::new(Bytes::from(vec![b'x'; 256 << 10])))
                        } else {
                            Response::builder().body(Full::new(Bytes::from_static(b"ok")))
                        };
                        Ok::<_, Infallible>(res.unwrap())
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Flaky {
        addr,
        accepted,
        open,
    }
}

/// Sends `per_task` requests from each of `tasks` callers, one after
/// another, each retried once after a backoff, and returns the upstream
/// with the route's metrics.
async fn long_run(version: Version, tasks: usize, per_task: usize) -> (Flaky, Counted) {
    let upstream = flaky().await;
    let counted = Counted::new();
    let backoff = Backoff::at_least(Duration::from_millis(25), Duration::from_millis(25)).unwrap();
    let svc = RouteStackLayer::new(
        RetryPolicy::default().with_backoff(backoff),
        Timeouts::default(),
        grpc_upstream::unlimited(),
    )
    .with_metrics(counted.metrics.clone())
    .layer(support::client());
    // The callers run together on this task: each awaits its own
    // requests in turn.
    let callers = (0..tasks).map(|t| {
        let (svc, addr) = (svc.clone(), upstream.addr);
        async move {
            for i in 0..per_task {
                let req = Request::get(format!("http://{addr}/items"))
                    .version(version)
                    .header("x-n", format!("{t}-{i}"))
                    .body(empty())
                    .unwrap();
                let res = svc.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res.into_body().collect().await.unwrap();
            }
        }
    });
    futures_util::future::join_all(callers).await;
    (upstream, counted)
}

/// `run`, which fails rather than hang if something held (a stream, a
/// connection) stalls the run: on the paused clock, ten minutes come at
/// once when nothing else can go on.
async fn within_ten_minutes<T>(run: impl Future<Output = T>) -> T {
    timeout(Duration::from_secs(600), run)
        .await
        .expect("the run stalled")
}

#[tokio::test(start_paused = true)]
async fn a_long_run_of_retried_http1_requests_keeps_the_connections_flat() {
    let (tasks, per_task) = (4, 100);
    let (upstream, counted) = within_ten_minutes(long_run(Version::HTTP_11, tasks, per_task)).await;
    assert_eq!(
        counted.count("retry_requests", ""),
        (tasks * per_task) as u64
    );
    // Each caller's failed response holds its connection, its body
    // unread, until its retry goes out, which takes another. Let go
    // unread, that connection is closed (hyper does not read 256 KiB to
    // reuse it), as it was when the response was let go at the decision:
    // a connection is made for each retry, and closed. What must not grow
    // is what stays open: the callers' own, and nothing left behind.
    let open = upstream.open.load(Ordering::SeqCst);
    assert!(
        open <= 2 * tasks,
        "{open} connections open for {tasks} callers"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_run_of_retried_http2_requests_keeps_one_connection() {
    let (tasks, per_task) = (4, 100);
    let (upstream, counted) = within_ten_minutes(long_run(Version::HTTP_2, tasks, per_task)).await;
    assert_eq!(
        counted.count("retry_requests", ""),
        (tasks * per_task) as u64
    );
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.open.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_peeking_retry_layers_refused_retry_hands_on_the_head_and_the_trailers_it_read() {
    // An ordinary head, then trailers with `UNAVAILABLE`, read for the
    // decision; the retry is refused, and the caller gets both.
    static UNAVAILABLE: [grpc_upstream::Answer; 1] = [grpc_upstream::Answer::Trailers("14")];
    let upstream = grpc_upstream::upstream(&UNAVAILABLE, true).await;
    let counted = Counted::new();
    let budget = budget();
    let svc = RetryLayer::new(grpc_upstream::grpc_route(), budget.clone())
        .with_metrics(counted.metrics.clone())
        .peek_grpc_trailers(Some(Duration::from_secs(10)))
        .layer(Endpoints::gone());
    let res = svc
        .oneshot(grpc_upstream::call(&upstream, true))
        .await
        .expect("the upstream's answer");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    grpc_upstream::assert_the_trailers_read(res, "14").await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(budget.balance(), ONE_REQUEST, "given back once");
    assert_only(&counted, Some("unavailable"));
}
