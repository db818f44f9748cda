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

/// The temporary directory and what the demo wrote to it.
#[derive(Debug)]
pub struct MeshFiles {
    dir: tempfile::TempDir,
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
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir()
            .map_err(DemoError::Files)?;
        std::fs::write(dir.path().join(PID_FILE), std::process::id().to_string())
            .map_err(DemoError::Files)?;
        let files = Self { dir };
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
        self.dir.path()
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

    /// Removes the directory and everything in it.
    ///
    /// # Errors
    ///
    /// When something in it cannot be removed.
    pub fn remove(self) -> io::Result<()> {
        self.dir.close()
    }
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
        match std::fs::remove_dir_all(&dir) {
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
    fn a_new_demo_directory_names_its_process() {
        let files = MeshFiles::create(&["web"]).unwrap();
        let pid = std::fs::read_to_string(files.path().join(PID_FILE)).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        files.remove().unwrap();
    }
}
