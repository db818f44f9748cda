//! Golden metrics for every request and connection, with Linkerd's names.

mod config;
mod family;
mod histogram;
pub mod http;
mod labels;
mod process;
pub mod query;
pub mod tcp;

pub use self::{
    config::MetricsConfig,
    histogram::LATENCY_BUCKETS_MS,
    http::{HttpMetrics, MetricsLayer},
    labels::Direction,
    process::{BuildInfo, register_process_metrics},
    tcp::{TcpAccept, TcpConnect, TcpMetrics},
};
