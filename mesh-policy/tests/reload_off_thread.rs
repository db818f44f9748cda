//! A watched reload is compiled on tokio's blocking pool, not on the
//! thread that polls the files: that thread serves traffic in the
//! sidecar, and megabytes of policy take seconds to compile, during which
//! every connection of its runtime would wait.
//!
//! Which thread compiled is seen through tracing: the store logs `policy
//! loaded` on the thread that compiled, and a subscriber set as this
//! thread's default sees only this thread's events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use mesh_policy::{PolicyConfig, PolicyFiles, PolicyMetrics, PolicyStore, PolicyWatcher, Workload};

/// Log lines written on this thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn the_watcher_compiles_off_the_thread_that_polls() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    // The subscriber sees what this thread logs.
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
    let text = lines.text();
    assert!(text.contains("polling thread"), "{text}");
    assert!(
        !text.contains("policy loaded"),
        "the policy was compiled on the thread that polls:\n{text}"
    );
    task.abort();
}
