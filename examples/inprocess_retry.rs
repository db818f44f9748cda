//! Retries inside a Rust client, with one budget shared by two services.
//!
//! A local backend serves two paths: `/catalog` fails every other request
//! with 503, and `/reviews` always fails (an outage). The client calls each
//! as its own service, through mesh-core's pooled client and mesh-retry's
//! route stack: a request timeout, retries within a budget, a per-try
//! timeout.
//! Both services draw on **one** budget, so together they add at most a
//! fifth of their requests in retries (plus a small reserve), however long
//! the outage lasts.
//!
//! ```text
//! cargo run --example inprocess_retry
//! ```
//!
//! It prints what each service's callers got, how many attempts reached the
//! backend, the retry metrics, and the budget's balance. While the budget
//! lasts, retries hide most of `catalog`'s failures; once the outage of
//! `reviews` has spent it, failures are no longer retried, and callers get
//! the backend's real 503 (`retry_budget_exhausted_total` says so):
//!
//! ```text
//! catalog: 40 requests, 25 succeeded, 15 got the backend's 503; 50 attempts reached the backend (1.25x)
//! reviews: 40 requests, 0 succeeded, 40 got the backend's 503; 56 attempts reached the backend (1.40x)
//!
//! retry metrics:
//!   retry_requests_total{service="catalog",route="default"} 10
//!   retry_requests_total{service="reviews",route="default"} 16
//!   retry_successes_total{service="catalog",route="default"} 10
//!   retry_limit_exceeded_total{service="reviews",route="default"} 3
//!   retry_budget_exhausted_total{service="reviews",route="default"} 37
//!   retry_budget_exhausted_total{service="catalog",route="default"} 15
//!   ...
//!
//! budget balance now: 0.0 retries
//! 26 retries in all; the shared budget allows 26: a reserve of 10, plus 20 % of the 80 requests
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, empty},
    client::{Client, ClientConfig},
};
use mesh_retry::{
    Budget, BudgetConfig, RetryMetrics, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneService};

type Caller = BoxCloneService<Request<BoxBody>, Response<BoxBody>, BoxError>;

const REQUESTS: usize = 40;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run(|addr| {
        println!(
            "flaky backend on {addr}: /catalog fails every other request, /reviews always fails\n"
        );
    })
    .await
    .print();
}

/// What the two services' callers got, what reached the backend, and what
/// the retry layer recorded.
pub(crate) struct Outcome {
    /// Per service, `catalog` then `reviews`: the requests that succeeded.
    pub(crate) succeeded: [usize; 2],
    /// Per service: the attempts that reached the backend.
    pub(crate) attempts: [usize; 2],
    /// The registry's text exposition.
    pub(crate) metrics: String,
    pub(crate) budget: Arc<Budget>,
}

/// Starts the backend (`started` is told its address), and sends
/// [`REQUESTS`] requests through each service.
pub(crate) async fn run(started: impl FnOnce(std::net::SocketAddr)) -> Outcome {
    let (addr, attempts) = flaky_backend().await;
    started(addr);

    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    // A small budget, so that the outage drains it within the demo: 20 % of
    // requests, plus a reserve of 1 retry per second over 10 seconds.
    let budget = Arc::new(Budget::new(
        BudgetConfig::new(0.2, 1, Duration::from_secs(10)).unwrap(),
    ));
    let client: Client<ReplayBody<BoxBody>> = Client::new(&ClientConfig::default());
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(5)),
        per_try: Some(Duration::from_secs(1)),
        idle: None,
    };
    let service = |name: &str| -> Caller {
        let svc = ServiceBuilder::new()
            .map_response(|res: Response<_>| res.map(mesh_core::body::boxed))
            // The request timeout, retries and the per-try timeout, in one
            // service: what `RequestTimeoutLayer`, `RetryLayer` and
            // `AttemptTimeoutLayer` do stacked in that order, at a fraction
            // of their cost per request. Those three are for a stack that
            // needs a layer between them.
            .layer(
                RouteStackLayer::new(RetryPolicy::default(), timeouts, budget.clone())
                    .with_metrics(metrics.route(name, "default")),
            )
            .map_response(|res: Response<Incoming>| res.map(Proxied::from))
            .service(client.clone());
        BoxCloneService::new(svc)
    };
    let catalog = service("catalog");
    let reviews = service("reviews");

    // The two services' callers take turns, as concurrent callers would.
    let mut succeeded = [0; 2];
    for _ in 0..REQUESTS {
        for (i, (caller, path)) in [(&catalog, "/catalog"), (&reviews, "/reviews")]
            .into_iter()
            .enumerate()
        {
            let req = Request::get(format!("http://{addr}{path}"))
                .body(empty())
                .unwrap();
            let res = caller.clone().oneshot(req).await.unwrap();
            let ok = res.status().is_success();
            res.into_body().collect().await.unwrap();
            succeeded[i] += usize::from(ok);
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    Outcome {
        succeeded,
        attempts: [
            attempts.catalog.load(Ordering::Relaxed),
            attempts.reviews.load(Ordering::Relaxed),
        ],
        metrics: text,
        budget,
    }
}

impl Outcome {
    /// The retries the two services sent together.
    pub(crate) fn retries(&self) -> usize {
        self.attempts.iter().sum::<usize>() - 2 * REQUESTS
    }

    /// The retries the shared budget allows for the requests sent: its
    /// reserve plus its ratio of them.
    pub(crate) fn allowance(&self) -> (f64, f64) {
        let config = self.budget.config();
        let reserve = config.min_retries_per_second() * config.ttl().as_secs_f64();
        (
            reserve,
            reserve + config.retry_ratio() * (2 * REQUESTS) as f64,
        )
    }

    fn print(&self) {
        for (i, name) in ["catalog", "reviews"].into_iter().enumerate() {
            let (ok, sent) = (self.succeeded[i], self.attempts[i]);
            println!(
                "{name}: {REQUESTS} requests, {ok} succeeded, {} got the backend's 503; \
                 {sent} attempts reached the backend ({:.2}x)",
                REQUESTS - ok,
                sent as f64 / REQUESTS as f64
            );
        }
        println!("\nretry metrics:");
        for line in self
            .metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
        {
            println!("  {line}");
        }
        println!("\nbudget balance now: {:.1} retries", self.budget.balance());
        let (reserve, allowed) = self.allowance();
        println!(
            "{} retries in all; the shared budget allows {allowed:.0}: a reserve of {reserve:.0}, \
             plus {:.0} % of the {} requests",
            self.retries(),
            self.budget.config().retry_ratio() * 100.0,
            2 * REQUESTS,
        );
    }
}

/// The requests the backend received, per path.
#[derive(Default)]
struct Attempts {
    catalog: AtomicUsize,
    reviews: AtomicUsize,
}

/// A backend whose `/catalog` fails every other request and whose
/// `/reviews` always fails. Returns its address and the requests it
/// received.
async fn flaky_backend() -> (std::net::SocketAddr, Arc<Attempts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Arc::new(Attempts::default());
    let counted = attempts.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let fail = match req.uri().path() {
                    "/catalog" => counted.catalog.fetch_add(1, Ordering::Relaxed) % 2 == 0,
                    _ => {
                        counted.reviews.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                };
                let mut res = Response::new(Full::new(Bytes::from_static(b"hello\n")));
                if fail {
                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, attempts)
}
