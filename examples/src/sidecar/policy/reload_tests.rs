//! Reads asked for ([`Reload`], SIGHUP): at once, whatever the interval,
//! also while a change found by polling settles, and with the rules of a
//! polled change. The watchers poll every hour: within a test, only an
//! ask reads the files.

use std::time::Duration;

use prometheus_client::{encoding::text::encode, registry::Registry};

use super::{Reload, tests::watcher};

/// A route of `emoji` with a request timeout of `timeout`.
fn route(timeout: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: emoji-api}}
spec:
  parentRefs: [{{kind: Service, name: emoji}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    timeouts: {{request: {timeout}}}
"
    )
}

/// The `outbound_route_reloads_total` samples of `registry`, and
/// `policy_last_reload_successful`, one a line.
fn reloads(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let mut lines: Vec<_> = text
        .lines()
        .filter(|l| {
            l.starts_with("outbound_route_reloads_total") || l.starts_with("policy_last_reload")
        })
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// How long an outcome may take to be logged: the bound of a hang, not a
/// measure of speed. It is well short of the quarter of the watchers'
/// hour a change found by polling waits before it is read again.
const HANG: Duration = Duration::from_secs(60);

/// This thread's log lines, as they are written: the watchers here run on
/// the test's one thread, and log each ask's outcome there.
struct Log {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    _default: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct Sender(tokio::sync::mpsc::UnboundedSender<String>);

impl std::io::Write for Sender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(bytes).into_owned());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn capture() -> Self {
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let sender = Sender(sender);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sender.clone())
            .finish();
        Self {
            lines,
            _default: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The next line that ends an ask (`..., as asked...`).
    async fn outcome(&mut self) -> String {
        self.wait_for("as asked").await
    }

    /// The next line that holds `needle`.
    async fn wait_for(&mut self, needle: &str) -> String {
        let next = async {
            loop {
                let line = self.lines.recv().await.unwrap();
                if line.contains(needle) {
                    return line;
                }
            }
        };
        tokio::time::timeout(HANG, next)
            .await
            .unwrap_or_else(|_| panic!("no line with {needle:?} was logged"))
    }
}

const OK_1: &str = "outbound_route_reloads_total{result=\"ok\"} 1\npolicy_last_reload_successful 1";

#[tokio::test]
async fn an_ask_reads_the_files_at_once() {
    let mut log = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("5s")).unwrap();
    let mut registry = Registry::default();
    let reload = Reload::watched();
    let watcher = tokio::spawn(watcher(&path, "1h", &mut registry).run(reload.clone()));

    // An hour before the next poll.
    std::fs::write(&path, route("10s")).unwrap();
    assert!(reload.ask());
    let outcome = log.outcome().await;
    assert!(
        outcome.contains("policy files reloaded, as asked"),
        "{outcome}"
    );
    assert_eq!(reloads(&registry), OK_1);
    watcher.abort();
}

#[tokio::test]
async fn an_ask_ends_the_wait_of_a_change_found_by_polling() {
    let mut log = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("5s")).unwrap();
    let mut registry = Registry::default();
    let watcher = watcher(&path, "1h", &mut registry);
    // Changed before the first poll, which finds it and waits a quarter
    // of the interval, a quarter of an hour, to read it again.
    std::fs::write(&path, route("10s")).unwrap();
    let reload = Reload::watched();
    let watcher = tokio::spawn(watcher.run(reload.clone()));
    log.wait_for("policy files changed; read again once they settle")
        .await;

    assert!(reload.ask());
    let outcome = log.outcome().await;
    assert!(
        outcome.contains("policy files reloaded, as asked"),
        "{outcome}"
    );
    assert_eq!(reloads(&registry), OK_1);
    watcher.abort();
}

#[tokio::test]
async fn an_ask_judges_refused_files_again_and_leaves_files_in_force_as_they_are() {
    let mut log = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("5s")).unwrap();
    let mut registry = Registry::default();
    let reload = Reload::watched();
    let watcher = tokio::spawn(watcher(&path, "1h", &mut registry).run(reload.clone()));

    // Unchanged: nothing to put in force, nothing counted.
    assert!(reload.ask());
    let outcome = log.outcome().await;
    assert!(
        outcome.contains("policy files unchanged, as asked"),
        "{outcome}"
    );
    assert_eq!(reloads(&registry), "policy_last_reload_successful 1");

    // Refused, and refused again when asked again: the mistake is named
    // each time, and the last good routes stay.
    std::fs::write(&path, route("soon")).unwrap();
    for refusals in 1..=2 {
        assert!(reload.ask());
        let outcome = log.outcome().await;
        assert!(
            outcome.contains("policy files refused, as asked"),
            "{outcome}"
        );
        assert_eq!(
            reloads(&registry),
            format!(
                "outbound_route_reloads_total{{result=\"error\"}} {refusals}\n\
                 policy_last_reload_successful 0"
            )
        );
    }
    watcher.abort();
}

#[test]
fn without_files_an_ask_reads_nothing() {
    let reload = Reload::default();
    assert!(!reload.is_watched());
    assert!(!reload.ask());
}

/// A writer that had left `path` empty writes it whole and asks; once
/// the ask has put it in force, a second ask with the files as they are
/// (its line logged once every read before it has been judged). The
/// registry's text then.
async fn finish_and_ask(
    log: &mut Log,
    path: &std::path::Path,
    reload: &Reload,
    registry: &Registry,
) -> String {
    std::fs::write(path, route("10s")).unwrap();
    assert!(reload.ask());
    log.wait_for("policy files reloaded, as asked").await;
    assert!(reload.ask());
    log.wait_for("policy files unchanged, as asked").await;
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn an_ask_that_ends_the_wait_of_a_half_written_change_reads_the_files_whole() {
    let mut log = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("5s")).unwrap();
    let mut registry = Registry::default();
    let watcher = watcher(&path, "1h", &mut registry);
    // The first poll catches a writer half-way through (the file
    // truncated), and waits a quarter of an hour to read it again.
    std::fs::write(&path, "").unwrap();
    let reload = Reload::watched();
    let watcher = tokio::spawn(watcher.run(reload.clone()));
    log.wait_for("policy files changed; read again once they settle")
        .await;

    // The writer finishes, and asks.
    let text = finish_and_ask(&mut log, &path, &reload, &registry).await;
    assert!(
        text.contains("outbound_route_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    watcher.abort();
}

#[tokio::test]
async fn an_ask_does_not_put_a_file_caught_between_its_truncation_and_its_write_in_force() {
    let mut log = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("5s")).unwrap();
    let mut registry = Registry::default();
    let reload = Reload::watched();
    let watcher = tokio::spawn(watcher(&path, "1h", &mut registry).run(reload.clone()));

    // A SIGHUP that comes while a writer has truncated the file and not
    // yet written it: both reads of the ask find it empty, and empty it
    // would take every route away. It waits as a change found by polling
    // does, here until the next ask.
    std::fs::write(&path, "").unwrap();
    assert!(reload.ask());
    log.wait_for("policy files changed; read again once they settle")
        .await;
    let text = finish_and_ask(&mut log, &path, &reload, &registry).await;
    assert!(
        text.contains("outbound_route_reloads_total{result=\"ok\"} 1\n"),
        "the empty file was put in force: {text}"
    );
    watcher.abort();
}
