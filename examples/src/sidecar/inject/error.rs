//! Why manifests could not be injected.

use std::{error::Error as StdError, fmt, io};

use mesh_core::resource::ResourceError;

use super::{Note, emit::EmitError};

/// Why `inject` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InjectError {
    /// The input could not be read, or is not UTF-8.
    Read {
        /// Where the input was read from.
        origin: String,
        /// Why.
        source: io::Error,
    },
    /// The input is longer than [`MAX_INPUT`](super::MAX_INPUT) bytes.
    TooLarge {
        /// Where the input was read from.
        origin: String,
    },
    /// A document is malformed, or a workload cannot be injected. The
    /// error names the document, the field and the line.
    Manifest(ResourceError),
    /// Workloads that cannot take the sidecar: on the host's network, or
    /// with another mesh's proxy (see [`Outcome`](super::Outcome)), one
    /// note each, in order. As `linkerd inject` fails on such a pod,
    /// nothing is written: the input is not half injected.
    Refused(Vec<Note>),
    /// The injected documents could not be written as YAML that reads back
    /// the same. The source, when there is one, is serde_yaml_ng's error.
    Emit(Option<serde_yaml_ng::Error>),
    /// The output could not be written.
    Write(io::Error),
}

impl InjectError {
    /// The malformed document's error, when that is what this is.
    pub fn as_manifest(&self) -> Option<&ResourceError> {
        match self {
            Self::Manifest(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { origin, .. } => write!(f, "cannot read {origin}"),
            Self::TooLarge { origin } => write!(
                f,
                "{origin} is longer than {} MiB: inject it in parts",
                super::MAX_INPUT >> 20
            ),
            Self::Manifest(error) => error.fmt(f),
            Self::Refused(refused) => {
                let count = match refused.len() {
                    1 => "1 workload".to_owned(),
                    n => format!("{n} workloads"),
                };
                write!(f, "{count} cannot take the sidecar, so nothing is written:")?;
                for note in refused {
                    write!(f, "\n  {note}")?;
                }
                Ok(())
            }
            Self::Emit(_) => f.write_str("cannot write the injected documents as yaml"),
            Self::Write(_) => f.write_str("cannot write the output"),
        }
    }
}

impl StdError for InjectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Write(source) => Some(source),
            Self::TooLarge { .. } | Self::Refused(_) => None,
            // The manifest error is displayed as this error, so its own
            // cause comes next.
            Self::Manifest(error) => error.source(),
            Self::Emit(source) => source.as_ref().map(|e| e as &(dyn StdError + 'static)),
        }
    }
}

impl From<ResourceError> for InjectError {
    fn from(error: ResourceError) -> Self {
        Self::Manifest(error)
    }
}

impl From<EmitError> for InjectError {
    fn from(error: EmitError) -> Self {
        match error {
            EmitError::Serialize(source) => Self::Emit(Some(source)),
            EmitError::Mismatch => Self::Emit(None),
        }
    }
}
