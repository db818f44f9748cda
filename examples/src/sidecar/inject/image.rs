//! The sidecar's container image, and the version it records.

use std::{fmt, str::FromStr};

/// The image the sidecar container runs, such as
/// `ghcr.io/mesh/sidecar:0.1.0`.
///
/// Its version, recorded in the `mesh.io/proxy-version` annotation, is read
/// from the reference the way a container runtime reads it: the digest
/// after `@` when there is one, else the tag after the last `:` of the last
/// path part, else `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image(String);

impl Image {
    /// The image `ghcr.io/mesh/sidecar` at this crate's version.
    pub fn default_for_this_version() -> Self {
        Self(format!(
            "ghcr.io/mesh/sidecar:{}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// Checks `reference` is an image reference: not empty, without spaces
    /// or control characters, with a non-empty name, tag and digest.
    ///
    /// # Errors
    ///
    /// [`InvalidImage`] when it is not.
    pub fn parse(reference: &str) -> Result<Self, InvalidImage> {
        let invalid = || InvalidImage(reference.to_owned());
        if reference.is_empty()
            || reference
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        if digest.is_some_and(|digest| !digest.contains(':') || digest.ends_with(':')) {
            return Err(invalid());
        }
        let last = name.rsplit('/').next().unwrap_or(name);
        let (repository, tag) = match last.split_once(':') {
            Some((repository, tag)) => (repository, Some(tag)),
            None => (last, None),
        };
        if repository.is_empty() || name.starts_with('/') || tag == Some("") {
            return Err(invalid());
        }
        Ok(Self(reference.to_owned()))
    }

    /// The reference as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The version the image runs: its digest, else its tag, else `latest`.
    pub fn version(&self) -> &str {
        if let Some((_, digest)) = self.0.split_once('@') {
            return digest;
        }
        let last = self.0.rsplit('/').next().unwrap_or(&self.0);
        last.split_once(':').map_or("latest", |(_, tag)| tag)
    }
}

impl Default for Image {
    fn default() -> Self {
        Self::default_for_this_version()
    }
}

impl FromStr for Image {
    type Err = InvalidImage;

    fn from_str(reference: &str) -> Result<Self, Self::Err> {
        Self::parse(reference)
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a container image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidImage(String);

impl fmt::Display for InvalidImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an image reference", self.0)
    }
}

impl std::error::Error for InvalidImage {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_image_runs_this_crate_version() {
        let image = Image::default();
        assert_eq!(image.version(), env!("CARGO_PKG_VERSION"));
        assert!(image.as_str().starts_with("ghcr.io/mesh/sidecar:"));
    }

    #[test]
    fn version_is_the_digest_then_the_tag_then_latest() {
        let version = |reference: &str| Image::parse(reference).unwrap().version().to_owned();
        assert_eq!(version("registry:5000/mesh/sidecar:1.2"), "1.2");
        assert_eq!(version("registry:5000/mesh/sidecar"), "latest");
        assert_eq!(version("sidecar@sha256:abc"), "sha256:abc");
        assert_eq!(version("sidecar:1.2@sha256:abc"), "sha256:abc");
    }

    #[test]
    fn malformed_references_are_refused() {
        for reference in [
            "", "side car", "sidecar:", "/sidecar", "x/:1", "sidecar@", "a@b",
        ] {
            assert!(Image::parse(reference).is_err(), "{reference:?}");
        }
    }
}
