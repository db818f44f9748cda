//! `HTTPLocalRateLimitPolicy`: how many requests a Server takes.

use mesh_core::resource::{ApiVersion, ObjectMeta, Resource};
use serde::Deserialize;

use super::ObjectRef;

/// An `HTTPLocalRateLimitPolicy` (`policy.linkerd.io/v1alpha1`, Linkerd
/// 2.17 and later): limits on the HTTP requests one Server admits, in total
/// and per client identity. "Local" because each workload counts its own
/// requests; nothing is shared between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpLocalRateLimitPolicy {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `HTTPLocalRateLimitPolicy`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The limits.
    pub spec: HttpLocalRateLimitPolicySpec,
}

impl Resource for HttpLocalRateLimitPolicy {
    const KIND: &'static str = "HTTPLocalRateLimitPolicy";
    const API_VERSIONS: &'static [&'static str] = &["policy.linkerd.io/v1alpha1"];
}

/// `spec` of an [`HttpLocalRateLimitPolicy`]. Every limit is optional; a
/// request must pass each one that applies to it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpLocalRateLimitPolicySpec {
    /// `targetRef`: the `Server` in the policy's namespace whose requests
    /// are limited. Linkerd accepts no other kind.
    pub target_ref: ObjectRef,
    /// `total`: the limit on every request to the Server together.
    #[serde(default)]
    pub total: Option<Limit>,
    /// `identity`: the limit on each client identity's requests; clients
    /// without an identity share one such limit.
    #[serde(default)]
    pub identity: Option<Limit>,
    /// `overrides`: other limits for the clients they name, in place of
    /// `identity`. `null` is left out.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub overrides: Vec<RateLimitOverride>,
}

/// A rate: `{requestsPerSecond: N}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// `requestsPerSecond`, as written: compiling rejects values that are
    /// not between 1 and 4294967295 (Linkerd's `u32`).
    pub requests_per_second: i64,
}

/// One `overrides` entry: a rate for the clients it names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitOverride {
    /// `requestsPerSecond`, as in [`Limit`].
    pub requests_per_second: i64,
    /// `clientRefs`: `ServiceAccount`s, whose identities take this rate.
    pub client_refs: Vec<ObjectRef>,
}
