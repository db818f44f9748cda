//! An ask that ends the settle wait of a change found by polling, when
//! the first read caught the files half-written: the ask still reads them
//! at once, rather than an interval later.

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

/// This thread's log lines, as they are written.
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

    /// The next line that holds `needle`; the bound is that of a hang,
    /// well short of the quarter hour the watcher waits to read again.
    async fn wait_for(&mut self, needle: &str) -> String {
        let next = async {
            loop {
                let line = self.lines.recv().await.unwrap();
                if line.contains(needle) {
                    return line;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), next)
            .await
            .unwrap_or_else(|_| panic!("no line with {needle:?} was logged"))
    }
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
    std::fs::write(&path, route("10s")).unwrap();
    assert!(reload.ask());
    // Once more, with the files as they are in force: when this ask's
    // line is logged, every read before it has been judged.
    log.wait_for("policy files reloaded, as asked").await;
    assert!(reload.ask());
    log.wait_for("policy files unchanged, as asked").await;
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
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
    std::fs::write(&path, route("10s")).unwrap();
    assert!(reload.ask());
    // Once more, with the files as they are in force: when this ask's
    // line is logged, every read before it has been judged.
    log.wait_for("policy files reloaded, as asked").await;
    assert!(reload.ask());
    log.wait_for("policy files unchanged, as asked").await;
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("outbound_route_reloads_total{result=\"ok\"} 1\n"),
        "the empty file was put in force: {text}"
    );
    watcher.abort();
}
