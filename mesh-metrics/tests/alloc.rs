//! What `MetricsLayer` allocates per request once its labels are resolved,
//! beyond what the same request allocates through a bare `service_fn`.
//! dhat counts every allocation of this test binary, which is why this test
//! has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    labels::Authorized,
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A request as the inbound stack hands it on: its connection, the policy
/// decision and its route, each an extension.
fn request() -> Request<()> {
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
    req.extensions_mut().insert(RouteId::new("list"));
    req
}

async fn app(_req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::from("ok")))
}

/// The allocations of one request through `call`, averaged over many,
/// after a few to warm up (resolving the labels, growing the caches).
async fn allocations<F: Future>(mut call: impl FnMut() -> F) -> f64 {
    for _ in 0..10 {
        call().await;
    }
    let n = 1000;
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..n {
        call().await;
    }
    (dhat::HeapStats::get().total_blocks - before) as f64 / f64::from(n)
}

#[tokio::test]
async fn a_request_whose_labels_are_resolved_allocates_nothing_in_the_layer() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let layered = MetricsLayer::inbound(&metrics).layer(service_fn(app));
    let bare = service_fn(app);

    let base = allocations(|| async {
        let res = bare.oneshot(request()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let measured = allocations(|| async {
        let res = layered.clone().oneshot(request()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let added = measured - base;
    println!("allocations per request: bare {base}, with MetricsLayer {measured} (+{added})");
    // Making the request allocates (its extensions): a count of none would
    // be a counter that counts nothing, under which no layer allocates.
    assert!(base >= 1.0, "dhat counted no allocation of a bare request");
    // Label handles are found in a lock-free cache by borrowed values, the
    // status in inline slots, and the recording travels inside the response
    // future and body: nothing is boxed or copied per request.
    assert!(added <= 0.0, "{added} more allocations per request");

    // Statuses beyond the inline slots are found in the target's cache,
    // still without allocating.
    let statuses = [200, 201, 202, 204, 404, 500];
    let next = Arc::new(AtomicUsize::new(0));
    let varied = MetricsLayer::inbound(&metrics).layer(service_fn(move |_req: Request<()>| {
        let status = statuses[next.fetch_add(1, Ordering::Relaxed) % statuses.len()];
        async move {
            let mut res = Response::new(Full::<Bytes>::from("ok"));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(res)
        }
    }));
    let measured = allocations(|| async {
        let res = varied.clone().oneshot(request()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    println!("six statuses in turn: {measured}");
    assert!(
        measured - base <= 0.0,
        "{} more allocations per request",
        measured - base
    );
}
