//! The demo's files: a CA, one certificate per workload, the mesh's
//! policy and one sidecar configuration per workload, in a temporary
//! directory that is removed when the demo ends.
//!
//! They are the files an operator would write by hand, so a reader can
//! open them while the demo runs: `sidecar certs ca` and `sidecar certs
//! issue` write the same certificate layout, and each `<workload>.yaml`
//! would start the same sidecar with `sidecar run --config`.

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
        let dir = tempfile::Builder::new()
            .prefix("mesh-demo-")
            .tempdir()
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
