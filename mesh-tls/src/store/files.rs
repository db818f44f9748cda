use std::time::{Duration, SystemTime};

use tokio::{sync::watch, time::MissedTickBehavior};

use super::{CredentialStore, SourceTask};
use crate::creds::{CredentialError, CredentialFiles, FileContents, OutsideValidity};

impl CredentialStore {
    /// Starts supplying the store from `files`: reads them once now and
    /// returns the task that keeps them in service, read every `interval`
    /// (and at once when a [`ReloadHandle`](super::ReloadHandle) asks), to
    /// be spawned once per process beside
    /// [`CredentialStore::readiness_task`].
    ///
    /// Why rather than [`CredentialStore::load_files`], then
    /// [`CredentialStore::watch_files`]: the watcher goes on from this
    /// first read. Files that cannot be loaded yet (a secret still being
    /// mounted) are no error here: the failure is logged and counted at
    /// once, so that whoever looks sees why the store is not ready, and
    /// the task loads the files once they appear; a watcher started
    /// afresh would read the same refused files as new and count them a
    /// second time. And asks are heard from the moment this returns,
    /// where a spawned `watch_files` hears them only once it first runs:
    /// until then [`ReloadHandle::ask`](super::ReloadHandle::ask) reads
    /// nothing and returns false.
    ///
    /// The readiness gate ([`CredentialStore::set_readiness`]) and the
    /// metrics ([`TlsMetrics::register`](crate::TlsMetrics::register)) are
    /// set up beside it, as for any source. A [`CredentialSource::Files`]
    /// starts it; it needs no CA (feature `ca`).
    ///
    #[cfg_attr(
        feature = "ca",
        doc = "[`CredentialSource::Files`]: crate::CredentialSource::Files"
    )]
    #[cfg_attr(
        not(feature = "ca"),
        doc = "[`CredentialSource::Files`]: crate#features"
    )]
    pub fn start_files(&self, files: CredentialFiles, interval: Duration) -> SourceTask {
        // The first read, now, so that credentials already there are in
        // service before the task runs. The watcher goes on from it:
        // contents refused now (logged and counted) are not refused again
        // at its first read. The refusal (or read failure) is reported at
        // once, not when a second read confirms it, so that the caller
        // sees why the store is not ready: no credentials are in service
        // yet whose rotation a writer could be half-way through.
        let mut watched = Watched::default();
        let _ = watched.see(self, &files, files.read_contents());
        watched.report(self);
        // Subscribed now, so that an ask made before the task first runs
        // is read.
        let asks = self.asks();
        Box::pin(self.clone().watch_from(files, interval, watched, asks))
    }

    /// Loads credentials from `files` now, blocking on the file system.
    /// For startup; [`CredentialStore::watch_files`] keeps them current.
    ///
    /// # Errors
    ///
    /// Reading, parsing, or any check of [`CredentialStore::update`], as a
    /// [`CredentialError::InFiles`] naming the files at fault (except a
    /// [`CredentialError::Read`], which names its file). Every refusal is
    /// logged, with the files, and counted.
    pub fn load_files(&self, files: &CredentialFiles) -> Result<(), CredentialError> {
        let result = files.read().and_then(|creds| self.try_update(creds));
        match result {
            Ok(()) => {
                self.shared.metrics.last_update(true);
                Ok(())
            }
            Err(error) => {
                let error = files.blame(error);
                self.reject(&error);
                Err(error)
            }
        }
    }

    /// Reads `files` every `interval` and puts their contents in service
    /// whenever they change. Runs until dropped; spawn it.
    ///
    /// Contents are compared, not inode events or modification times:
    /// Kubernetes replaces a secret volume by swapping a symlink, and a
    /// file rewritten within one second keeps its mtime on many file
    /// systems. Three small reads per interval cost little.
    ///
    /// The first pass loads the files if they are readable. A set of
    /// contents that fails its checks is refused (logged and counted) at
    /// the next read, if that finds the files unchanged, and not again
    /// until they change: writers replace the three files one at a time
    /// ([`ca::issue`] writes the key, then the
    /// certificate), and the kubelet's symlink swap can fall between two of
    /// the watcher's reads, so a read can find a new key beside the old
    /// certificate. When the next read finds the complete set, the torn one
    /// was never a refusal, and a rotation that went right logs no error
    /// and counts nothing; a genuine refusal is reported one interval
    /// later. The credentials in service stay meanwhile either way, and
    /// `identity_cert_last_update_successful` keeps its value: it turns 0
    /// when a refusal is reported, never for a torn set waited out, and 1
    /// when the files load again, changed or put back as they were. Files
    /// that cannot be read are treated alike: a failed read is reported
    /// when the next read fails too, since a writer that deletes a file
    /// before writing its replacement, or the kubelet removing a secret's
    /// old directory just as a read resolved the symlink to it, fails one
    /// read and no more.
    ///
    /// The one exception is a chain that is not valid yet (an issuer whose
    /// clock runs ahead signed the workload certificate, or was itself
    /// renewed on such a clock): it is tried again once the last
    /// `notBefore` of its certificates has passed, since the files may not
    /// change again before the certificate in service expires.
    ///
    /// A [`ReloadHandle`](super::ReloadHandle) of the store asks for a read
    /// at once, between two intervals, once this runs.
    ///
    #[cfg_attr(feature = "ca", doc = "[`ca::issue`]: crate::ca::issue")]
    #[cfg_attr(not(feature = "ca"), doc = "[`ca::issue`]: crate#features")]
    pub async fn watch_files(self, files: CredentialFiles, interval: Duration) {
        let asks = self.asks();
        self.watch_from(files, interval, Watched::default(), asks)
            .await;
    }

    /// [`CredentialStore::watch_files`], going on from what an earlier read
    /// of the files saw, and reading them at once on each of `asks`.
    pub(super) async fn watch_from(
        self,
        files: CredentialFiles,
        interval: Duration,
        mut watched: Watched,
        mut asks: watch::Receiver<()>,
    ) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The store this task holds holds the sender, so the asks never
        // end; were they to, the watcher would go on at its interval.
        let mut listening = true;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let read = files.read_async().await;
                    watched.see(&self, &files, read);
                }
                changed = asks.changed(), if listening => {
                    if changed.is_err() {
                        listening = false;
                        continue;
                    }
                    watched.asked(&self, &files).await;
                    // The next read at the interval is a whole interval
                    // after this one.
                    ticker.reset();
                }
            }
        }
    }
}

/// What the watcher remembers of its reads, so that a refused set of
/// contents is refused (logged and counted) once.
#[derive(Debug, Default)]
pub(super) struct Watched {
    /// The contents last read.
    last: Option<FileContents>,
    /// Whether the last read failed.
    unreadable: bool,
    /// When `last` was refused as not valid yet: when it becomes valid.
    valid_from: Option<SystemTime>,
    /// Why `last` was refused, until a read confirms it by finding the
    /// same contents: a set read while a writer was replacing the files
    /// one at a time is superseded by the next read instead.
    pending: Option<CredentialError>,
    /// Why the last read failed, until the next read fails too: a file
    /// missing for one read is a passing blip of a writer's, not a
    /// refusal.
    pending_read: Option<CredentialError>,
    /// Whether `last` was refused (reported, or `pending`).
    refused: bool,
}

/// What one read of the files came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// The files could not be read.
    Unreadable,
    /// The files are as the previous read found them, and in service.
    Unchanged,
    /// The files were put in service.
    Loaded,
    /// The files were refused: reported, or `pending` until a read
    /// confirms it.
    Refused,
}

impl Watched {
    /// Puts what one read of `files` found in service, unless it is what
    /// the previous read found.
    pub(super) fn see(
        &mut self,
        store: &CredentialStore,
        files: &CredentialFiles,
        read: Result<FileContents, CredentialError>,
    ) -> Seen {
        let contents = match read {
            Ok(contents) => contents,
            Err(error) => {
                if self.unreadable {
                    // Failed twice in a row: no passing blip. Reported
                    // once, until the files can be read again. A refusal
                    // of the contents read before waits: no read has
                    // found them twice alike, and they may be a set a
                    // writer was half-way through.
                    if let Some(error) = self.pending_read.take() {
                        store.reject(&error);
                    }
                } else {
                    self.unreadable = true;
                    self.pending_read = Some(error);
                }
                return Seen::Unreadable;
            }
        };
        // Read after a failure: the failure was a passing blip (a file
        // replaced by deleting it first, a directory removed just as a
        // read resolved a symlink to it).
        self.unreadable = false;
        self.pending_read = None;
        let unchanged = self.last.as_ref() == Some(&contents);
        if unchanged {
            // Read twice alike: no writer was half-way through it.
            self.report(store);
            let due = self.valid_from.is_some_and(|t| store.now() >= t);
            if !due {
                return if self.refused {
                    Seen::Refused
                } else {
                    Seen::Unchanged
                };
            }
        }
        // Changed contents supersede a refusal not yet reported: it was of
        // a set a writer had not finished.
        self.pending = None;
        self.valid_from = None;
        let result = files
            .parse(&contents)
            .and_then(|creds| store.try_update(creds));
        self.refused = result.is_err();
        let seen = match result {
            Ok(()) => {
                store.shared.metrics.last_update(true);
                Seen::Loaded
            }
            Err(error) => {
                if let CredentialError::NotYetValid { not_before }
                | CredentialError::IssuerOutsideValidity {
                    validity: OutsideValidity::NotYetValid { not_before },
                    ..
                } = error
                {
                    self.valid_from = Some(not_before);
                }
                self.pending = Some(files.blame(error));
                if unchanged {
                    // Retried once valid: these contents were read alike
                    // before.
                    self.report(store);
                }
                Seen::Refused
            }
        };
        self.last = Some(contents);
        seen
    }

    /// Reads `files` now, because a [`ReloadHandle`](super::ReloadHandle)
    /// asked, and logs what the read came to.
    ///
    /// Whoever asked has written the files: a set refused, or files that
    /// cannot be read, are read again at once, and refused (logged and
    /// counted) when that second read finds them alike, rather than an
    /// interval later. Files that stand refused, or unreadable, are judged
    /// again as if first read, so that the refusal is logged again for
    /// whoever asked.
    pub(super) async fn asked(&mut self, store: &CredentialStore, files: &CredentialFiles) {
        if self.refused {
            self.last = None;
            self.valid_from = None;
            self.pending = None;
        }
        self.unreadable = false;
        self.pending_read = None;
        let read = files.read_async().await;
        let mut seen = self.see(store, files, read);
        if matches!(seen, Seen::Refused | Seen::Unreadable) {
            let again = files.read_async().await;
            seen = self.see(store, files, again);
        }
        let files_at = files.cert.display();
        if self.pending.is_some() || self.pending_read.is_some() {
            tracing::info!(
                cert = %files_at,
                "certificate files changed between two reads, as asked; they are read again \
                 at the next interval"
            );
            return;
        }
        match seen {
            Seen::Loaded => tracing::info!(
                cert = %files_at,
                identity = %store.identity().map(|id| id.to_string()).unwrap_or_default(),
                "certificate files reloaded, as asked"
            ),
            Seen::Unchanged => tracing::info!(
                cert = %files_at,
                "certificate files unchanged, as asked; the credentials in service stay"
            ),
            Seen::Refused => tracing::warn!(
                cert = %files_at,
                "certificate files refused, as asked; the credentials in service stay"
            ),
            Seen::Unreadable => tracing::warn!(
                cert = %files_at,
                "certificate files unreadable, as asked; the credentials in service stay"
            ),
        }
    }

    /// Reports the refusal or read failure not yet reported, if any: logs
    /// and counts it.
    pub(super) fn report(&mut self, store: &CredentialStore) {
        for error in [self.pending_read.take(), self.pending.take()]
            .into_iter()
            .flatten()
        {
            store.reject(&error);
        }
    }
}

// The tests write their files with the CA.
#[cfg(test)]
#[cfg(feature = "ca")]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::{
        StoreVersion,
        ca::{CertificateAuthority, IssuedCertificate},
    };

    const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

    fn issue(ca: &CertificateAuthority) -> IssuedCertificate {
        ca.issue(&WEB.parse().unwrap(), Duration::from_secs(3600))
            .unwrap()
    }

    /// One pass of the watcher over `files`.
    fn read(watched: &mut Watched, store: &CredentialStore, files: &CredentialFiles) {
        let _ = watched.see(store, files, files.read_contents());
    }

    /// A writer replaces the files one at a time (`ca::issue` writes the
    /// key, then the certificate), and the kubelet's symlink swap can fall
    /// between two of the watcher's three reads: a read in between finds
    /// a key that is not the certificate's. Once the next read finds the
    /// complete set, that torn set was never a refusal: no error is
    /// logged, and nothing is counted, for a rotation that went right.
    #[test]
    fn a_set_read_while_it_was_being_written_is_no_refusal() {
        let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = issue(&ca).write(dir.path()).unwrap();
        let store = CredentialStore::default();
        let mut watched = Watched::default();
        read(&mut watched, &store, &files);
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 1,
                rejected: 0
            }
        );

        // The new key is written; the watcher reads before the certificate
        // follows.
        let next = issue(&ca);
        std::fs::write(&files.key, next.key_pem()).unwrap();
        read(&mut watched, &store, &files);
        next.write(dir.path()).unwrap();
        read(&mut watched, &store, &files);
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 2,
                rejected: 0
            }
        );
        assert_eq!(
            store.credentials().unwrap().chain(),
            next.credentials().unwrap().chain()
        );

        // A set that stays as it is refused is refused once, at the read
        // that finds it unchanged, and not again.
        let stray = issue(&ca);
        std::fs::write(&files.key, stray.key_pem()).unwrap();
        for _ in 0..4 {
            read(&mut watched, &store, &files);
        }
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 2,
                rejected: 1
            }
        );
        assert_eq!(
            store.credentials().unwrap().chain(),
            next.credentials().unwrap().chain()
        );
    }

    /// A writer that deletes a file before writing its replacement, or
    /// the kubelet removing the old directory of a secret just as a read
    /// resolved the symlink to it, makes one read fail. When the next
    /// read finds the files, that was no refusal either; files that stay
    /// unreadable are refused once, at the second read that fails.
    #[test]
    fn a_file_missing_for_one_read_is_no_refusal() {
        let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = issue(&ca).write(dir.path()).unwrap();
        let store = CredentialStore::default();
        let mut watched = Watched::default();
        read(&mut watched, &store, &files);
        let cert = std::fs::read(&files.cert).unwrap();

        std::fs::remove_file(&files.cert).unwrap();
        read(&mut watched, &store, &files);
        std::fs::write(&files.cert, &cert).unwrap();
        read(&mut watched, &store, &files);
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 1,
                rejected: 0
            }
        );

        std::fs::remove_file(&files.cert).unwrap();
        for _ in 0..4 {
            read(&mut watched, &store, &files);
        }
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 1,
                rejected: 1
            }
        );
        assert!(store.is_ready());
    }

    /// A writer that deletes each file before writing its replacement,
    /// key first: one read finds the new key beside the old certificate,
    /// the next ones find no certificate. The files staying unreadable is
    /// the one refusal; the torn pair, never read twice alike, is none,
    /// and the new pair loads once the certificate is back.
    #[test]
    fn a_torn_set_followed_by_unreadable_files_is_not_refused_for_the_tear() {
        let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = issue(&ca).write(dir.path()).unwrap();
        let store = CredentialStore::default();
        let mut watched = Watched::default();
        read(&mut watched, &store, &files);

        let next = issue(&ca);
        std::fs::write(&files.key, next.key_pem()).unwrap();
        read(&mut watched, &store, &files);
        std::fs::remove_file(&files.cert).unwrap();
        for _ in 0..3 {
            read(&mut watched, &store, &files);
        }
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 1,
                rejected: 1
            }
        );
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        store.metrics().register(&mut registry);
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("identity_cert_rejected_updates_total{reason=\"unreadable\"} 1"),
            "{text}"
        );
        assert!(!text.contains("reason=\"key_mismatch\""), "{text}");

        std::fs::write(&files.cert, next.chain_pem()).unwrap();
        read(&mut watched, &store, &files);
        assert_eq!(
            *store.subscribe().borrow(),
            StoreVersion {
                loaded: 2,
                rejected: 1
            }
        );
    }
}

// Files that do not load, and the asks, need no certificate: these run
// without the CA too, as a files-only service builds.
#[cfg(test)]
mod start_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    const INTERVAL: Duration = Duration::from_millis(10);

    fn rejected(store: &CredentialStore) -> u64 {
        store.subscribe().borrow().rejected
    }

    /// What `start_files` gives that `load_files`, then a spawned
    /// `watch_files`, does not: the watcher goes on from the first read,
    /// so files refused then (missing, or not credentials) are counted
    /// once, not again by the watcher's first reads.
    #[tokio::test(start_paused = true)]
    async fn files_refused_at_start_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = CredentialFiles::in_dir(dir.path());
        for written in [false, true] {
            if written {
                for path in [&files.cert, &files.key, &files.bundle] {
                    std::fs::write(path, "not PEM\n").unwrap();
                }
            }
            let store = CredentialStore::default();
            let task = tokio::spawn(store.start_files(files.clone(), INTERVAL));
            assert_eq!(rejected(&store), 1, "written: {written}");
            assert!(!store.is_ready());
            tokio::time::sleep(20 * INTERVAL).await;
            assert_eq!(rejected(&store), 1, "written: {written}");
            task.abort();
        }
    }

    /// The task hears asks from the moment `start_files` returns, before it
    /// first runs: a signal handler installed beside it can ask at once.
    /// An ask judges files that stand refused again, and counts them again.
    #[tokio::test(start_paused = true)]
    async fn an_ask_made_before_the_task_first_runs_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let files = CredentialFiles::in_dir(dir.path());
        let store = CredentialStore::default();
        let task = store.start_files(files, INTERVAL);
        assert_eq!(rejected(&store), 1);
        assert!(store.reload_handle().ask(), "no source reads the ask");
        let task = tokio::spawn(task);
        tokio::time::sleep(INTERVAL / 2).await;
        assert_eq!(rejected(&store), 2, "the ask was not read");
        tokio::time::sleep(20 * INTERVAL).await;
        assert_eq!(rejected(&store), 2);
        task.abort();
    }
}
