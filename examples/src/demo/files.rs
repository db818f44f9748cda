//! The demo's files: a CA, one certificate per workload, the mesh's
//! policy and one sidecar configuration per workload, in a temporary
//! directory that is removed when the demo ends.
//!
//! They are the files an operator would write by hand, so a reader can
//! open them while the demo runs: `sidecar certs ca` and `sidecar certs
//! issue` write the same certificate layout, and each `<workload>.yaml`
//! would start the same sidecar with `sidecar run --config`.
//!
//! The directory holds the CA's private key, so it must not outlive the
//! demo. The demo removes it on every exit it sees (the end of the run, an
//! error, Ctrl-C, SIGTERM, SIGHUP), but a process killed with SIGKILL runs
//! no code at all. So each directory names its demo's process in a `pid`
//! file, and the next demo removes the directories whose process is gone.
//!
//! The `pid` file is the first file written and the last removed, so a
//! directory is never without it while anything else is in it: a removal
//! that fails part-way (a process out of file descriptors, say) leaves a
//! directory the next demo still knows to remove, not keys that nothing
//! will ever claim. The removal also holds one directory open at a time,
//! where `std::fs::remove_dir_all` holds one per level, so it gets through
//! with the last descriptor a process has left.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use super::DemoError;
use crate::sidecar::certs;

/// The trust domain every workload's identity belongs to: Linkerd's
/// default.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The namespace the workloads live in, as in the guide.
pub const NAMESPACE: &str = "emojivoto";

/// How long the workload certificates live: longer than any demo run.
const CERT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The SPIFFE identity of a workload's service account, such as
/// `spiffe://cluster.local/ns/emojivoto/sa/web`.
pub fn identity(workload: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{workload}")
}

/// The temporary directory and what the demo wrote to it. Dropped, it
/// removes the directory as [`MeshFiles::remove`] does, and logs what it
/// could not remove.
#[derive(Debug)]
pub struct MeshFiles {
    dir: PathBuf,
    /// Whether [`MeshFiles::remove`] has run, successfully or not: then
    /// dropping it leaves the directory to what that returned.
    removed: bool,
}

impl MeshFiles {
    /// Makes the directory, a CA for [`TRUST_DOMAIN`], a certificate for
    /// each of `workloads`, and `policy.yaml` holding [`policy`].
    ///
    /// # Errors
    ///
    /// When a file cannot be written or the CA refuses.
    pub fn create(workloads: &[&str]) -> Result<Self, DemoError> {
        remove_abandoned(&std::env::temp_dir());
        // Only its owner may list it or reach the keys in it, whatever the
        // umask: they are private keys, if a demo's.
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(DemoError::Files)?
            .keep();
        // Until the pid file is in, the directory is empty: nothing to
        // read to remove it, which may well be what failed.
        if let Err(error) = std::fs::write(dir.join(PID_FILE), std::process::id().to_string()) {
            if let Err(removal) = std::fs::remove_dir(&dir) {
                tracing::error!(dir = %dir.display(), error = %removal, "cannot remove the demo's files");
            }
            return Err(DemoError::Files(error));
        }
        // From here on, a failure drops `files`, which removes them.
        let files = Self {
            dir,
            removed: false,
        };
        certs::create_ca(TRUST_DOMAIN, &files.ca()).map_err(DemoError::Certs)?;
        for workload in workloads {
            certs::issue(
                &files.ca(),
                &identity(workload),
                CERT_TTL,
                &files.certs(workload),
            )
            .map_err(DemoError::Certs)?;
        }
        std::fs::write(files.policy(), policy()).map_err(DemoError::Files)?;
        Ok(files)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn ca(&self) -> PathBuf {
        self.path().join("ca")
    }

    /// The directory of `workload`'s certificate, key and trust bundle.
    pub fn certs(&self, workload: &str) -> PathBuf {
        self.path().join("certs").join(workload)
    }

    /// The mesh's authorization policy.
    pub fn policy(&self) -> PathBuf {
        self.path().join("policy.yaml")
    }

    /// Writes `workload`'s sidecar configuration and returns its path.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_config(&self, workload: &str, yaml: &str) -> Result<PathBuf, DemoError> {
        let path = self.path().join(format!("{workload}.yaml"));
        std::fs::write(&path, yaml).map_err(DemoError::Files)?;
        Ok(path)
    }

    /// Removes the directory and everything in it, the `pid` file last:
    /// whatever cannot be removed stays in a directory that still names
    /// this process, and a demo started once it has gone removes it.
    ///
    /// # Errors
    ///
    /// When something in it cannot be removed.
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        remove_demo_dir(&self.dir)
    }
}

impl Drop for MeshFiles {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(error) = remove_demo_dir(&self.dir) {
            tracing::error!(dir = %self.dir.display(), %error, "cannot remove the demo's files");
        }
    }
}

/// Removes the demo directory `dir`: everything but its `pid` file, then
/// the `pid` file, then `dir`. Stops at the first failure, so that a
/// directory holding anything still holds its `pid` file.
fn remove_demo_dir(dir: &Path) -> io::Result<()> {
    for entry in entries(dir)? {
        if entry.file_name() != Some(PID_FILE.as_ref()) {
            remove_entry(&entry)?;
        }
    }
    match std::fs::remove_file(dir.join(PID_FILE)) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    std::fs::remove_dir(dir)
}

/// Removes `path`, a file, a symbolic link (not what it points at) or a
/// directory with everything in it.
fn remove_entry(path: &Path) -> io::Result<()> {
    if !std::fs::symlink_metadata(path)?.is_dir() {
        return std::fs::remove_file(path);
    }
    for entry in entries(path)? {
        remove_entry(&entry)?;
    }
    std::fs::remove_dir(path)
}

/// The paths in `dir`, read in full before anything is done with them:
/// the directory is closed again before any entry is removed, so a tree
/// of any depth is removed with one descriptor.
fn entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect()
}

/// What every demo directory's name starts with.
const PREFIX: &str = "mesh-demo-";

/// The file in a demo directory that holds its demo's process id.
const PID_FILE: &str = "pid";

/// Removes the demo directories under `root` whose demo process no longer
/// runs: those left by a demo killed with SIGKILL. A directory without a
/// `pid` file, or whose process runs, is left alone, and so is everything
/// when process ids cannot be looked up (no `/proc`): a directory of a
/// running demo is never taken. Nothing here is worth failing the demo
/// for, so what cannot be removed is logged.
fn remove_abandoned(root: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Ok(pid) = std::fs::read_to_string(dir.join(PID_FILE)) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        match remove_demo_dir(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), pid, "removed the files of a demo that was killed")
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot remove the files of a demo that was killed")
            }
        }
    }
}

/// The mesh's policy, as Linkerd users write it: a `Server` for each
/// workload's HTTP port, and an `AuthorizationPolicy` naming who may call
/// it. Once a Server covers a port, a call no policy allows is denied, so
/// `web` may call `emoji` and `voting`, `vote-bot` may call `web`, and
/// nothing else gets through. Every sidecar reads this one file and applies
/// the Servers whose `podSelector` matches its workload's labels, as every
/// proxy of a cluster reads the same resources.
pub fn policy() -> String {
    let mut yaml = String::new();
    for (server, callers) in [("web", "vote-bot"), ("emoji", "web"), ("voting", "web")] {
        let callers_id = identity(callers);
        yaml += &format!(
            "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: {server}-http, namespace: {NAMESPACE}}}
spec:
  podSelector: {{matchLabels: {{app: {server}}}}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: {server}-callers, namespace: {NAMESPACE}}}
spec:
  identities: [\"{callers_id}\"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: {server}-from-{callers}, namespace: {NAMESPACE}}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: {server}-http}}
  requiredAuthenticationRefs:
    - {{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: {server}-callers}}
---
"
        );
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A demo directory under `root` named `name`, whose `pid` file says
    /// `pid` (none when `None`).
    fn demo_dir(root: &Path, name: &str, pid: Option<&str>) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("ca.key"), "secret").unwrap();
        if let Some(pid) = pid {
            std::fs::write(dir.join(PID_FILE), pid).unwrap();
        }
        dir
    }

    #[test]
    fn only_directories_of_demos_that_are_gone_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // Above any pid_max Linux allows (2^22), so no process has it.
        let gone = "4194305";
        let killed = demo_dir(root.path(), "mesh-demo-killed", Some(gone));
        let running = demo_dir(
            root.path(),
            "mesh-demo-running",
            Some(&std::process::id().to_string()),
        );
        let unmarked = demo_dir(root.path(), "mesh-demo-unmarked", None);
        let garbled = demo_dir(root.path(), "mesh-demo-garbled", Some("web"));
        let other = demo_dir(root.path(), "someone-else", Some(gone));

        remove_abandoned(root.path());

        assert!(!killed.exists(), "the killed demo's CA key is still there");
        for kept in [running, unmarked, garbled, other] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }

    #[test]
    fn a_demo_directory_goes_whole_but_not_what_its_links_point_at() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "not the demo's").unwrap();
        let dir = demo_dir(root.path(), "mesh-demo-x", Some("1"));
        let certs = dir.join("certs").join("web");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("tls.key"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, certs.join("link")).unwrap();
        std::os::unix::fs::symlink(root.path(), dir.join("root")).unwrap();

        remove_demo_dir(&dir).unwrap();

        assert!(!dir.exists());
        assert!(outside.exists());
    }

    #[test]
    fn a_new_demo_directory_names_its_process_and_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let files = MeshFiles::create(&["web"]).unwrap();
        let pid = std::fs::read_to_string(files.path().join(PID_FILE)).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        let mode = std::fs::metadata(files.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        files.remove().unwrap();
    }
}
