//! The reference sidecar: inbound and outbound listeners and an admin server,
//! built from the mesh layers and configured from YAML.

pub mod config;
