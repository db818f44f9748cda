//! Reading a sidecar configuration in tests, and what every error in one
//! must say.

use std::path::PathBuf;

use mesh_examples::sidecar::config::{ConfigError, ConfigErrorKind, SidecarConfig};

/// `yaml` written to `sidecar.yaml` in a new directory, for a test that
/// hands the sidecar a path; the file lives as long as the directory.
pub fn file(yaml: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
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
