//! What `MetricsLayer` adds to a request over a bare `service_fn`, measured
//! side by side in one run.
//!
//! - `baseline`: the bare service.
//! - `resolved`: the layer, inbound, with a request whose labels (TLS peer,
//!   server, route, authorization) were seen before on the same connection:
//!   the steady state. Its values are clones of the same `Arc`s request
//!   after request, as the server's connection info, the policy's decision
//!   and the route's name are.
//! - `other_connection`: the same, but the service's memo was filled by
//!   another connection from the same peer: the peer's identity is an equal
//!   string in another allocation, so it is compared by bytes.
//! - `new_label_set`: the first request of a label set never seen: the
//!   series are created and the handle caches grow.
//! - `floor`: not a request, but what any layer that measures latency and
//!   counts into shared series pays per request whatever its design, on
//!   the machine it runs on: two readings of the clock, four counter
//!   increments (`request_total`, `response_total`, a latency bucket and
//!   the latency sum) and two `Arc` clone-and-drop pairs (the service
//!   hyper clones per request, and the series handles the response
//!   outlives it with). The layer's own work is `resolved` minus
//!   `baseline` minus `floor`.
//!
//! Each request's extensions are cloned from a template in the timed loop,
//! for the baseline as for the layer, as a server inserts them fresh; the
//! timed part also reads each whole response body. Every request goes to a
//! clone of one service, as hyper clones its service per request.
//!
//! ```text
//! cargo bench -p mesh-benches --bench metrics
//! ```
//!
//! After criterion's groups, `metrics_paired` times `baseline` and
//! `resolved` in interleaved rounds, alternating which goes first, and
//! prints the median of the per-round differences: on a shared machine
//! that is steadier than two medians taken a few seconds apart.
//!
//! With `MESH_BENCH_COUNT=<n>` in the environment, the binary instead runs
//! each variant named in `MESH_BENCH_ONLY` (all by default) `n` times and
//! exits, for an instruction count that load on the machine cannot
//! disturb: run it under `valgrind --tool=callgrind` with two values of `n`
//! and divide the difference in instructions by the difference in `n`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, hint::black_box, num::NonZeroUsize, sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_benches::{Counting, median, wants_paired};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    labels::Authorized,
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsConfig, MetricsLayer};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

fn request(route: RouteId) -> Request<()> {
    let mut req = Request::get("http://emoji:8080/api/list").body(()).unwrap();
    req.extensions_mut().insert(connection(50000));
    req.extensions_mut().insert(Authorized {
        server: Arc::from("emoji-grpc"),
        server_kind: &mesh_core::labels::ResourceKind {
            group: "policy.linkerd.io",
            kind: "server",
        },
        server_port: Some(8080),
        route: Arc::from("list"),
        route_kind: Some(&mesh_core::labels::ResourceKind {
            group: "policy.linkerd.io",
            kind: "HTTPRoute",
        }),
        authz: Arc::from("web-only"),
        authz_kind: &mesh_core::labels::ResourceKind {
            group: "policy.linkerd.io",
            kind: "authorizationpolicy",
        },
        audit: false,
    });
    req.extensions_mut().insert(route);
    req
}

/// A connection from the `web` workload, its identity parsed afresh as a
/// handshake does.
fn connection(port: u16) -> ConnectionInfo {
    ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: ([127, 0, 0, 1], port).into(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/emojivoto/sa/web"
                .parse()
                .unwrap(),
        },
    }
}

/// `template` as a request on another connection from the same peer: the
/// policy's and the route's values are the same, the connection's are new.
fn on_other_connection(template: &Request<()>) -> Request<()> {
    let mut req = Request::new(());
    *req.extensions_mut() = template.extensions().clone();
    req.extensions_mut().insert(connection(50001));
    req
}

async fn app(_req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::from("ok")))
}

/// Calls `svc` `iters` times, reading each response body. Each request is
/// a copy of `template` (its extensions cloned, as a server inserts them
/// fresh), except that `route(i)` names the `i`-th one's route.
async fn timed<S, B>(
    svc: S,
    template: &Request<()>,
    iters: u64,
    route: impl Fn(u64) -> Option<RouteId>,
) -> Duration
where
    S: tower::Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let routes: Vec<_> = (0..iters).map(route).collect();
    let start = tokio::time::Instant::now();
    for route in routes {
        let mut req = Request::new(());
        *req.extensions_mut() = template.extensions().clone();
        if let Some(route) = route {
            req.extensions_mut().insert(route);
        }
        let res = svc.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    start.elapsed()
}

/// Untimed, before a variant is timed: one request like `template` (its
/// route `route`, if given) through `svc` is answered `200 ok` by `app`,
/// and `registry`, if given, then has a series of the template's labels
/// (the peer's identity, the policy's names and the route) and no
/// overflow series: the timed requests take the path of a request whose
/// labels resolve. Returns that series' count of responses.
fn check<S, B>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    template: &Request<()>,
    route: Option<&str>,
    registry: Option<&Registry>,
) -> u64
where
    S: tower::Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let mut req = Request::new(());
    *req.extensions_mut() = template.extensions().clone();
    if let Some(route) = route {
        req.extensions_mut().insert(RouteId::new(route));
    }
    let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), http::StatusCode::OK);
    let body = rt.block_on(res.into_body().collect()).unwrap().to_bytes();
    assert_eq!(body, "ok");
    let Some(registry) = registry else {
        return 0;
    };
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let route = route.unwrap_or("list");
    let series = text.lines().find(|line| {
        line.starts_with("response_total{")
            && [
                "client_id=\"spiffe://cluster.local/ns/emojivoto/sa/web\"".to_owned(),
                "srv_name=\"emoji-grpc\"".to_owned(),
                "authz_name=\"web-only\"".to_owned(),
                format!("route_name=\"{route}\""),
            ]
            .iter()
            .all(|label| line.contains(label.as_str()))
    });
    assert!(
        !text.contains("overflow=\"true\""),
        "no overflow, in:\n{text}"
    );
    series
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no series of the request's labels in:\n{text}"))
}

/// Untimed: what [`check`] checks, for each variant: `resolved` counts its
/// first request, `other_connection` adds to the same series, and
/// `new_label_set` makes a series per route.
fn check_all(rt: &tokio::runtime::Runtime, template: &Request<()>) {
    check(rt, &service_fn(app), template, None, None);
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
    assert_eq!(check(rt, &layered, template, None, Some(&registry)), 1);
    let other = on_other_connection(template);
    assert_eq!(check(rt, &layered, &other, None, Some(&registry)), 2);
    let (registry, fresh) = fresh_layer(2);
    for route in ["route-0", "route-1"] {
        assert_eq!(check(rt, &fresh, template, Some(route), Some(&registry)), 1);
    }
}

/// The primitives every request through the layer pays for: see `floor`
/// in the module docs. `n` times.
fn floor(n: u64, counters: &[Counter; 4], service: &Arc<()>, target: &Arc<()>) {
    for _ in 0..n {
        let start = black_box(tokio::time::Instant::now());
        let service = black_box(service.clone());
        let target = black_box(target.clone());
        drop(service);
        for counter in counters {
            black_box(counter).inc();
        }
        black_box(tokio::time::Instant::now().saturating_duration_since(start));
        drop(target);
    }
}

fn metrics(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("metrics");

    let template = request(RouteId::new("list"));
    let template = &template;
    check_all(&rt, template);
    let baseline = service_fn(app);
    group.bench_function("baseline", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| timed(baseline, template, iters, |_| None));
    });

    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
    group.bench_function("resolved", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| timed(layered.clone(), template, iters, |_| None));
    });

    // The memo is filled by the template's connection; the timed requests
    // come on another.
    rt.block_on(timed(layered.clone(), template, 1, |_| None));
    let other = &on_other_connection(template);
    group.bench_function("other_connection", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| timed(layered.clone(), other, iters, |_| None));
    });

    let counters: [Counter; 4] = Default::default();
    let (service, target) = (Arc::new(()), Arc::new(()));
    group.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            let start = tokio::time::Instant::now();
            floor(iters, &counters, &service, &target);
            start.elapsed()
        });
    });

    group.bench_function("new_label_set", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let (_registry, svc) = fresh_layer(iters);
            timed(svc, template, iters, |i| {
                Some(RouteId::new(format!("route-{i}")))
            })
            .await
        });
    });
    group.finish();
}

/// A layer over `app` whose families have room for `label_sets` more
/// label sets, so that none folds into the overflow series.
fn fresh_layer(
    label_sets: u64,
) -> (
    Registry,
    impl tower::Service<
        Request<()>,
        Response = Response<impl hyper::body::Body<Error = impl std::fmt::Debug>>,
        Error = impl std::fmt::Debug,
    > + Clone,
) {
    let mut registry = Registry::default();
    let limit = NonZeroUsize::new(usize::try_from(label_sets).unwrap() + 1).unwrap();
    let http = HttpMetrics::register_with(
        &mut registry,
        MetricsConfig::default().with_series_limit(limit),
    );
    let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
    (registry, layered)
}

/// Requests a variant gets per round of `metrics_paired`.
const PER_ROUND: u64 = 2_000;

/// `metrics_paired`: `ROUNDS` rounds of `PER_ROUND` requests through the
/// bare service and through the layer, the order alternating, and of the
/// `floor`; prints the medians per request and the median of the
/// per-round differences.
fn paired() {
    const ROUNDS: usize = 201;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let template = request(RouteId::new("list"));
    check_all(&rt, &template);
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
    let per_request = |d: Duration| d.as_secs_f64() * 1e9 / PER_ROUND as f64;
    let (mut bare, mut layer, mut added) = (Vec::new(), Vec::new(), Vec::new());
    let mut floors = Vec::new();
    let counters: [Counter; 4] = Default::default();
    let (service, target) = (Arc::new(()), Arc::new(()));
    rt.block_on(async {
        for round in 0..ROUNDS {
            let mut ns = [0.0; 2];
            for turn in [round % 2, (round + 1) % 2] {
                ns[turn] = per_request(if turn == 0 {
                    timed(service_fn(app), &template, PER_ROUND, |_| None).await
                } else {
                    timed(layered.clone(), &template, PER_ROUND, |_| None).await
                });
            }
            let start = tokio::time::Instant::now();
            floor(PER_ROUND, &counters, &service, &target);
            floors.push(per_request(start.elapsed()));
            bare.push(ns[0]);
            layer.push(ns[1]);
            added.push(ns[1] - ns[0]);
        }
    });
    println!(
        "metrics_paired: {ROUNDS} rounds x {PER_ROUND} requests: baseline {:.0} ns, resolved {:.0} ns, \
         added {:.0} ns (median of per-round differences); floor {:.0} ns",
        median(&mut bare),
        median(&mut layer),
        median(&mut added),
        median(&mut floors),
    );
}

/// Runs the variants named in `MESH_BENCH_ONLY` `n` times each, outside
/// criterion: see the module docs.
fn count(counting: &Counting) {
    let rt = counting.runtime();
    let n = counting.n;
    let wanted = |name: &str| counting.wants(name);
    let template = request(RouteId::new("list"));
    check_all(&rt, &template);
    if wanted("baseline") {
        rt.block_on(timed(service_fn(app), &template, n, |_| None));
    }
    if wanted("resolved") {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
        rt.block_on(timed(layered, &template, n, |_| None));
    }
    if wanted("other_connection") {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
        rt.block_on(timed(layered.clone(), &template, 1, |_| None));
        rt.block_on(timed(layered, &on_other_connection(&template), n, |_| None));
    }
    if wanted("floor") {
        floor(n, &Default::default(), &Arc::new(()), &Arc::new(()));
    }
    if wanted("new_label_set") {
        rt.block_on(timed(fresh_layer(n).1, &template, n, |i| {
            Some(RouteId::new(format!("route-{i}")))
        }));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = metrics
}

fn main() {
    if let Some(counting) = Counting::from_env() {
        count(&counting);
        return;
    }
    benches();
    if wants_paired("metrics") {
        paired();
    }
    Criterion::default().configure_from_args().final_summary();
}
