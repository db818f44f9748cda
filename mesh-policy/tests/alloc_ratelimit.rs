//! Checking a Server's rate limit allocates nothing once a client's
//! identity has been seen: only an identity's first request adds an entry.
//! dhat counts every allocation of this test binary, which is why this
//! test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::Request;
use mesh_core::Identity;
use mesh_policy::{
    Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-limit}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  total: {requestsPerSecond: 1000000}
  identity: {requestsPerSecond: 10}
  overrides:
    - requestsPerSecond: 20
      clientRefs: [{kind: ServiceAccount, name: vip}]
";

#[test]
fn checking_a_known_client_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let policy = Policy::compile(
        &[PolicySource::new("policy.yaml", POLICY)],
        &Workload::new("shop").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap()
    .policy;
    let alice = Identity::parse("spiffe://cluster.local/ns/shop/sa/alice").unwrap();
    let vip = Identity::parse("spiffe://cluster.local/ns/shop/sa/vip").unwrap();
    let clients = [
        Client {
            tls: ClientTls::Mutual(&alice),
            addr: None,
        },
        Client {
            tls: ClientTls::Mutual(&vip),
            addr: None,
        },
        Client::unknown(),
    ];
    let req = Request::get("/").body(()).unwrap();
    let check = |client: &Client<'_>| {
        let decision = policy.evaluate(8080, client, &req);
        let Decision::Allow(allowed) = &decision else {
            panic!("{decision:?}")
        };
        decision.record(client.tls);
        allowed.check_rate_limit(client).is_ok()
    };
    // Alice's first request adds her entry.
    assert!(clients.iter().all(check));

    let before = dhat::HeapStats::get();
    // Admitted and refused alike: the limits are 10 and 20 a second.
    let admitted = (0..1000)
        .flat_map(|_| &clients)
        .filter(|c| check(c))
        .count();
    let after = dhat::HeapStats::get();
    assert!(admitted < 3000, "{admitted}");
    // dhat counts every thread's allocations, and the test harness's own
    // thread allocates a few times while it waits, more often on a loaded
    // machine; an allocation per check would be 3,000.
    let blocks = after.total_blocks - before.total_blocks;
    eprintln!("{blocks} allocations in 3,000 checks");
    assert!(blocks <= 10, "{blocks} allocations in 3,000 checks");
}
