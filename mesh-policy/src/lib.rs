//! Authorization for the mesh, with the policy resources Linkerd users
//! already write.
//!
//! (crate docs are completed below)

mod default_policy;
mod evaluate;
mod metrics;
mod policy;
pub mod resource;
mod warnings;
mod workload;

pub use self::{
    default_policy::{DefaultPolicy, InvalidDefaultPolicy},
    evaluate::{Client, ClientTls},
    metrics::PolicyMetrics,
    policy::{
        AllowedConnection, AllowedRequest, AuthzKind, Compiled, ConnectionDecision, Decision,
        DeniedConnection, DeniedRequest, Policy, RouteNotFound,
    },
    resource::PolicySource,
    warnings::{PolicyWarning, PolicyWarnings, WarningKind},
    workload::{DEFAULT_PROBE_PATHS, PolicyConfig, Workload, default_cluster_networks},
};
