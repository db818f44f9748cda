//! The integration tests of this crate, built as one test binary: each file
//! is a module here. One binary links the dependency tree once, where a
//! binary per file linked it once per file. A test that changes or counts
//! something of its whole process (its allocations, its file descriptors, its
//! name) or runs itself again under limits keeps a binary of its own,
//! declared beside this one in `Cargo.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod access_log_types;
mod errors_layer;
mod errors_tunnel;
mod exposition;
mod golden_kinds;
mod http_error_type;
mod http_layer;
mod http_review_counting;
mod http_review_h2;
mod http_review_labels;
mod hyper_server;
mod overflow;
mod parity_route_classes;
mod query_top;
mod query_values;
mod review_as_dyn_error;
mod review_build_info;
mod review_exposition_folds;
mod review_latency;
mod review_new_metrics_errors;
mod review_observe_export;
mod review_observe_stack;
mod review_observe_tap;
mod review_observe_tap_filter;
mod review_query_errors;
mod review_query_top_window;
mod review_reset_h2;
mod review_short_body_tap_trace;
mod review_tcp_accounting;
mod review_views_numbers;
mod route_classify;
mod scrape;
mod stat_e2e;
mod tap_admin;
mod tap_allow;
mod tap_credentials;
mod tcp;
mod tcp_close_first_error;
mod tcp_error_paths;
mod trace_hyper;
