//! `sidecar certs`: a development CA and workload certificates on disk.
//!
//! Production meshes get certificates from cert-manager or SPIRE. To try
//! the mesh on one machine, `sidecar certs ca` makes a trust anchor and an
//! issuer, and `sidecar certs issue` writes a workload certificate in the
//! layout the `identity.dir` setting reads (`tls.crt`, `tls.key`,
//! `ca.crt`, the layout of a Kubernetes TLS secret). Keys are written with
//! mode 0600. Both are thin over [`mesh_tls::ca`].
//!
//! ```
//! use std::time::Duration;
//! use mesh_examples::sidecar::certs;
//!
//! let dir = std::env::temp_dir().join(format!("certs-doc-{}", std::process::id()));
//! let ca = certs::create_ca("example.org", &dir.join("ca"))?;
//! assert_eq!(ca.trust_domain, "example.org");
//! let issued = certs::issue(
//!     &dir.join("ca"),
//!     "spiffe://example.org/ns/emojivoto/sa/web",
//!     Duration::from_secs(3600),
//!     &dir.join("web"),
//! )?;
//! assert!(issued.files.key.ends_with("tls.key"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::format_duration;
use mesh_core::{Identity, TrustDomain, identity::InvalidIdentity};
use mesh_tls::{CredentialFiles, ca};

/// A CA written by [`create_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCa {
    /// The directory holding it.
    pub dir: PathBuf,
    /// Its trust domain.
    pub trust_domain: String,
}

impl fmt::Display for CreatedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote a CA for trust domain {} to {}",
            self.trust_domain,
            self.dir.display()
        )
    }
}

/// A certificate written by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The identity it names.
    pub identity: String,
    /// The files written.
    pub files: CredentialFiles,
    /// How long it lives.
    pub ttl: Duration,
}

impl fmt::Display for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "issued {} for {} to {}",
            self.identity,
            format_duration(self.ttl),
            self.files
                .cert
                .parent()
                .map_or_else(|| self.files.cert.display(), Path::display)
        )
    }
}

/// Why a certificate command failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertsError {
    /// `--trust-domain` is not a trust domain.
    TrustDomain(InvalidValue),
    /// `--identity` is not an identity.
    Identity(InvalidValue),
    /// The CA refused or a file could not be written.
    Ca(ca::CaError),
}

/// A value given on the command line, and why it is not valid. The
/// message shows both, the value quoted and escaped (a control character
/// in it is shown, not sent to the terminal), so that a script's reader
/// sees what was passed and which part is wrong.
#[derive(Debug)]
pub struct InvalidValue {
    /// The value as given.
    pub given: String,
    /// Why it is not valid.
    pub reason: InvalidIdentity,
}

impl InvalidValue {
    fn new(given: &str) -> impl FnOnce(InvalidIdentity) -> Self {
        move |reason| Self {
            given: given.to_owned(),
            reason,
        }
    }
}

impl fmt::Display for CertsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reason is said here, on the one line, rather than as a cause.
        match self {
            Self::TrustDomain(InvalidValue { given, reason }) => {
                write!(
                    f,
                    "--trust-domain {given:?}: invalid trust domain: {reason}"
                )
            }
            Self::Identity(InvalidValue { given, reason }) => {
                write!(f, "--identity {given:?}: invalid identity: {reason}")
            }
            Self::Ca(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for CertsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TrustDomain(_) | Self::Identity(_) => None,
            Self::Ca(e) => e.source(),
        }
    }
}

/// `sidecar certs ca --trust-domain DOMAIN --out DIR`: a trust anchor and
/// an issuer for `trust_domain`, written to `out` (created if missing).
///
/// # Errors
///
/// An invalid trust domain, a CA already in `out` (replacing it would
/// invalidate everything it issued), or a file that cannot be written.
pub fn create_ca(trust_domain: &str, out: &Path) -> Result<CreatedCa, CertsError> {
    let domain = TrustDomain::parse(trust_domain)
        .map_err(InvalidValue::new(trust_domain))
        .map_err(CertsError::TrustDomain)?;
    let ca = ca::write_ca(out, &domain).map_err(CertsError::Ca)?;
    Ok(CreatedCa {
        dir: out.to_owned(),
        trust_domain: ca.trust_domain().as_str().to_owned(),
    })
}

/// `sidecar certs issue --ca DIR --identity ID --ttl 24h --out DIR`: a
/// workload certificate for `identity` living `ttl`, signed by the CA in
/// `ca_dir`, written to `out` as `tls.crt`, `tls.key` and `ca.crt`.
/// Existing files are replaced one by one, atomically, so a sidecar
/// watching them never reads half a file.
///
/// # Errors
///
/// An invalid identity, one outside the CA's trust domain, a lifetime the
/// CA refuses, or a file that cannot be read or written.
pub fn issue(
    ca_dir: &Path,
    identity: &str,
    ttl: Duration,
    out: &Path,
) -> Result<Issued, CertsError> {
    let id = Identity::parse(identity)
        .map_err(InvalidValue::new(identity))
        .map_err(CertsError::Identity)?;
    ca::issue(ca_dir, &id, ttl, out).map_err(CertsError::Ca)?;
    Ok(Issued {
        identity: id.as_str().to_owned(),
        files: CredentialFiles::in_dir(out),
        ttl,
    })
}
