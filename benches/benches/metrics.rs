//! What `MetricsLayer` adds to a request over a bare `service_fn`, measured
//! side by side in one run.
//!
//! - `baseline`: the bare service.
//! - `resolved`: the layer, inbound, with a request whose labels (TLS peer,
//!   server, route, authorization) were seen before: the steady state.
//! - `new_label_set`: the first request of a label set never seen: the
//!   series are created and the handle cache grows.
//!
//! Each request's extensions are cloned from a template in the timed loop,
//! for the baseline as for the layer, as a server inserts them fresh; the
//! timed part also reads each whole response body.
//!
//! ```text
//! cargo bench -p mesh-benches --bench metrics
//! ```
//!
//! With `MESH_BENCH_COUNT=<n>` in the environment, the binary instead runs
//! each variant named in `MESH_BENCH_ONLY` (all by default) `n` times and
//! exits, for an instruction count that load on the machine cannot
//! disturb: run it under `valgrind --tool=callgrind` with two values of `n`
//! and divide the difference in instructions by the difference in `n`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, num::NonZeroUsize, sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    labels::Authorized,
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsConfig, MetricsLayer};
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt, service_fn};

fn request(route: RouteId) -> Request<()> {
    let mut req = Request::get("http://emoji:8080/api/list").body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: "127.0.0.1:50000".parse().unwrap(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/emojivoto/sa/web"
                .parse()
                .unwrap(),
        },
    });
    req.extensions_mut().insert(Authorized {
        server: Arc::from("emoji-grpc"),
        route: Arc::from("list"),
        authz: Arc::from("web-only"),
        audit: false,
    });
    req.extensions_mut().insert(route);
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

fn metrics(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("metrics");

    let template = request(RouteId::new("list"));
    let template = &template;
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

    group.bench_function("new_label_set", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            // Room for every label set, so none folds into overflow.
            let mut registry = Registry::default();
            let limit = NonZeroUsize::new(usize::try_from(iters).unwrap() + 1).unwrap();
            let http = HttpMetrics::register_with(
                &mut registry,
                MetricsConfig::default().with_series_limit(limit),
            );
            let svc = MetricsLayer::inbound(&http).layer(service_fn(app));
            timed(svc, template, iters, |i| {
                Some(RouteId::new(format!("route-{i}")))
            })
            .await
        });
    });
    group.finish();
}

/// Runs the variants named in `MESH_BENCH_ONLY` `n` times each, outside
/// criterion: see the module docs.
fn count(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("MESH_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let template = request(RouteId::new("list"));
    if wanted("baseline") {
        rt.block_on(timed(service_fn(app), &template, n, |_| None));
    }
    if wanted("resolved") {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let layered = MetricsLayer::inbound(&http).layer(service_fn(app));
        rt.block_on(timed(layered, &template, n, |_| None));
    }
    if wanted("new_label_set") {
        let mut registry = Registry::default();
        let limit = NonZeroUsize::new(usize::try_from(n).unwrap() + 1).unwrap();
        let http = HttpMetrics::register_with(
            &mut registry,
            MetricsConfig::default().with_series_limit(limit),
        );
        let svc = MetricsLayer::inbound(&http).layer(service_fn(app));
        rt.block_on(timed(svc, &template, n, |i| {
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
    if let Some(n) = std::env::var("MESH_BENCH_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        count(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
