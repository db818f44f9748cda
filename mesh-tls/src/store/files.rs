use std::time::{Duration, SystemTime};

use tokio::time::MissedTickBehavior;

use super::CredentialStore;
use crate::creds::{CredentialError, CredentialFiles, FileContents};

impl CredentialStore {
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
        result.map_err(|error| {
            let error = files.blame(error);
            self.reject(&error);
            error
        })
    }

    /// Reads `files` every `interval` and puts their contents in service
    /// whenever they change. Runs until dropped; spawn it.
    ///
    /// Contents are compared, not inode events or modification times:
    /// Kubernetes replaces a secret volume by swapping a symlink, and a
    /// file rewritten within one second keeps its mtime on many file
    /// systems. Three small reads per interval cost little.
    ///
    /// The first pass loads the files if they are readable. A refused set
    /// of contents is logged and counted once, and not retried until the
    /// files change again: a certificate written before its key is refused
    /// for the mismatch, then accepted on the next pass once the key lands.
    /// The one exception is a chain that is not valid yet (an issuer whose
    /// clock runs ahead signed the workload certificate, or was itself
    /// renewed on such a clock): it is tried again once the last
    /// `notBefore` of its certificates has passed, since the files may not
    /// change again before the certificate in service expires.
    pub async fn watch_files(self, files: CredentialFiles, interval: Duration) {
        self.watch_from(files, interval, Watched::default()).await;
    }

    /// [`CredentialStore::watch_files`], going on from what an earlier read
    /// of the files saw.
    pub(super) async fn watch_from(
        self,
        files: CredentialFiles,
        interval: Duration,
        mut watched: Watched,
    ) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let read = files.read_async().await;
            watched.see(&self, &files, read);
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
}

impl Watched {
    /// Puts what one read of `files` found in service, unless it is what
    /// the previous read found.
    pub(super) fn see(
        &mut self,
        store: &CredentialStore,
        files: &CredentialFiles,
        read: Result<FileContents, CredentialError>,
    ) {
        let contents = match read {
            Ok(contents) => contents,
            Err(error) => {
                if !self.unreadable {
                    store.reject(&error);
                    self.unreadable = true;
                }
                return;
            }
        };
        self.unreadable = false;
        let due = self.valid_from.is_some_and(|t| SystemTime::now() >= t);
        if self.last.as_ref() == Some(&contents) && !due {
            return;
        }
        self.valid_from = None;
        let result = files
            .parse(&contents)
            .and_then(|creds| store.try_update(creds));
        if let Err(error) = result {
            if let CredentialError::NotYetValid { not_before } = error {
                self.valid_from = Some(not_before);
            }
            store.reject(&files.blame(error));
        }
        self.last = Some(contents);
    }
}
