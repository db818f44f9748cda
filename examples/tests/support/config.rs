//! Reading a sidecar configuration in tests, and what every error in one
//! must say.

use std::path::{Path, PathBuf};

use mesh_examples::sidecar::{
    check::{self, CheckOptions, Report},
    config::{ConfigError, ConfigErrorKind, SidecarConfig},
};

/// `yaml` written to `sidecar.yaml` in a new directory, for a test that
/// hands the sidecar a path; the file lives as long as the directory.
pub fn file(yaml: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// What `sidecar check --pre` says of the identity files in `certs`, for
/// a configuration written to `dir/sidecar.yaml` whose listeners and
/// application are all on loopback.
pub async fn check_identity(dir: &Path, certs: &Path) -> Report {
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "identity:\n  dir: {}\n  trust_domain: example.org\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n",
        certs.display(),
        app.local_addr().unwrap()
    );
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, config).unwrap();
    check::run(&path, &CheckOptions::default().with_pre(true)).await
}

/// `yaml`, read as the file `sidecar.yaml`.
pub fn parse(yaml: &str) -> Result<SidecarConfig, ConfigError> {
    SidecarConfig::from_yaml(yaml, "sidecar.yaml")
}

/// The error `yaml` is rejected with; fails the test if it is accepted.
#[track_caller]
pub fn reject(yaml: &str) -> ConfigError {
    match parse(yaml) {
        Ok(config) => panic!("accepted {yaml:?} as {config:#?}"),
        Err(error) => error,
    }
}

/// Asserts what every error must say: its kind, the field and the line,
/// on one line that starts with the file and then the field, if any.
#[track_caller]
pub fn assert_error(error: &ConfigError, kind: ConfigErrorKind, path: &str, line: usize) {
    assert_eq!(error.kind(), kind, "{error}");
    assert_eq!(error.field_path(), path, "{error}");
    assert_eq!(error.line(), Some(line), "{error}");
    let text = error.to_string();
    let start = if path.is_empty() {
        "sidecar.yaml: ".to_owned()
    } else {
        format!("sidecar.yaml: {path}: ")
    };
    assert!(text.starts_with(&start), "{text}");
    assert!(text.contains(&format!(" at line {line} ")), "{text}");
    assert!(!text.contains('\n'), "{text}");
}
