//! The integration tests of this crate, built as one test binary: each file
//! is a module here. One binary links the dependency tree once, where a
//! binary per file linked it once per file. A test that changes or counts
//! something of its whole process (its allocations, its file descriptors, its
//! name) or runs itself again under limits keeps a binary of its own,
//! declared beside this one in `Cargo.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod admission;
mod authz_kinds;
mod batch_review;
mod decision_logs;
mod decisions;
mod default_rule;
mod default_server_port;
mod dual_stack;
mod e2e;
mod egress_network;
mod errors;
mod explain;
mod filters;
mod grpc_route;
mod host_confusion;
mod identity_refs;
mod l4_routes;
mod layer;
mod namespaces;
mod null_lists;
mod parity_labels;
mod passthrough;
mod path_backslash;
mod path_normalization;
mod precedence;
mod rate_limit_hook;
mod ratelimit;
mod ratelimit_error_header;
mod ratelimit_errors;
mod ratelimit_metrics;
mod ratelimit_redirect;
mod ratelimit_reload;
mod reference_checks;
mod reload;
mod reload_off_thread;
mod review_authz_semantics;
mod review_policy_semantics;
mod route_groups;
mod route_parents;
mod routes_without_rules;
mod selector_duplicate_labels;
mod server_authz_networks;
mod server_authz_pod_selector;
mod server_conflict;
mod servers;
mod strict_fields;
mod target_groups;
mod warning_namespaces;
