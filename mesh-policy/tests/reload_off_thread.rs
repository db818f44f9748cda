//! A watched reload is compiled on tokio's blocking pool, not on the
//! thread that polls the files: that thread serves traffic in the
//! sidecar, and megabytes of policy take seconds to compile, during which
//! every connection of its runtime would wait.
//!
//! Which thread compiled is seen through tracing: the store logs `policy
//! loaded` on the thread that compiled, and a capture sees only the
//! events of its own thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture::Logs;

use std::time::Duration;

use mesh_policy::{PolicyConfig, PolicyFiles, PolicyMetrics, PolicyStore, PolicyWatcher, Workload};

#[tokio::test(start_paused = true)]
async fn the_watcher_compiles_off_the_thread_that_polls() {
    let (logs, _guard) = Logs::capture();
    // The capture sees what this thread logs.
    tracing::info!("polling thread");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\n\
         metadata: {name: web}\nspec:\n  podSelector: {}\n  port: 80\n",
    )
    .unwrap();
    let store = PolicyStore::new(
        Workload::new("default"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    let mut changes = store.subscribe();
    let watcher = PolicyWatcher::new(store.clone(), PolicyFiles::new().with_file(&path))
        .with_interval(Duration::from_secs(1));
    let task = tokio::spawn(watcher.run());

    changes.changed().await.unwrap();
    assert_eq!(logs.find("polling thread").len(), 1);
    let loaded = logs.find("policy loaded");
    assert!(
        loaded.is_empty(),
        "the policy was compiled on the thread that polls: {loaded:?}"
    );
    task.abort();
}
