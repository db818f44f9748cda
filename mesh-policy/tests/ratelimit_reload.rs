//! A reload that leaves a rate limit's settings alone does not refill it,
//! on tokio's paused clock: otherwise every policy edit would let each
//! client burst again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use http::Request;
use mesh_core::Identity;
use mesh_policy::{
    Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    RateLimitScope, Workload,
};
use support::ratelimit::limited;
use tokio::time::advance;

/// A change that touches no limit: another Server, on another port.
const UNRELATED: &str = "---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: admin}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 9990
  accessPolicy: deny
";

const ALICE: &str = "spiffe://cluster.local/ns/shop/sa/alice";
const BOB: &str = "spiffe://cluster.local/ns/shop/sa/bob";
const CAROL: &str = "spiffe://cluster.local/ns/shop/sa/carol";
const VIP: &str = "spiffe://cluster.local/ns/shop/sa/vip";

fn store(policy: &str) -> PolicyStore {
    let store = PolicyStore::new(
        Workload::new("shop").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    reload(&store, policy);
    store
}

fn reload(store: &PolicyStore, policy: &str) {
    store
        .reload(&[PolicySource::new("policy.yaml", policy)])
        .unwrap();
}

/// Sends `n` requests of `client` (an identity, or `None` for plaintext)
/// to `policy`'s port 8080: how many got through, and the scope that
/// refused the others.
fn burst(policy: &Policy, client: Option<&str>, n: usize) -> (usize, Option<RateLimitScope>) {
    let id = client.map(|c| Identity::parse(c).unwrap());
    let client = Client {
        tls: id.as_ref().map_or(ClientTls::Plaintext, ClientTls::Mutual),
        addr: Some("10.0.0.2".parse().unwrap()),
    };
    let req = Request::get("/").body(()).unwrap();
    let (mut ok, mut refused) = (0, None);
    for _ in 0..n {
        let Decision::Allow(allowed) = policy.evaluate(8080, &client, &req) else {
            panic!("the request is not allowed");
        };
        match allowed.check_rate_limit(&client) {
            Ok(()) => ok += 1,
            Err(limited) => refused = Some(limited.scope()),
        }
    }
    (ok, refused)
}

#[tokio::test(start_paused = true)]
async fn a_used_up_total_limit_stays_used_up_across_an_unrelated_reload() {
    let total = limited("  total: {requestsPerSecond: 5}\n");
    let store = store(&total);
    assert_eq!(burst(&store.load(), None, 5), (5, None));

    reload(&store, &format!("{total}{UNRELATED}"));
    assert_eq!(
        burst(&store.load(), Some(ALICE), 1),
        (0, Some(RateLimitScope::Total))
    );
    // It refills on its old clock: one request per 1/5 s.
    advance(Duration::from_millis(200)).await;
    assert_eq!(
        burst(&store.load(), None, 2),
        (1, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_rate_starts_the_limit_afresh_at_the_new_rate() {
    let store = store(&limited("  total: {requestsPerSecond: 2}\n"));
    assert_eq!(burst(&store.load(), None, 2), (2, None));

    reload(&store, &limited("  total: {requestsPerSecond: 4}\n"));
    assert_eq!(
        burst(&store.load(), None, 5),
        (4, Some(RateLimitScope::Total))
    );
    // Going back to the old rate is a change too, and the new limit is
    // not the one used up before.
    reload(&store, &limited("  total: {requestsPerSecond: 2}\n"));
    assert_eq!(
        burst(&store.load(), None, 3),
        (2, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn each_identitys_limit_carries_over_and_new_identities_start_full() {
    let per_identity = limited("  identity: {requestsPerSecond: 2}\n");
    let store = store(&per_identity);
    assert_eq!(burst(&store.load(), Some(ALICE), 2), (2, None));
    assert_eq!(burst(&store.load(), Some(BOB), 1), (1, None));
    assert_eq!(burst(&store.load(), None, 2), (2, None));

    reload(&store, &format!("{per_identity}{UNRELATED}"));
    let identity = Some(RateLimitScope::Identity);
    assert_eq!(burst(&store.load(), Some(ALICE), 1), (0, identity));
    assert_eq!(burst(&store.load(), Some(BOB), 2), (1, identity));
    assert_eq!(
        burst(&store.load(), None, 1),
        (0, identity),
        "clients without an identity share theirs across the reload too"
    );
    assert_eq!(burst(&store.load(), Some(CAROL), 3), (2, identity));
}

#[tokio::test(start_paused = true)]
async fn a_changed_identity_rate_refills_only_the_identity_limits() {
    let store = store(&limited(
        "  total: {requestsPerSecond: 3}\n  identity: {requestsPerSecond: 1}\n",
    ));
    assert_eq!(burst(&store.load(), Some(ALICE), 1), (1, None));
    assert_eq!(burst(&store.load(), Some(BOB), 1), (1, None));
    assert_eq!(
        burst(&store.load(), Some(BOB), 1),
        (0, Some(RateLimitScope::Identity))
    );

    reload(
        &store,
        &limited("  total: {requestsPerSecond: 3}\n  identity: {requestsPerSecond: 2}\n"),
    );
    // Alice's limit is fresh at 2, but the unchanged total has room for
    // nothing more: its three were used before the reload.
    assert_eq!(
        burst(&store.load(), Some(ALICE), 1),
        (0, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn an_override_carries_over_while_it_names_the_same_clients_at_the_same_rate() {
    let entry = |rps: u32, names: &str| {
        limited(&format!(
            "  overrides:\n    - requestsPerSecond: {rps}\n      clientRefs: [{names}]\n"
        ))
    };
    let vip = "{kind: ServiceAccount, name: vip}";
    let alice = "{kind: ServiceAccount, name: alice}";
    let store = store(&entry(2, &format!("{vip}, {alice}")));
    assert_eq!(burst(&store.load(), Some(VIP), 2), (2, None));

    // The same clients, written in another order.
    reload(&store, &entry(2, &format!("{alice}, {vip}")));
    let over = Some(RateLimitScope::Override);
    assert_eq!(burst(&store.load(), Some(ALICE), 1), (0, over));

    // Other clients: a new limit.
    reload(&store, &entry(2, vip));
    assert_eq!(burst(&store.load(), Some(VIP), 3), (2, over));
    // Another rate: a new limit.
    reload(&store, &entry(3, vip));
    assert_eq!(burst(&store.load(), Some(VIP), 4), (3, over));
}

#[tokio::test(start_paused = true)]
async fn requests_still_deciding_on_the_old_policy_count_against_the_new_one() {
    let total = limited("  total: {requestsPerSecond: 3}\n");
    let store = store(&total);
    let old = store.current();
    reload(&store, &format!("{total}{UNRELATED}"));
    // A request that loaded the old policy before the reload.
    assert_eq!(burst(&old, None, 2), (2, None));
    assert_eq!(
        burst(&store.load(), None, 2),
        (1, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_compiled_outside_the_store_and_swapped_in_carries_over_too() {
    let total = limited("  total: {requestsPerSecond: 2}\n");
    let store = store(&total);
    assert_eq!(burst(&store.load(), None, 2), (2, None));
    let compiled = store
        .compile(&[PolicySource::new("policy.yaml", &total)])
        .unwrap();
    store.swap(compiled.policy);
    assert_eq!(
        burst(&store.load(), None, 1),
        (0, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn a_limit_moved_to_another_server_starts_afresh() {
    let store = store(&limited("  total: {requestsPerSecond: 2}\n"));
    assert_eq!(burst(&store.load(), None, 2), (2, None));
    // The Server on port 8080 is now `web-v2`: another Server.
    let renamed = limited("  total: {requestsPerSecond: 2}\n")
        .replace("name: web}", "name: web-v2}")
        .replace("metadata: {name: web}", "metadata: {name: web-v2}");
    reload(&store, &renamed);
    assert_eq!(
        burst(&store.load(), None, 3),
        (2, Some(RateLimitScope::Total))
    );
}

#[tokio::test(start_paused = true)]
async fn a_renamed_policy_and_reordered_overrides_keep_their_limits_state() {
    /// A policy named `name` with one override per `(rps, clientRefs)`.
    fn overrides(name: &str, entries: [(u32, &str); 2]) -> String {
        let mut spec = "  overrides:\n".to_owned();
        for (rps, refs) in entries {
            spec += &format!("    - requestsPerSecond: {rps}\n      clientRefs: [{refs}]\n");
        }
        limited(&spec).replace("name: web-limit", &format!("name: {name}"))
    }
    let (vip, alice) = (
        "{kind: ServiceAccount, name: vip}",
        "{kind: ServiceAccount, name: alice}",
    );
    let store = store(&overrides("web-limit", [(2, vip), (3, alice)]));
    assert_eq!(burst(&store.load(), Some(VIP), 2), (2, None));
    assert_eq!(burst(&store.load(), Some(ALICE), 3), (3, None));

    // The entries swap places and the policy has a new name: the limits
    // are still the same Server's, at the same rates, for the same
    // clients.
    reload(&store, &overrides("web-limit-v2", [(3, alice), (2, vip)]));
    let over = Some(RateLimitScope::Override);
    assert_eq!(burst(&store.load(), Some(VIP), 1), (0, over));
    assert_eq!(burst(&store.load(), Some(ALICE), 1), (0, over));
}
