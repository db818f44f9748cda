//! `AuthorizationPolicy` and `ServerAuthorization`: who may reach what.

use mesh_core::resource::{ApiVersion, ObjectMeta, Resource};
use serde::Deserialize;

use super::{LabelSelector, Network, ObjectRef};

/// An `AuthorizationPolicy` (`policy.linkerd.io/v1alpha1`): clients that
/// pass **all** the referenced authentications may reach the target.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `AuthorizationPolicy`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The policy.
    pub spec: AuthorizationPolicySpec,
}

impl Resource for AuthorizationPolicy {
    const KIND: &'static str = "AuthorizationPolicy";
    const API_VERSIONS: &'static [&'static str] = &["policy.linkerd.io/v1alpha1"];
}

/// `spec` of an [`AuthorizationPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// `targetRef`: a `Server`, an `HTTPRoute`, or the policy's own
    /// `Namespace` (every Server and route in it).
    pub target_ref: ObjectRef,
    /// `requiredAuthenticationRefs`: `MeshTLSAuthentication`,
    /// `NetworkAuthentication` or `ServiceAccount` references, all of which
    /// must match: at most one `MeshTLSAuthentication` or `ServiceAccount`,
    /// and at most one `NetworkAuthentication`, as in Linkerd.
    pub required_authentication_refs: Vec<ObjectRef>,
}

/// A `ServerAuthorization` (`policy.linkerd.io/v1beta1`, the older form):
/// a client description for the Servers it names or selects.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerAuthorization {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `ServerAuthorization`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The authorization.
    pub spec: ServerAuthorizationSpec,
}

impl Resource for ServerAuthorization {
    const KIND: &'static str = "ServerAuthorization";
    /// Linkerd serves `v1beta1` only; `v1beta2` is read the same way (with a
    /// warning) because published guides write it.
    const API_VERSIONS: &'static [&'static str] =
        &["policy.linkerd.io/v1beta1", "policy.linkerd.io/v1beta2"];
}

/// `spec` of a [`ServerAuthorization`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServerAuthorizationSpec {
    /// `server`: which Servers.
    pub server: ServerRef,
    /// `client`: which clients.
    pub client: ClientSpec,
}

/// `server` of a ServerAuthorization: exactly one of a name or a selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ServerRef {
    /// `name`: one Server in the namespace.
    #[serde(default)]
    pub name: Option<String>,
    /// `selector`: Servers in the namespace, by labels (see the crate docs
    /// for how this reads the guide's manifests).
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

/// `client` of a ServerAuthorization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    /// `unauthenticated: true`: any client, with or without TLS.
    #[serde(default)]
    pub unauthenticated: bool,
    /// `meshTLS`: clients with TLS, and which identities.
    #[serde(default, rename = "meshTLS")]
    pub mesh_tls: Option<MeshTlsClient>,
    /// `networks`: where clients may connect from; the workload's cluster
    /// networks when absent or empty, as in Linkerd (see the crate docs).
    #[serde(default)]
    pub networks: Option<Vec<Network>>,
}

/// `client.meshTLS` of a ServerAuthorization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTlsClient {
    /// `unauthenticatedTLS: true`: TLS clients, even without an identity.
    /// It admits every TLS client, so `identities` and `serviceAccounts`
    /// beside it are refused, as Linkerd's admission webhook refuses them.
    #[serde(default, rename = "unauthenticatedTLS")]
    pub unauthenticated_tls: bool,
    /// `identities`: as in a MeshTLSAuthentication. `null` is left out.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub identities: Vec<String>,
    /// `serviceAccounts`: service accounts by name and namespace. `null`
    /// is left out.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub service_accounts: Vec<ServiceAccountRef>,
}

/// A service account: a name, and a namespace (the referring resource's
/// when absent).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServiceAccountRef {
    /// `name`.
    pub name: String,
    /// `namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
}
