//! The integration tests of this crate, built as one test binary: each file
//! is a module here. One binary links the dependency tree once, where a
//! binary per file linked it once per file. A test that changes or counts
//! something of its whole process (its allocations, its file descriptors, its
//! name) or runs itself again under limits keeps a binary of its own,
//! declared beside this one in `Cargo.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// Helpers the tests share.
mod support {
    pub(crate) mod accrual;
    pub(crate) mod answer;
    pub(crate) mod endless;
    pub(crate) mod h2_frames;
    pub(crate) mod header_echo;
    pub(crate) mod log_capture;
    pub(crate) mod orig_proto;
    pub(crate) mod paused_clock;
    pub(crate) mod proxy;
    pub(crate) mod queue;
    pub(crate) mod refused;
    pub(crate) mod unprocessed;
}

mod accrual_body;
mod accrual_timeouts;
mod admin;
mod admin_gzip;
mod admin_rebinding;
mod balancer_queue;
mod client_host;
mod client_liveness;
mod connect_backoff;
mod connect_given_up;
mod connect_outcome_unread;
mod detect;
mod detect_timeout_opaque;
mod engine_drain;
mod engine_tcp_half_close;
mod failfast_queue;
mod forward_headers;
mod http2_abuse;
mod http2_buffers;
mod http2_keep_alive;
mod limit;
mod merge_chained;
mod misc_admin;
mod misc_client_idle;
mod misc_client_pool;
mod misc_io;
mod per_peer_limit;
mod proxy_authority;
mod proxy_authority_pool;
mod proxy_closed_upstream;
mod proxy_connect_errors;
mod proxy_connect_warn;
mod proxy_failure_accrual;
mod proxy_failure_accrual_grpc;
mod proxy_pool;
mod proxy_response_heads;
mod proxy_review_accrual;
mod proxy_review_framing;
mod proxy_review_upgrade;
mod proxy_unprocessed;
mod proxy_upstream_cause;
mod queue_tcp;
mod rapid_reset_paced;
mod request_head_limit;
mod retirement;
mod review_admin_http;
mod review_balance_endpoints;
mod review_detect_io;
mod review_forward_orig_proto;
mod review_forward_paths;
mod review_new_connect_backoff;
mod review_passthrough_detect;
mod review_proxy_client_errors;
mod review_proxy_heads;
mod review_proxy_orig_proto;
mod review_proxy_pool;
mod review_proxy_tunnels;
mod review_resource_errors;
mod review_route_matching;
mod review_serve_detect;
mod review_serve_drain;
mod review_serve_grace;
mod review_serve_head_buffer;
mod review_serve_http1;
mod review_serve_rapid_reset;
mod review_serve_release;
mod review_stream_clock;
mod serve_connection_errors;
mod serve_flow_control_stall;
mod serve_logs;
mod serve_long_timeouts;
mod serve_peer_span;
mod serve_review_head_limit;
mod serve_review_limits;
mod serve_review_upgrades;
mod serve_shutdown_dropped;
mod serve_span_http2;
mod shutdown;
mod silent_hook_protocol;
mod slow_peers;
mod stream_idle;
mod stream_idle_h2_streams;
mod stream_idle_upgrade;
mod tcp_forward;
mod tcp_review_connect_warn;
mod tcp_review_reset;
mod tcp_review_upgrade_reset;
mod upgrade;
