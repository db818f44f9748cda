//! Reloads that overlap: the policy in force is the newest, whatever order
//! they finish in.

use super::PolicyStore;
use crate::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

fn server_at(port: u16) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web}}
spec:
  podSelector: {{}}
  port: {port}
"
    )
}

fn store() -> PolicyStore {
    PolicyStore::new(
        Workload::new("default"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    )
}

fn ports(store: &PolicyStore) -> Vec<u16> {
    store
        .load()
        .covered_ports()
        .map(|(port, ..)| port)
        .collect()
}

#[test]
fn an_older_reload_that_finishes_last_does_not_replace_a_newer_one() {
    let store = store();
    let (old, new) = (server_at(80), server_at(81));
    // Two reloads start, the file watcher's with the old text and an
    // explicit one with the new; the old text is compiled slower, so the
    // new one is put in force first.
    let older = store.stage(&[PolicySource::new("p.yaml", &old)]).unwrap();
    let newer = store.stage(&[PolicySource::new("p.yaml", &new)]).unwrap();
    let mut changes = store.subscribe();
    store.put_in_force(newer);
    assert_eq!(ports(&store), [81]);
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();

    store.put_in_force(older);
    assert_eq!(ports(&store), [81], "the older text replaced the newer");
    assert!(!changes.has_changed().unwrap());
}

#[test]
fn an_older_reload_does_not_replace_a_policy_swapped_in_since() {
    let store = store();
    let older = store
        .stage(&[PolicySource::new("p.yaml", &server_at(80))])
        .unwrap();
    let swapped = Policy::compile(
        &[PolicySource::new("p.yaml", &server_at(82))],
        store.workload(),
        store.config(),
        store.metrics(),
    )
    .unwrap()
    .policy;
    store.swap(swapped);
    store.put_in_force(older);
    assert_eq!(ports(&store), [82]);
}

#[test]
fn an_older_reload_still_replaces_what_a_newer_failed_one_left() {
    // In order, the older text would be put in force and the newer, bad
    // one refused, leaving the older: so too when they overlap.
    let store = store();
    let older = store
        .stage(&[PolicySource::new("p.yaml", &server_at(80))])
        .unwrap();
    store
        .reload(&[PolicySource::new("p.yaml", "kind: Server\n")])
        .unwrap_err();
    store.put_in_force(older);
    assert_eq!(ports(&store), [80]);
}

#[test]
fn reloads_in_order_each_replace_the_last() {
    let store = store();
    for port in [80, 81, 80] {
        store
            .reload(&[PolicySource::new("p.yaml", &server_at(port))])
            .unwrap();
        assert_eq!(ports(&store), [port]);
    }
}
