//! What the environment may change in a loaded configuration: only ingress
//! mode, which `sidecar inject` turns on per workload (see
//! [`INGRESS_MODE_ENV`]).

use std::ffi::OsString;

use super::locate::locate;
use super::resolve::Source;
use super::{ConfigError, ConfigErrorKind, SidecarConfig};

/// The environment variable that sets `outbound.ingress_mode` whatever
/// the file says: `true` or `false` (empty is the same as unset).
///
/// `sidecar inject` sets it to `true` on the sidecar of a workload
/// annotated `mesh.io/inject: ingress`, as Linkerd's injector sets
/// `LINKERD2_PROXY_INGRESS_MODE` for `linkerd.io/inject: ingress`: the
/// annotation, not the configuration file, says that the workload is an
/// ingress. [`SidecarConfig::load`] reads it; [`SidecarConfig::from_yaml`]
/// reads only the text it is given.
pub const INGRESS_MODE_ENV: &str = "MESH_INGRESS_MODE";

/// The origin errors about the environment name.
const ORIGIN: &str = "environment";

impl SidecarConfig {
    /// Applies [`INGRESS_MODE_ENV`], as `env` reads it.
    pub(super) fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let Some(value) = env(INGRESS_MODE_ENV).filter(|value| !value.is_empty()) else {
            return Ok(self);
        };
        self.outbound.ingress_mode = match value.to_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    ORIGIN,
                    INGRESS_MODE_ENV,
                    format!("invalid value {value:?} (expected true or false)"),
                ));
            }
        };
        Ok(self)
    }

    /// Logs a warning when the environment decided otherwise than the
    /// file `source` writes, as read into `written`: an operator reading
    /// `ingress_mode: true` should not have to guess why the sidecar runs
    /// without it. A file that leaves the field out, as `sidecar inject`
    /// expects of an ingress, is not overridden.
    pub(super) fn note_overrides(&self, written: &SidecarConfig, source: Source<'_>) {
        let (mode, file_mode) = (self.outbound.ingress_mode, written.outbound.ingress_mode);
        if mode == file_mode {
            return;
        }
        let Some(at) = locate(source.text, "outbound.ingress_mode") else {
            return;
        };
        tracing::warn!(
            "{INGRESS_MODE_ENV}={mode} overrides outbound.ingress_mode: {file_mode} \
             at {} line {}: ingress mode is {}",
            source.origin,
            at.line,
            if mode { "on" } else { "off" },
        );
    }
}
