use std::path::{Path, PathBuf};

use super::{CredentialError, Credentials, PemInput};

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

/// The most a credential file may hold: 1 MiB, the size limit of a
/// Kubernetes secret. A certificate chain or key takes a few kilobytes and
/// a bundle of every public root a few hundred; reading stops past this,
/// so that a path naming something endless (`/dev/zero`, a growing log)
/// is refused rather than read until memory runs out.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// The error for a file larger than [`MAX_FILE_SIZE`].
fn too_large(path: &Path) -> CredentialError {
    CredentialError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file holds more than 1 MiB, more than any certificate, key or trust bundle",
        ),
    }
}

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
    /// of [`Credentials::from_pem`] inside a [`CredentialError::InFiles`]
    /// naming the file at fault.
    pub fn read(&self) -> Result<Credentials, CredentialError> {
        self.parse(&self.read_contents()?)
    }

    /// Reads the three files, blocking on the file system.
    pub(crate) fn read_contents(&self) -> Result<FileContents, CredentialError> {
        let read = |path: &PathBuf| {
            use std::io::Read;
            let mut contents = Vec::new();
            std::fs::File::open(path)
                .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_end(&mut contents))
                .map_err(|source| CredentialError::Read {
                    path: path.clone(),
                    source,
                })?;
            if contents.len() as u64 > MAX_FILE_SIZE {
                return Err(too_large(path));
            }
            Ok(contents)
        };
        Ok(FileContents {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            bundle: read(&self.bundle)?,
        })
    }

    /// Parses what was read from these files; an error names the file at
    /// fault.
    pub(crate) fn parse(&self, contents: &FileContents) -> Result<Credentials, CredentialError> {
        let (chain, key, roots) = super::parse_pem(&contents.cert, &contents.key, &contents.bundle)
            .map_err(|(input, error)| {
                let path = match input {
                    PemInput::Chain => &self.cert,
                    PemInput::Key => &self.key,
                    PemInput::Bundle => &self.bundle,
                };
                in_files(vec![path.clone()], error)
            })?;
        Credentials::from_der(chain, key, roots).map_err(|error| self.blame(error))
    }

    /// Wraps `error`, about credentials read from these files, in a
    /// [`CredentialError::InFiles`] naming the files at fault. An error
    /// that names its file already, or is about no file, stays as it is.
    pub(crate) fn blame(&self, error: CredentialError) -> CredentialError {
        use CredentialError as E;
        let (cert, key, bundle) = (&self.cert, &self.key, &self.bundle);
        let paths = match &error {
            E::NoCertificate
            | E::BadCertificate
            | E::ChainOutOfOrder { .. }
            | E::NoIdentity(_)
            | E::Expired { .. }
            | E::NotYetValid { .. }
            | E::IssuerOutsideValidity { .. }
            | E::PurposeMissing { .. }
            | E::WrongTrustDomain { .. }
            | E::WrongIdentity { .. } => vec![cert.clone()],
            E::NoPrivateKey | E::EncryptedKey | E::BadKey(_) => vec![key.clone()],
            E::KeyMismatch => vec![cert.clone(), key.clone()],
            E::EmptyBundle
            | E::BadTrustAnchor { .. }
            | E::AnchorNotCa { .. }
            | E::AnchorDomainUnreadable(_) => vec![bundle.clone()],
            E::Untrusted(_) | E::NoAnchorOfTrustDomain { .. } => {
                vec![cert.clone(), bundle.clone()]
            }
            // `Pem` is named where it is parsed, since only the parser
            // knows which file it was in.
            E::Read { .. } | E::Pem(_) | E::Config(_) | E::InFiles { .. } => return error,
        };
        in_files(paths, error)
    }

    pub(crate) async fn read_async(&self) -> Result<FileContents, CredentialError> {
        async fn read(path: &PathBuf) -> Result<Vec<u8>, CredentialError> {
            use tokio::io::AsyncReadExt;
            let mut contents = Vec::new();
            let read = async {
                tokio::fs::File::open(path)
                    .await?
                    .take(MAX_FILE_SIZE + 1)
                    .read_to_end(&mut contents)
                    .await
            };
            read.await.map_err(|source| CredentialError::Read {
                path: path.clone(),
                source,
            })?;
            if contents.len() as u64 > MAX_FILE_SIZE {
                return Err(too_large(path));
            }
            Ok(contents)
        }
        Ok(FileContents {
            cert: read(&self.cert).await?,
            key: read(&self.key).await?,
            bundle: read(&self.bundle).await?,
        })
    }
}

fn in_files(paths: Vec<PathBuf>, error: CredentialError) -> CredentialError {
    CredentialError::InFiles {
        paths,
        source: Box::new(error),
    }
}
