//! `EgressNetwork`: addresses outside the cluster, and whether a workload
//! may send traffic to them.

use mesh_core::resource::{ApiVersion, ObjectMeta, Resource};
use serde::Deserialize;

use super::Network;
use crate::egress::TrafficPolicy;

/// An `EgressNetwork` (`policy.linkerd.io/v1alpha1`, Linkerd 2.17+): a set
/// of addresses outside the cluster that the workloads of its namespace
/// (or of every namespace, in the global egress namespace) send traffic
/// to, allowed or refused by its `trafficPolicy`. See
/// [`egress`](crate::egress) for which one captures an address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressNetwork {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `EgressNetwork`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The networks and their policy.
    pub spec: EgressNetworkSpec,
}

impl Resource for EgressNetwork {
    const KIND: &'static str = "EgressNetwork";
    const API_VERSIONS: &'static [&'static str] = &["policy.linkerd.io/v1alpha1"];
}

/// `spec` of an [`EgressNetwork`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressNetworkSpec {
    /// `trafficPolicy`, required: `Allow` or `Deny`. Read as optional so
    /// that its absence is refused with the values it may take.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
    /// `networks`: the addresses captured. Absent (or `null`), every
    /// address outside the cluster networks; an empty list is refused, as
    /// Linkerd's admission webhook refuses it.
    #[serde(default)]
    pub networks: Option<Vec<Network>>,
}
