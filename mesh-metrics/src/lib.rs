//! This crate will hold Linkerd-compatible request, response and TCP metrics with bounded label cardinality, and the queries behind the stat, routes and top views.
//!
//! It is a placeholder in the workspace today: it exports nothing yet, so that
//! no API appears finished before it is.
