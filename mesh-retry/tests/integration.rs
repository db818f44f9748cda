//! The integration tests of this crate, built as one test binary: each file
//! is a module here. One binary links the dependency tree once, where a
//! binary per file linked it once per file. A test that changes or counts
//! something of its whole process (its allocations, its file descriptors, its
//! name) or runs itself again under limits keeps a binary of its own,
//! declared beside this one in `Cargo.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
#[path = "../../mesh-core/tests/support/unprocessed.rs"]
mod unprocessed_support;

mod backoff;
mod bodies;
mod config;
mod config_annotations;
mod config_budget;
mod config_consumer;
mod config_dst_overrides;
mod config_duplicates;
mod config_hostnames;
mod config_profile_conditions;
mod config_profile_duplicates;
mod config_profile_names;
mod config_ranges;
mod config_traffic_split;
mod config_warning_namespaces;
mod deadline_under_a_millisecond;
mod default_rule_readers;
mod egress_l4_routes;
mod egress_routes;
mod expired;
mod grpc_route_precedence;
mod grpc_trailers_retry;
mod hot2_grpc_not_grpc;
mod hot2_zero_timeouts;
mod hot_ends;
mod hot_expired;
mod parity_annotations;
mod parity_grpc_statuses;
mod peek_last_attempt;
mod profile_classes_grpc;
mod profile_grpc_failures;
mod retry_held_response_cap;
mod retry_readiness_last_response;
mod retry_readiness_refused;
mod retry_shed_failfast;
mod review_bodies;
mod review_budget;
mod review_config_errors;
mod review_config_split;
mod review_config_split_profiles;
mod review_deadlines;
mod review_gateway_backoff;
mod review_path_bodies;
mod review_path_cancel;
mod review_path_replay;
mod review_path_wire;
mod review_profile_retries;
mod review_retry_after;
mod review_retry_readiness;
mod review_retry_shed;
mod route_precedence;
mod routes_without_rules;
mod service_l4_routes;
mod stack_grpc_trailers;
mod storm;
mod timeouts;
mod unprocessed;
