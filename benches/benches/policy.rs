//! Authorization at scale: one request evaluated against a policy of 50
//! Servers, 100 AuthorizationPolicies and 200 HTTPRoute rules, on the allow
//! path; and the `Authorize` layer over a bare `service_fn`, measured in
//! the same run. That the allow path allocates nothing is counted with
//! dhat, and asserted, in `mesh-policy/tests/alloc.rs`, which evaluates the
//! same request against the same policy (`cargo test -p mesh-policy --test
//! alloc`); a counting allocator here would slow every bench.
//!
//! ```text
//! cargo bench -p mesh-benches --bench policy
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../mesh-policy/tests/support/scale.rs"]
mod scale;

use std::{convert::Infallible, hint::black_box, net::SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use mesh_core::{ConnectionInfo, Identity, Tls};
use mesh_policy::{
    AuthorizeLayer, Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource,
    PolicyStore, Workload,
};
use tower::{Layer, ServiceExt, service_fn};

fn workload() -> Workload {
    Workload::new(scale::NAMESPACE).with_label(scale::LABEL.0, scale::LABEL.1)
}

fn compile() -> Policy {
    let text = scale::scale_policy();
    Policy::compile(
        &[PolicySource::new("scale.yaml", &text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap()
    .policy
}

fn evaluate(c: &mut Criterion) {
    let policy = compile();
    let id = Identity::parse(scale::CLIENT_ID).unwrap();
    let client = Client {
        tls: ClientTls::Mutual(&id),
        addr: Some(scale::CLIENT_IP.parse().unwrap()),
    };
    let req = Request::get(scale::LAST_PATH).body(()).unwrap();
    // Untimed: the request takes the path the bench claims, allowed by the
    // last Server's own policy after the route's has refused its identity.
    match policy.evaluate(scale::LAST_PORT, &client, &req) {
        Decision::Allow(allowed) => assert_eq!(
            (allowed.server(), allowed.authz()),
            ("s49", "s49-server-policy"),
            "allowed by the Server's NetworkAuthentication"
        ),
        other => panic!("the request is not allowed: {other:?}"),
    }

    let mut group = c.benchmark_group("policy");
    group.bench_function("evaluate_allow", |b| {
        b.iter(|| {
            let decision = policy.evaluate(
                black_box(scale::LAST_PORT),
                black_box(&client),
                black_box(&req),
            );
            decision.record(client.tls);
            black_box(decision.is_allowed())
        });
    });
    group.bench_function("compile", |b| {
        let text = scale::scale_policy();
        let workload = workload();
        let metrics = PolicyMetrics::default();
        b.iter(|| {
            Policy::compile(
                &[PolicySource::new("scale.yaml", &text)],
                &workload,
                &PolicyConfig::default(),
                &metrics,
            )
            .unwrap()
        });
    });
    group.finish();
}

fn request() -> Request<()> {
    let mut req = Request::get(scale::LAST_PATH).body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: SocketAddr::from(([10, 0, 0, 1], scale::LAST_PORT)),
        remote_addr: SocketAddr::from(([10, 1, 2, 3], 40000)),
        tls: Tls::Mutual {
            peer: Identity::parse(scale::CLIENT_ID).unwrap(),
        },
    });
    req
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store.swap(compile());
    let baseline = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let authorized = AuthorizeLayer::new(store).layer(baseline);
    // Untimed: the layer lets the request through to the service, rather
    // than answering it itself (403, 404).
    rt.block_on(async {
        for status in [
            baseline.oneshot(request()).await.unwrap().status(),
            authorized
                .clone()
                .oneshot(request())
                .await
                .unwrap()
                .status(),
        ] {
            assert_eq!(status, http::StatusCode::OK);
        }
    });

    let mut group = c.benchmark_group("policy");
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| baseline.oneshot(request()));
    });
    group.bench_function("authorize_layer", |b| {
        b.to_async(&rt)
            .iter(|| authorized.clone().oneshot(request()));
    });
    group.finish();
}

criterion_group!(benches, evaluate, layer);
criterion_main!(benches);
