//! Hot reload: new requests see a new policy at once; a bad policy is
//! rejected whole and the last good one keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_core::resource::ResourceErrorKind;
use mesh_policy::{
    DefaultPolicy, Policy, PolicyConfig, PolicyFiles, PolicyMetrics, PolicySource, PolicyStore,
    PolicyWatcher, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{T::*, Want::*, *};

const STRICT: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
";

fn web() -> Workload {
    Workload::new("default")
}

fn at_80(store: &PolicyStore) -> Want {
    decide(&store.load(), 80, Plain, Some("10.1.2.3"), "GET", "/", &[])
}

fn reloads(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let mut lines: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("inbound_policy_reloads_total"))
        .collect();
    // Series come in no particular order.
    lines.sort_unstable();
    lines.join("\n")
}

#[test]
fn new_requests_see_a_swapped_policy_at_once() {
    let store = PolicyStore::new(web(), PolicyConfig::default(), PolicyMetrics::default());
    let mut changes = store.subscribe();
    assert_eq!(
        at_80(&store),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );

    store
        .reload(&[PolicySource::new("p.yaml", STRICT)])
        .unwrap();
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    assert_eq!(at_80(&store), Deny("web"));

    // Embedders compile and swap policies themselves.
    let config = PolicyConfig::default().with_default_policy(DefaultPolicy::Audit);
    store.swap(Policy::empty(&web(), &config, &PolicyMetrics::default()));
    assert!(changes.has_changed().unwrap());
    assert_eq!(at_80(&store), Audit("audit", "default", "audit"));
}

#[test]
fn a_bad_reload_keeps_the_old_policy_serving() {
    let mut registry = Registry::default();
    let store = PolicyStore::new(
        web(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    store
        .reload(&[PolicySource::new("p.yaml", STRICT)])
        .unwrap();
    let before = store.current();
    let changes = store.subscribe();

    // The first document is fine; the second is not: nothing is applied.
    let bad = format!(
        "{}---\nkind: Server\n",
        STRICT
            .replace("port: 80", "port: 81")
            .replace("name: web", "name: other")
    );
    let err = store
        .reload(&[PolicySource::new("p.yaml", &bad)])
        .unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::MissingField);
    assert_eq!(err.document(), Some(2));

    assert!(std::sync::Arc::ptr_eq(&before, &store.current()));
    assert!(!changes.has_changed().unwrap());
    assert_eq!(at_80(&store), Deny("web"));
    assert_eq!(
        decide(&store.load(), 81, Plain, Some("10.1.2.3"), "GET", "/", &[]),
        Allow("all-unauthenticated", "default", "all-unauthenticated"),
        "the good first document was not applied either"
    );
    assert_eq!(
        reloads(&registry),
        "inbound_policy_reloads_total{result=\"error\"} 1\ninbound_policy_reloads_total{result=\"ok\"} 1"
    );
}

#[tokio::test(start_paused = true)]
async fn the_watcher_reloads_changed_files_and_skips_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "").unwrap();
    let mut registry = Registry::default();
    let store = PolicyStore::new(
        web(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    let files = PolicyFiles::new().with_file(&path);
    let watcher = PolicyWatcher::new(store.clone(), files).with_interval(Duration::from_secs(1));
    let task = tokio::spawn(watcher.run());
    let mut changes = store.subscribe();

    // The first poll loads the (empty) file.
    changes.changed().await.unwrap();
    assert_eq!(
        at_80(&store),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );

    std::fs::write(&path, STRICT).unwrap();
    changes.changed().await.unwrap();
    assert_eq!(at_80(&store), Deny("web"));

    // A bad file is rejected once; the strict policy stays.
    std::fs::write(&path, "kind: [").unwrap();
    for _ in 0..20 {
        if reloads(&registry).contains("error") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        reloads(&registry),
        "inbound_policy_reloads_total{result=\"error\"} 1\ninbound_policy_reloads_total{result=\"ok\"} 2"
    );
    assert_eq!(at_80(&store), Deny("web"));

    // The next good contents replace it.
    std::fs::write(
        &path,
        STRICT.replace("podSelector: {}", "podSelector: {}\n  accessPolicy: audit"),
    )
    .unwrap();
    changes.changed().await.unwrap();
    assert_eq!(at_80(&store), Audit("web", "default", "audit"));

    // A file that disappears is an error too, reported once.
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        reloads(&registry).contains("result=\"error\"} 2"),
        "{}",
        reloads(&registry)
    );
    assert_eq!(at_80(&store), Audit("web", "default", "audit"));
    task.abort();
}

#[test]
fn check_reads_files_and_inline_documents_without_swapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, STRICT).unwrap();
    let files = PolicyFiles::new().with_file(&path).with_inline(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: sp}\n",
    );
    let texts = files.read_blocking().unwrap();
    let store = PolicyStore::new(web(), PolicyConfig::default(), PolicyMetrics::default());
    let compiled = store.compile(&texts.sources()).unwrap();
    assert_eq!(compiled.warnings.len(), 1);
    assert!(
        compiled
            .warnings
            .to_string()
            .starts_with("1 warning: inline[0]: document 1 (ServiceProfile sp)"),
        "{}",
        compiled.warnings
    );
    // Compiling does not put the policy in force.
    assert_eq!(
        at_80(&store),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );

    let missing = PolicyFiles::new().with_file(dir.path().join("missing.yaml"));
    let err = missing.read_blocking().unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::Io);
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_file_caught_between_its_truncation_and_its_write_is_not_put_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, STRICT).unwrap();
    let mut registry = Registry::default();
    let store = PolicyStore::new(
        web(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    let files = PolicyFiles::new().with_file(&path);
    let watcher = PolicyWatcher::new(store.clone(), files).with_interval(Duration::from_secs(1));
    let mut changes = store.subscribe();
    let task = tokio::spawn(watcher.run());
    changes.changed().await.unwrap();
    assert_eq!(at_80(&store), Deny("web"));

    // Rewritten in place: empty just before the next poll (1 s), written
    // out just after it, before the second read (1.25 s).
    tokio::time::sleep(Duration::from_millis(900)).await;
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = STRICT.replace("podSelector: {}", "podSelector: {}\n  accessPolicy: audit");
    std::fs::write(&path, &audit).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The empty file selects no Server: in force, it would have left port
    // 80 to the default policy, open to anyone.
    assert_eq!(
        at_80(&store),
        Deny("web"),
        "the empty read was put in force"
    );

    changes.changed().await.unwrap();
    assert_eq!(at_80(&store), Audit("web", "default", "audit"));
    assert_eq!(
        reloads(&registry),
        "inbound_policy_reloads_total{result=\"ok\"} 2"
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_watcher_with_a_zero_interval_polls_instead_of_panicking() {
    // `tokio::time::interval` panics on a zero period; a zero from a
    // configuration file must not take the watcher (and its policy
    // updates) down.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, STRICT).unwrap();
    let store = PolicyStore::new(web(), PolicyConfig::default(), PolicyMetrics::default());
    let files = PolicyFiles::new().with_file(&path);
    let watcher = PolicyWatcher::new(store.clone(), files).with_interval(Duration::ZERO);
    let mut changes = store.subscribe();
    let task = tokio::spawn(watcher.run());
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the watcher loads the file")
        .unwrap();
    assert_eq!(at_80(&store), Deny("web"));
    assert!(!task.is_finished());
    task.abort();
}
