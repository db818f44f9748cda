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
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last: Option<FileContents> = None;
        let mut unreadable = false;
        // When `last` was refused as not valid yet: when it becomes valid.
        let mut valid_from: Option<SystemTime> = None;
        loop {
            ticker.tick().await;
            match files.read_async().await {
                Err(error) => {
                    if !unreadable {
                        self.reject(&error);
                        unreadable = true;
                    }
                }
                Ok(contents) => {
                    unreadable = false;
                    let due = valid_from.is_some_and(|t| SystemTime::now() >= t);
                    if last.as_ref() == Some(&contents) && !due {
                        continue;
                    }
                    valid_from = None;
                    let result = files
                        .parse(&contents)
                        .and_then(|creds| self.try_update(creds));
                    if let Err(error) = result {
                        if let CredentialError::NotYetValid { not_before } = error {
                            valid_from = Some(not_before);
                        }
                        self.reject(&files.blame(error));
                    }
                    last = Some(contents);
                }
            }
        }
    }
}
