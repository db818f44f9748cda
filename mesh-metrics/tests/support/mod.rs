//! Helpers the tests share.

pub(crate) mod admin_stub;

// Addresses where nothing listens: mesh-core's tests' (its docs say why
// the ports are drawn where they are).
#[path = "../../../mesh-core/tests/support/refused.rs"]
pub(crate) mod refused;
