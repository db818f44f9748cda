//! A CA source reads its directory again before each renewal, and a files
//! source reads its files every interval. Those reads are file system I/O,
//! and the runtime that runs the source also serves connections (the
//! sidecar runs it on a data-plane runtime): a read that takes long (a
//! slow disk, a network mount) must not stall that runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use mesh_tls::{CredentialSource, CredentialStore, StoreConfig, ca};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// Makes `path` a named pipe: opening it to read waits for a writer, and
/// reading it waits for the writer's data or its close, as a read from a
/// slow file system waits.
fn make_fifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Serves the pipe at `fifo`: holds the first reader waiting (it has the
/// pipe open and nothing to read) until the test says it still runs, or
/// for 30 seconds at most, then lets every reader find the pipe empty,
/// until `stop`. Returns whether the wait for the test ran out: the
/// runtime the test runs on was stalled by the reader.
fn serve_fifo(
    fifo: PathBuf,
    reading: tokio::sync::oneshot::Sender<()>,
    alive: mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let writer = OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = reading.send(());
        let stalled = alive.recv_timeout(Duration::from_secs(30)).is_err();
        drop(writer);
        while !stop.load(Ordering::SeqCst) {
            drop(OpenOptions::new().write(true).open(&fifo).unwrap());
        }
        stalled
    })
}

/// A file made a pipe ([`make_fifo`]) and served ([`serve_fifo`]) on a
/// thread of its own.
struct Stalling {
    fifo: PathBuf,
    /// Tells the server the test still runs.
    alive: mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
    server: std::thread::JoinHandle<bool>,
}

impl Stalling {
    /// Makes `fifo` a pipe and serves it; the receiver hears when a
    /// reader has it open.
    fn start(fifo: &Path) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        make_fifo(fifo);
        let (reading_tx, reading) = tokio::sync::oneshot::channel();
        let (alive, alive_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let server = serve_fifo(fifo.to_owned(), reading_tx, alive_rx, stop.clone());
        let stalling = Self {
            fifo: fifo.to_owned(),
            alive,
            stop,
            server,
        };
        (stalling, reading)
    }

    /// Stops serving the pipe: whether the wait for the test ran out.
    fn stalled(self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        // Open at both ends, the pipe lets the server's last open through.
        let hold = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.fifo)
            .unwrap();
        let stalled = self.server.join().unwrap();
        drop(hold);
        stalled
    }
}

/// The renewal reads the CA directory while another task of its runtime
/// goes on: the directory's `ca.crt`, made a pipe that answers only when
/// the test tells it to, keeps the read waiting, and the test, on the same
/// single-threaded runtime, runs meanwhile. Read on the runtime thread, the
/// read would hold the thread until the pipe gave up waiting for the test.
/// The empty `ca.crt` the read then finds is refused, as before.
#[cfg(unix)]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_ca_source_reads_its_directory_off_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let store = CredentialStore::new(StoreConfig::default());
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: Duration::from_secs(60),
    };
    let task = tokio::spawn(store.start(source).unwrap());
    assert_eq!(store.subscribe().borrow().loaded, 1);

    let (fifo, reading) = Stalling::start(&dir.path().join(ca::CA_CERT_FILE));

    // Past the renewal, at 70 % of the minute: the directory is read.
    tokio::time::advance(Duration::from_secs(43)).await;
    reading.await.unwrap();
    fifo.alive.send(()).unwrap();

    let mut version = store.subscribe();
    version.wait_for(|v| v.rejected == 1).await.unwrap();
    assert!(store.is_ready(), "the CA loaded before renews");

    let stalled = fifo.stalled();
    task.abort();
    assert!(
        !stalled,
        "the runtime stood still while the renewal read the CA directory"
    );
}

/// The files source reads its files while the other tasks of its runtime
/// go on, as the CA source reads its directory: `tls.crt`, made a pipe
/// that answers only when the test tells it to, keeps the read waiting,
/// and the test, on the same single-threaded runtime, runs meanwhile. The
/// empty certificate file the reads then find is refused, once, and the
/// credentials loaded before stay.
#[cfg(unix)]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_files_source_reads_its_files_off_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    let files = ca()
        .issue(&id(WEB), HOUR)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let store = CredentialStore::new(StoreConfig::default());
    let source = CredentialSource::Files {
        files: files.clone(),
        interval: Duration::from_secs(1),
    };
    let task = tokio::spawn(store.start(source).unwrap());
    assert_eq!(store.subscribe().borrow().loaded, 1);

    let (fifo, reading) = Stalling::start(&files.cert);

    reading.await.unwrap();
    fifo.alive.send(()).unwrap();

    let mut version = store.subscribe();
    version.wait_for(|v| v.rejected == 1).await.unwrap();
    assert!(store.is_ready(), "the credentials loaded before stay");

    let stalled = fifo.stalled();
    task.abort();
    assert!(
        !stalled,
        "the runtime stood still while the files source read its files"
    );
}
