//! Evaluating a request on the allow path allocates nothing, at the scale
//! of the `policy` bench. dhat counts every allocation of this test binary,
//! which is why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scale.rs"]
mod scale;

use std::net::IpAddr;

use http::Request;
use mesh_core::Identity;
use mesh_policy::{
    Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn the_allow_path_does_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let workload = Workload::new(scale::NAMESPACE).with_label(scale::LABEL.0, scale::LABEL.1);
    let text = scale::scale_policy();
    let compiled = Policy::compile(
        &[PolicySource::new("scale.yaml", &text)],
        &workload,
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    assert_eq!(compiled.policy.covered_ports().count(), 50);
    let policy = compiled.policy;
    let id = Identity::parse(scale::CLIENT_ID).unwrap();
    let client = Client {
        tls: ClientTls::Mutual(&id),
        addr: Some(scale::CLIENT_IP.parse::<IpAddr>().unwrap()),
    };
    let req = Request::get(scale::LAST_PATH).body(()).unwrap();

    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        let decision = policy.evaluate(scale::LAST_PORT, &client, &req);
        let Decision::Allow(allowed) = &decision else {
            panic!("{decision:?}")
        };
        assert_eq!(allowed.authz(), "s49-server-policy");
        decision.record(client.tls);
    }
    let after = dhat::HeapStats::get();
    let allocations = after.total_blocks - before.total_blocks;
    dhat::assert_eq!(allocations, 0);
}
