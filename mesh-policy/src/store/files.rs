//! Policy files, read and watched by polling their contents.
//!
//! Polling contents, rather than subscribing to file system events, works
//! the same for a file that is edited in place, replaced by a rename, or
//! swapped under a Kubernetes ConfigMap's symlinks, and needs nothing from
//! the platform. Reading a few policy files every couple of seconds costs
//! little.
//!
//! New contents are put in force only once they have settled: read again a
//! quarter of the interval later, they must be the same. A file rewritten
//! in place is empty for a moment, between its truncation and the write,
//! and an empty policy file is a valid one that selects no Server, which
//! would leave every port to the default policy (all-unauthenticated unless
//! configured otherwise) until the next poll. Contents still changing are
//! left for the next poll.

use std::{path::PathBuf, time::Duration};

use mesh_core::resource::{ResourceError, ResourceErrorKind};

use super::PolicyStore;
use crate::PolicySource;

/// Where a policy comes from: files, and documents written inline in the
/// sidecar's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFiles {
    /// Files of multi-document YAML, read in order.
    pub files: Vec<PathBuf>,
    /// Inline texts, read after the files; named `inline[0]`, `inline[1]`...
    pub inline: Vec<String>,
}

/// The texts of a [`PolicyFiles`], as read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTexts {
    texts: Vec<(String, String)>,
}

impl PolicyTexts {
    /// The texts, each with its origin, for [`PolicyStore::reload`].
    pub fn sources(&self) -> Vec<PolicySource<'_>> {
        self.texts
            .iter()
            .map(|(origin, text)| PolicySource::new(origin, text))
            .collect()
    }
}

impl PolicyFiles {
    /// No files and no inline documents.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds an inline text.
    #[must_use]
    pub fn with_inline(mut self, text: impl Into<String>) -> Self {
        self.inline.push(text.into());
        self
    }

    /// Reads every file now, without blocking the runtime.
    ///
    /// # Errors
    ///
    /// A file that cannot be read ([`Io`](ResourceErrorKind::Io)) or is not
    /// UTF-8 ([`Syntax`](ResourceErrorKind::Syntax)).
    pub async fn read(&self) -> Result<PolicyTexts, ResourceError> {
        let mut texts = Vec::new();
        for path in &self.files {
            let bytes = tokio::fs::read(path).await;
            texts.push(text_of(path, bytes)?);
        }
        Ok(self.with_inline_texts(texts))
    }

    /// Reads every file now, blocking: for a command line tool.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub fn read_blocking(&self) -> Result<PolicyTexts, ResourceError> {
        let mut texts = Vec::new();
        for path in &self.files {
            texts.push(text_of(path, std::fs::read(path))?);
        }
        Ok(self.with_inline_texts(texts))
    }

    fn with_inline_texts(&self, mut texts: Vec<(String, String)>) -> PolicyTexts {
        texts.extend(
            self.inline
                .iter()
                .enumerate()
                .map(|(i, text)| (format!("inline[{i}]"), text.clone())),
        );
        PolicyTexts { texts }
    }
}

fn text_of(
    path: &std::path::Path,
    bytes: std::io::Result<Vec<u8>>,
) -> Result<(String, String), ResourceError> {
    let origin = path.display().to_string();
    let bytes = bytes.map_err(|e| {
        ResourceError::new(
            ResourceErrorKind::Io,
            &origin,
            "cannot read the policy file",
        )
        .with_source(e)
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ResourceError::new(
            ResourceErrorKind::Syntax,
            &origin,
            "the policy file is not utf-8",
        )
        .with_source(e)
    })?;
    Ok((origin, text))
}

/// Reloads a [`PolicyStore`] whenever its files' contents change.
#[derive(Debug)]
pub struct PolicyWatcher {
    store: PolicyStore,
    files: PolicyFiles,
    interval: Duration,
    last: Option<PolicyTexts>,
}

impl PolicyWatcher {
    /// A watcher of `files` for `store`. It polls every 2 seconds by
    /// default, and loads the files on its first poll.
    pub fn new(store: PolicyStore, files: PolicyFiles) -> Self {
        Self {
            store,
            files,
            interval: Duration::from_secs(2),
            last: None,
        }
    }

    /// Sets how often the files are read. Default 2 seconds; at least
    /// [`MIN_INTERVAL`](Self::MIN_INTERVAL), which a shorter interval
    /// (a zero in a configuration file) is raised to, rather than reading
    /// the files without pause.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Self::MIN_INTERVAL);
        self
    }

    /// The shortest interval between polls: 100 ms.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

    /// Says these texts are already loaded (the sidecar loads its policy
    /// before it starts serving), so they are not loaded again.
    #[must_use]
    pub fn with_loaded(mut self, texts: PolicyTexts) -> Self {
        self.last = Some(texts);
        self
    }

    /// Polls until dropped: spawn it, or select it against a shutdown
    /// signal. Each change of contents is loaded once, when a second read
    /// a quarter of the interval later finds the same contents, so that a
    /// file caught half-written (empty, between its truncation and its
    /// write) is never put in force: a bad file is reported once, and the
    /// next good contents replace it. Contents are compiled on tokio's
    /// blocking pool, never on the thread that polls.
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_read_error: Option<String> = None;
        loop {
            ticks.tick().await;
            let texts = match self.files.read().await {
                Ok(texts) => {
                    last_read_error = None;
                    texts
                }
                Err(error) => {
                    let message = error.to_string();
                    if last_read_error.as_ref() != Some(&message) {
                        self.store.metrics().reload(false);
                        tracing::warn!(%error, "policy files unreadable; the last good policy stays in force");
                        last_read_error = Some(message);
                    }
                    continue;
                }
            };
            if self.last.as_ref() == Some(&texts) {
                continue;
            }
            tokio::time::sleep(self.interval / 4).await;
            let settled = self.files.read().await.is_ok_and(|again| again == texts);
            if !settled {
                tracing::debug!("policy files still changing; read again at the next poll");
                continue;
            }
            // Compiled on tokio's blocking pool: the watcher runs on a
            // runtime that serves traffic, and a large policy takes long
            // enough to compile (seconds for megabytes of YAML) that every
            // connection of that runtime would wait for it. Errors are
            // logged and counted by the store.
            let store = self.store.clone();
            let compiled = tokio::task::spawn_blocking(move || {
                let _ = store.reload(&texts.sources());
                texts
            })
            .await;
            match compiled {
                Ok(texts) => self.last = Some(texts),
                // The compile panicked, or the runtime is shutting down:
                // the last good policy stays, and the next poll tries again.
                Err(error) => {
                    tracing::warn!(%error, "policy reload did not finish; the last good policy stays in force");
                }
            }
        }
    }
}
