//! This crate will hold retries bounded by a Finagle-style budget, bounded replay of request bodies, per-try and total timeouts, and deadline propagation.
//!
//! It is a placeholder in the workspace today: it exports nothing yet, so that
//! no API appears finished before it is.
