use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use mesh_core::{Identity, TrustDomain};

use super::{CaError, CaInput, CertificateAuthority, IssueRequest, IssuedCertificate};
use crate::creds::{BUNDLE_FILE, CERT_FILE, CredentialFiles, KEY_FILE, MAX_FILE_SIZE};

/// The trust anchor certificate in a CA directory: the trust bundle.
pub const CA_CERT_FILE: &str = "ca.crt";

/// The trust anchor key in a CA directory (mode 0600). Only needed to sign
/// a new issuer; keep it offline.
pub const CA_KEY_FILE: &str = "ca.key";

/// The issuer certificate in a CA directory.
pub const ISSUER_CERT_FILE: &str = "issuer.crt";

/// The issuer key in a CA directory (mode 0600).
pub const ISSUER_KEY_FILE: &str = "issuer.key";

/// Creates a trust anchor and an issuer for `trust_domain` and writes them
/// into `dir` (created if missing): what `sidecar certs ca` does.
///
/// # Errors
///
/// [`CaError::AlreadyExists`] when `dir` already holds a CA (replacing it
/// would invalidate everything it issued); [`CaError::Io`] when a file
/// cannot be written; and any error of
/// [`CertificateAuthority::generate`].
pub fn write_ca(dir: &Path, trust_domain: &TrustDomain) -> Result<CertificateAuthority, CaError> {
    let anchor = dir.join(CA_CERT_FILE);
    if anchor.exists() {
        return Err(CaError::AlreadyExists(anchor));
    }
    let ca = CertificateAuthority::generate(trust_domain.clone())?;
    ca.write(dir)?;
    Ok(ca)
}

/// Issues a certificate for `identity` living `ttl` from the CA in
/// `ca_dir`, and writes it into `out_dir` (created if missing): what
/// `sidecar certs issue` does. Existing files are replaced, each
/// atomically, so a watching store sees either the old file or the new,
/// and durably: once this returns, a crash does not bring the old ones
/// back.
///
/// # Errors
///
/// Loading the CA ([`CertificateAuthority::load`]), issuing
/// ([`CertificateAuthority::issue_with`]) or writing ([`CaError::Io`]).
pub fn issue(
    ca_dir: &Path,
    identity: &Identity,
    ttl: Duration,
    out_dir: &Path,
) -> Result<IssuedCertificate, CaError> {
    issue_with(
        ca_dir,
        &IssueRequest::new(identity.clone()).with_ttl(ttl),
        out_dir,
    )
}

/// Like [`issue`], with every field of an [`IssueRequest`].
///
/// # Errors
///
/// As [`issue`].
pub fn issue_with(
    ca_dir: &Path,
    request: &IssueRequest,
    out_dir: &Path,
) -> Result<IssuedCertificate, CaError> {
    let ca = CertificateAuthority::load(ca_dir)?;
    let issued = ca.issue_with(request)?;
    issued.write(out_dir)?;
    Ok(issued)
}

impl CertificateAuthority {
    /// Loads the CA that [`write_ca`] wrote into `dir`. The trust anchor's
    /// key is not needed.
    ///
    /// # Errors
    ///
    /// [`CaError::Io`] when a file cannot be read, and any error of
    /// [`CertificateAuthority::from_pem`] inside a [`CaError::InFile`]
    /// naming the file at fault. The CA loaded names `issuer.crt` the same
    /// way when it refuses to issue because the issuer (or its chain) has
    /// expired or is not valid yet, and `ca.crt` when the trust anchor has
    /// expired.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let anchor = dir.join(CA_CERT_FILE);
        let issuer = dir.join(ISSUER_CERT_FILE);
        let issuer_key = dir.join(ISSUER_KEY_FILE);
        let mut ca = Self::parse(&read(&anchor)?, &read(&issuer)?, &read(&issuer_key)?).map_err(
            |(input, source)| CaError::InFile {
                path: match input {
                    CaInput::Anchor => anchor.clone(),
                    CaInput::Issuer => issuer.clone(),
                    CaInput::IssuerKey => issuer_key,
                },
                source: Box::new(source),
            },
        )?;
        ca.issuer_file = Some(issuer);
        ca.anchor_file = Some(anchor);
        Ok(ca)
    }

    /// Writes the CA into `dir`, creating it if missing: the certificates,
    /// the issuer key and, for a CA generated here, the trust anchor's key.
    ///
    /// The trust anchor's certificate is written last: [`write_ca`] takes
    /// it for a complete CA and refuses to replace it, so a write that
    /// fails part-way (a full disk, an interrupted command) leaves no
    /// `ca.crt` without the keys beside it, and can be run again.
    ///
    /// # Errors
    ///
    /// [`CaError::Io`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), CaError> {
        create_dir(dir)?;
        if let Some(key) = &self.anchor_key_pem {
            write_file(&dir.join(CA_KEY_FILE), key, SECRET)?;
        }
        write_file(&dir.join(ISSUER_CERT_FILE), &self.issuer_pem, PUBLIC)?;
        write_file(
            &dir.join(ISSUER_KEY_FILE),
            &self.issuer.key().serialize_pem(),
            SECRET,
        )?;
        write_file(&dir.join(CA_CERT_FILE), &self.anchor_pem, PUBLIC)
    }
}

impl IssuedCertificate {
    /// Writes the chain, key and bundle into `dir` (created if missing) as
    /// [`CredentialFiles::in_dir`] expects them. The key is written first:
    /// a store watching the directory may briefly see a new key with the
    /// old certificate, keeps the old pair in service, and picks up the new
    /// pair on its next read, without logging or counting a refusal for
    /// the pair it saw half-written (see
    /// [`CredentialStore::watch_files`](crate::CredentialStore::watch_files)).
    ///
    /// # Errors
    ///
    /// [`CaError::Io`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<CredentialFiles, CaError> {
        create_dir(dir)?;
        write_file(&dir.join(KEY_FILE), self.key_pem(), SECRET)?;
        write_file(&dir.join(CERT_FILE), self.chain_pem(), PUBLIC)?;
        write_file(&dir.join(BUNDLE_FILE), self.bundle_pem(), PUBLIC)?;
        Ok(CredentialFiles::in_dir(dir))
    }
}

const PUBLIC: u32 = 0o644;
const SECRET: u32 = 0o600;

/// Reads a CA file, of at most [`MAX_FILE_SIZE`] like a credential file:
/// a path naming something endless is refused, not read until memory runs
/// out.
fn read(path: &Path) -> Result<String, CaError> {
    use std::io::Read;
    let mut contents = String::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_string(&mut contents))
        .map_err(|source| io_error(path, source))?;
    if contents.len() as u64 > MAX_FILE_SIZE {
        let source = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file holds more than 1 MiB, more than any certificate or key",
        );
        return Err(io_error(path, source));
    }
    Ok(contents)
}

/// Creates `dir` and its missing parents, durably: a new directory is an
/// entry of its parent, lost in a crash with everything written into it
/// unless the parent is synced too.
fn create_dir(dir: &Path) -> Result<(), CaError> {
    // The directories about to be created, deepest first.
    let created: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    for new in created.into_iter().rev() {
        sync_dir(parent_of(new)).map_err(|source| io_error(new, source))?;
    }
    Ok(())
}

/// Writes `contents` to a temporary file beside `path` with `mode`, syncs
/// it, renames it over `path` and syncs the directory: readers see the old
/// file or the new, never half of one, a key is never readable by others,
/// even briefly, and once this returns a crash keeps the new file (the
/// last good one of a rotation is never lost to a rename still in the
/// page cache).
///
/// The temporary file is always a new one: whatever sits at its name (a
/// file left by an interrupted write, or a symbolic link planted by
/// someone who can write to the directory) is removed first, and the file
/// is then created exclusively, which fails rather than follow a link that
/// appears in between. Opening the name as it was would write a private
/// key through such a link into the file it points at, and the rename
/// would then leave `path` itself a link to that file.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&tmp, e)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut file| {
        #[cfg(unix)]
        {
            // The process umask may have narrowed `mode` at creation:
            // public files are meant to be readable by all.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = renamed {
        // Given up: the temporary file (a key, perhaps) is not left lying
        // about under another name.
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, source));
    }
    sync_dir(parent_of(path)).map_err(|source| io_error(path, source))
}

/// The directory holding `path`: its parent, or the current directory for
/// a bare file name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Flushes `dir`'s entries to disk. A rename is durable only once the
/// directory holding it is: until then a crash may bring back the old
/// file, or, for a new name, no file at all, whatever was synced of the
/// file itself. Synced after each rename, the files of a CA or of a
/// renewal also reach the disk in the order they are written, which is
/// what [`CertificateAuthority::write`] relies on to write `ca.crt` last.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows has no handle on a directory to flush, and renames
        // through the journal of NTFS.
        let _ = dir;
        Ok(())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> CaError {
    CaError::Io {
        path: PathBuf::from(path),
        source,
    }
}
