//! Why the sidecar could not start: each error names the configuration
//! field behind it, so the message points at the line to fix.

use std::net::SocketAddr;

use mesh_core::BoxError;
use mesh_metrics::dashboard::InvalidDashboard;

use super::policy::PolicyError;

/// The sidecar could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Bind {
        /// The configuration field that names the listener.
        field: String,
        /// The address it asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
        /// How many sockets the listener takes: one per runtime thread
        /// (`server.threads`), which share its port.
        sockets: usize,
    },
    /// A runtime thread could not be started, or could not build its
    /// runtime (out of file descriptors, say). The threads started before
    /// it have stopped, and every listener is closed.
    Thread(std::io::Error),
    /// The identity could not be issued from the configured CA directory.
    Identity(BoxError),
    /// The policy could not be read or compiled.
    Policy(PolicyError),
    /// The dashboard's configuration was refused.
    Dashboard(InvalidDashboard),
    /// The TLS client configuration of an outbound service was refused.
    Tls {
        /// The configuration field that names the service.
        field: String,
        /// What rustls said.
        source: BoxError,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind {
                field,
                addr,
                source,
                sockets,
            } => {
                write!(f, "{field}: cannot listen on {addr}")?;
                // Out of file descriptors: the count of sockets, not the
                // address, is what to change.
                if *sockets > 1 && is_out_of_descriptors(source) {
                    write!(
                        f,
                        " with {sockets} sockets, one per runtime thread (server.threads)"
                    )?;
                }
                Ok(())
            }
            Self::Thread(_) => f.write_str("cannot start a runtime thread"),
            Self::Identity(_) => f.write_str("identity.ca: cannot issue the workload certificate"),
            Self::Policy(error) => write!(f, "{error}"),
            Self::Dashboard(_) => f.write_str("admin.dashboard: cannot start the dashboard"),
            Self::Tls { field, .. } => {
                write!(f, "{field}: cannot build the tls client configuration")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } | Self::Thread(source) => Some(source),
            Self::Identity(source) | Self::Tls { source, .. } => Some(&**source),
            Self::Policy(error) => error.source(),
            Self::Dashboard(error) => Some(error),
        }
    }
}

/// `EMFILE` or `ENFILE` (Linux's numbers): the process or the system has
/// no file descriptor left.
fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24))
}
