//! Authorization for the mesh, with the policy resources Linkerd users
//! already write.
//!
//! (crate docs are completed below)

pub mod authorize;
mod default_policy;
mod evaluate;
mod explain;
mod metrics;
pub mod opaque;
mod policy;
pub mod resource;
mod store;
mod warnings;
mod workload;

pub use self::{
    authorize::{Authorize, AuthorizeLayer},
    default_policy::{DefaultPolicy, InvalidDefaultPolicy},
    evaluate::{Client, ClientTls},
    explain::{ExplainQuery, ExplainedAuthz, Explanation},
    metrics::PolicyMetrics,
    opaque::{AuthorizeOpaque, AuthorizeOpaqueLayer},
    policy::{
        AllowedConnection, AllowedRequest, AuthzKind, Compiled, ConnectionDecision, Decision,
        DeniedConnection, DeniedRequest, Policy, RouteNotFound,
    },
    resource::PolicySource,
    store::{PolicyFiles, PolicyStore, PolicyTexts, PolicyWatcher},
    warnings::{PolicyWarning, PolicyWarnings, WarningKind},
    workload::{
        DEFAULT_PROBE_PATHS, DEFAULT_TRUST_DOMAIN, PolicyConfig, Workload, default_cluster_networks,
    },
};
