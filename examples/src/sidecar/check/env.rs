//! Variables named like the sidecar's own that it does not read.
//!
//! A misspelt `MESH_INBOUND_LISTEN_ADR` leaves the file's address, or the
//! default, in force, and the sidecar starts as if it were not there
//! ([`SidecarConfig::unknown_env_variables`] says why it is not refused).
//! The config check's lines show the address in force; this says why it
//! is not the one the pod's manifest sets.
//!
//! [`SidecarConfig::unknown_env_variables`]: crate::sidecar::config::SidecarConfig::unknown_env_variables

use std::ffi::OsString;

use super::Check;
use crate::sidecar::config::SidecarConfig;

/// A warning for each variable among `names` that starts with `MESH_`
/// (or `mesh_`, close to one it reads) and that the sidecar does not
/// read, with the one it probably means
/// when one is close; nothing when there is none.
pub(super) fn check(names: impl IntoIterator<Item = OsString>) -> Vec<Check> {
    SidecarConfig::unknown_env_variables(names)
        .into_iter()
        .map(|(name, meant)| {
            let check = Check::warn(
                format!("environment variable {name} is one the sidecar reads"),
                format!("the sidecar reads no {name}, and ignores it"),
            );
            match meant {
                Some(meant) => check.with_hint(format!("did you mean {meant}?")),
                None => check.with_hint(format!("unset {name}, or correct its name")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::check::Status;

    #[test]
    fn each_unknown_variable_warns_with_the_one_meant() {
        let names = [
            "MESH_ADMIN_LISTEN_ADR",
            "PATH",
            "MESH_INGRESS_MODE",
            "MESH_COLOUR",
        ];
        let checks = check(names.map(OsString::from));
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert_eq!(checks[0].status, Status::Warn);
        assert_eq!(
            checks[0].title,
            "environment variable MESH_ADMIN_LISTEN_ADR is one the sidecar reads"
        );
        assert_eq!(
            checks[0].detail.as_deref(),
            Some(
                "the sidecar reads no MESH_ADMIN_LISTEN_ADR, and ignores it\n\
                 did you mean MESH_ADMIN_LISTEN_ADDR?"
            )
        );
        assert_eq!(
            checks[0].hint.as_deref(),
            Some("did you mean MESH_ADMIN_LISTEN_ADDR?")
        );
        assert_eq!(
            checks[1].hint.as_deref(),
            Some("unset MESH_COLOUR, or correct its name")
        );
    }

    #[test]
    fn known_variables_pass_without_a_line() {
        let names = ["MESH_INGRESS_MODE", "RUST_LOG"];
        assert!(check(names.map(OsString::from)).is_empty());
    }
}
