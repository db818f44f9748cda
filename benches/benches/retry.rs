//! The cost of retries when nothing fails. The budget's own operations
//! are measured in `budget.rs`.
//!
//! - `retry/baseline_*`: a bare `service_fn` that reads the request body and
//!   answers 200.
//! - `retry/stack_*`: the same `service_fn` under the route stack the
//!   sidecar builds (`RouteRetryPolicy::layer`: the fused `RouteStack`, which
//!   does the request timeout, the retries and the per-try timeout in one
//!   service), with both timeouts set (10 s and 2 s) and the default retry
//!   policy and budget. No request fails, so no retry happens: this is the
//!   price every request pays.
//! - `retry/layers_*`: the same three as separate layers, composed by hand
//!   (`RequestTimeoutLayer`, `RetryLayer`, `AttemptTimeoutLayer`), as the
//!   route stack was before it was fused.
//! - `_empty` sends no body; `_small` sends 64 bytes, which the retry layer
//!   records for replay.
//! - `retry/retry_layer_*`: `RetryLayer` alone over the same `service_fn`;
//!   `retry/timeouts_*`: `RequestTimeoutLayer` and `AttemptTimeoutLayer`
//!   alone over the bare one. Each part of `layers_*`, on its own.
//! - `retry/added_by_stack_*`: the stack's extra time per request over the
//!   baseline, both measured in alternating blocks of 32 requests, so that
//!   load from elsewhere on the machine falls on both alike. This is the
//!   figure to compare with the 300 ns target.
//!
//! Every variant builds the same request (three headers) and reads the
//! whole response body. Before any timing, one request of each body goes
//! through each service and must come back `200` having deposited in its
//! budget and withdrawn nothing: the timed requests take the path without
//! a retry, and no layer answers in the upstream's place.
//!
//! ```text
//! cargo bench -p mesh-benches --bench retry
//! ```
//!
//! With `MESH_BENCH_COUNT=<n>` in the environment, the binary instead runs
//! each variant named in `MESH_BENCH_ONLY` (`baseline_empty`,
//! `stack_empty`, `layers_empty`, `retry_layer_empty`, `timeouts_empty`,
//! and the same with `_small`; all by default) `n` times and exits, for an
//! instruction count that load on the machine cannot disturb: run it under
//! `valgrind --tool=callgrind` with two values of `n` and divide the
//! difference in instructions by the difference in `n`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, hint::black_box, sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_benches::Counting;
use mesh_core::{RouteMatch, body::Proxied};
use mesh_retry::{
    AttemptTimeoutLayer, Budget, RequestTimeoutLayer, RetryLayer, RetryPolicy, RouteRetryPolicy,
    Timeouts, timeout::TimeoutBody,
};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const SMALL: &[u8] = &[b'x'; 64];

/// A request as the server hands it on: a few headers, whose values share
/// the buffer they were read into (here, static ones), and a body.
fn request(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::get("http://emoji:8080/api/list")
        .header("host", HeaderValue::from_static("emoji:8080"))
        .header("user-agent", HeaderValue::from_static("bench/1.0"))
        .header("accept", HeaderValue::from_static("*/*"))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// The three layers composed by hand, as the route stack was before it
/// was fused: request timeout (not writing the deadline header, which the
/// per-try timeout writes), retry, per-try timeout.
fn layers<S>(timeouts: Timeouts, budget: Arc<Budget>, inner: S) -> impl Layered + Clone
where
    S: tower::Service<
            Request<mesh_retry::replay::ReplayBody<Full<Bytes>>>,
            Response = Response<Proxied<Full<Bytes>>>,
            Error = Infallible,
        > + Clone,
{
    RequestTimeoutLayer::new(timeouts)
        .with_propagation(false)
        .layer(
            RetryLayer::new(RetryPolicy::default(), budget)
                .layer(AttemptTimeoutLayer::new(timeouts).layer(inner)),
        )
}

/// What the benches need of a stack: a service from a request to a response
/// whose body can be read.
trait Layered:
    tower::Service<
        Request<Full<Bytes>>,
        Response = Response<TimeoutBody<Proxied<Full<Bytes>>>>,
        Error = mesh_core::BoxError,
    >
{
}

impl<S> Layered for S where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<TimeoutBody<Proxied<Full<Bytes>>>>,
            Error = mesh_core::BoxError,
        >
{
}

/// The route the sidecar builds by default, with a request timeout of 10 s
/// and a per-try timeout of 2 s: request timeout, retry, per-try timeout.
fn route() -> RouteRetryPolicy {
    RouteRetryPolicy {
        name: "list".into(),
        matches: vec![RouteMatch::new()],
        retry: RetryPolicy::default(),
        timeouts: Timeouts {
            request: Some(Duration::from_secs(10)),
            per_try: Some(Duration::from_secs(2)),
            idle: None,
        },
        backends: Vec::new(),
        request_headers: Default::default(),
        response_headers: Default::default(),
    }
}

/// Reads the request body, as an upstream receiving it would, and answers
/// 200 with an empty body.
async fn read_and_answer<B>(req: Request<B>) -> Result<Response<Proxied<Full<Bytes>>>, Infallible>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    black_box(req.into_body().collect().await.unwrap().to_bytes());
    Ok(Response::new(Proxied::default()))
}

/// One request with `body` through `svc`, its response read to the end.
async fn call<S, RB>(svc: S, body: &'static [u8]) -> StatusCode
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: hyper::body::Body,
    RB::Error: std::fmt::Debug,
{
    let res = svc.oneshot(request(body)).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

/// Untimed, before any variant runs: a request of each body through
/// `svc` is answered `200`, the upstream's answer, and, with `budget`, was
/// deposited in it (a fifth of a retry) with no retry withdrawn.
async fn check<S, RB>(name: &str, svc: &S, budget: Option<&Budget>)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone,
    S::Error: std::fmt::Debug,
    RB: hyper::body::Body,
    RB::Error: std::fmt::Debug,
{
    for body in [&[][..], SMALL] {
        let before = budget.map(Budget::balance);
        let status = call(svc.clone(), body).await;
        assert_eq!(status, StatusCode::OK, "{name}: the upstream's 200");
        if let (Some(budget), Some(before)) = (budget, before) {
            let added = budget.balance() - before;
            assert!(
                (added - 0.2).abs() < 1e-9,
                "{name}: one deposit and no retry, but the balance moved by {added}"
            );
        }
    }
}

/// Builds the services every variant times, each retrying one with a
/// budget of its own, checks them (see [`check`]), and binds them to the
/// given names.
macro_rules! services {
    ($rt:expr => $baseline:ident, $stack:ident, $layers:ident, $retry_only:ident, $timeouts_only:ident) => {
        let $baseline = service_fn(read_and_answer::<Full<Bytes>>);
        let upstream = service_fn(read_and_answer::<mesh_retry::replay::ReplayBody<Full<Bytes>>>);
        let route = route();
        let timeouts = route.timeouts;
        let budgets: [Arc<Budget>; 3] = Default::default();
        let $stack = route.layer(Arc::clone(&budgets[0])).layer(upstream);
        let $layers = layers(timeouts, Arc::clone(&budgets[1]), upstream);
        let $retry_only =
            RetryLayer::new(RetryPolicy::default(), Arc::clone(&budgets[2])).layer(upstream);
        let $timeouts_only = RequestTimeoutLayer::new(timeouts)
            .with_propagation(false)
            .layer(AttemptTimeoutLayer::new(timeouts).layer($baseline));
        $rt.block_on(async {
            check("baseline", &$baseline, None).await;
            check("stack", &$stack, Some(&budgets[0])).await;
            check("layers", &$layers, Some(&budgets[1])).await;
            check("retry_layer", &$retry_only, Some(&budgets[2])).await;
            check("timeouts", &$timeouts_only, None).await;
        });
    };
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    services!(rt => baseline, layered, hand_made, retry_only, timeouts_only);

    let mut group = c.benchmark_group("retry");
    for (name, body) in [("empty", &[][..]), ("small", SMALL)] {
        group.bench_function(format!("baseline_{name}"), |b| {
            b.to_async(&rt).iter(|| async move {
                let res = baseline.oneshot(request(body)).await.unwrap();
                res.into_body().collect().await.unwrap()
            });
        });
        group.bench_function(format!("retry_layer_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = retry_only.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap()
                }
            });
        });
        group.bench_function(format!("timeouts_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = timeouts_only.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap()
                }
            });
        });
        group.bench_function(format!("stack_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = layered.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    // Reading the (empty) response body is part of the cost:
                    // the request deadline wraps it.
                    res.into_body().collect().await.unwrap()
                }
            });
        });
        group.bench_function(format!("layers_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = hand_made.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap()
                }
            });
        });
        // The figure to trust on a noisy machine: the stack and the baseline
        // measured in alternating blocks, so that load that comes and goes
        // falls on both alike; the time reported is the stack's extra time
        // per request.
        group.bench_function(format!("added_by_stack_{name}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(added(
                    iters,
                    || async move {
                        let res = baseline.oneshot(request(body)).await.unwrap();
                        res.into_body().collect().await.unwrap();
                    },
                    || {
                        let svc = layered.clone();
                        async move {
                            let res = svc.oneshot(request(body)).await.unwrap();
                            res.into_body().collect().await.unwrap();
                        }
                    },
                ))
            });
        });
    }
    group.finish();
}

/// Runs `iters` calls of `baseline` and of `measured`, in alternating
/// blocks, and returns the time `measured` took beyond `baseline`.
async fn added<FA, FB>(
    iters: u64,
    mut baseline: impl FnMut() -> FA,
    mut measured: impl FnMut() -> FB,
) -> Duration
where
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
{
    const BLOCK: u64 = 32;
    let (mut base, mut total) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    let mut flip = false;
    while done < iters {
        let n = BLOCK.min(iters - done);
        for first in [flip, !flip] {
            let start = Instant::now();
            for _ in 0..n {
                if first {
                    baseline().await;
                } else {
                    measured().await;
                }
            }
            if first {
                base += start.elapsed();
            } else {
                total += start.elapsed();
            }
        }
        flip = !flip;
        done += n;
    }
    // A sample in which noise made the stack look faster than the baseline
    // counts as (almost) free; criterion refuses a zero.
    total.saturating_sub(base).max(Duration::from_nanos(1))
}

/// Runs the variants named in `MESH_BENCH_ONLY` `n` times each, outside
/// criterion: see the module docs.
fn count(counting: &Counting) {
    let rt = counting.runtime();
    let n = counting.n;
    let wanted = |name: &str| counting.wants(name);
    services!(rt => baseline, layered, hand_made, retry_only, timeouts_only);
    for (name, body) in [("empty", &[][..]), ("small", SMALL)] {
        if wanted(&format!("baseline_{name}")) {
            rt.block_on(async {
                for _ in 0..n {
                    let res = baseline.oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            });
        }
        if wanted(&format!("retry_layer_{name}")) {
            rt.block_on(async {
                for _ in 0..n {
                    let res = retry_only.clone().oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            });
        }
        if wanted(&format!("timeouts_{name}")) {
            rt.block_on(async {
                for _ in 0..n {
                    let res = timeouts_only.clone().oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            });
        }
        if wanted(&format!("stack_{name}")) {
            rt.block_on(async {
                for _ in 0..n {
                    let res = layered.clone().oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            });
        }
        if wanted(&format!("layers_{name}")) {
            rt.block_on(async {
                for _ in 0..n {
                    let res = hand_made.clone().oneshot(request(body)).await.unwrap();
                    res.into_body().collect().await.unwrap();
                }
            });
        }
    }
}

criterion_group!(benches, stack);

fn main() {
    if let Some(counting) = Counting::from_env() {
        count(&counting);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
