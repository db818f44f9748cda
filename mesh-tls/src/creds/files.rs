use std::path::{Path, PathBuf};

use super::{CredentialError, Credentials};

/// The certificate chain's file name in a credentials directory: the
/// workload certificate, then its issuer. The name Kubernetes TLS secrets
/// and cert-manager use.
pub const CERT_FILE: &str = "tls.crt";

/// The private key's file name in a credentials directory (mode 0600).
pub const KEY_FILE: &str = "tls.key";

/// The trust bundle's file name in a credentials directory. cert-manager
/// writes the issuing CA under this name in the same secret, so a mounted
/// cert-manager secret is a credentials directory as it is.
pub const BUNDLE_FILE: &str = "ca.crt";

/// Where a workload's credentials live on disk: three PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialFiles {
    /// The certificate chain, workload certificate first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The trust anchors.
    pub bundle: PathBuf,
}

/// The raw contents of a [`CredentialFiles`], to tell whether they changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileContents {
    cert: Vec<u8>,
    key: Vec<u8>,
    bundle: Vec<u8>,
}

impl CredentialFiles {
    /// The files [`CERT_FILE`], [`KEY_FILE`] and [`BUNDLE_FILE`] in `dir`:
    /// the layout `mesh_tls::ca::issue` writes and a mounted cert-manager
    /// secret has.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
            bundle: dir.join(BUNDLE_FILE),
        }
    }

    /// Reads and parses the three files.
    ///
    /// This blocks on the file system; it is meant for startup. The store's
    /// watcher reads asynchronously.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Read`] when a file cannot be read, and any error
    /// of [`Credentials::from_pem`].
    pub fn read(&self) -> Result<Credentials, CredentialError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| CredentialError::Read {
                path: path.clone(),
                source,
            })
        };
        FileContents {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            bundle: read(&self.bundle)?,
        }
        .parse()
    }

    pub(crate) async fn read_async(&self) -> Result<FileContents, CredentialError> {
        async fn read(path: &PathBuf) -> Result<Vec<u8>, CredentialError> {
            tokio::fs::read(path)
                .await
                .map_err(|source| CredentialError::Read {
                    path: path.clone(),
                    source,
                })
        }
        Ok(FileContents {
            cert: read(&self.cert).await?,
            key: read(&self.key).await?,
            bundle: read(&self.bundle).await?,
        })
    }
}

impl FileContents {
    pub(crate) fn parse(&self) -> Result<Credentials, CredentialError> {
        Credentials::from_pem(&self.cert, &self.key, &self.bundle)
    }
}
