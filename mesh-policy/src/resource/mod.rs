//! The policy resources, as users write them for Linkerd.
//!
//! Each kind is a serde type that reads the manifest as written; checks
//! that span fields or resources happen when a policy is compiled, with
//! errors that still name the document, kind, name, field and line.

mod authn;
mod authz;
mod egress;
mod ratelimit;
pub(crate) mod read;
mod selector;
mod server;

/// An optional list, with `null` read as left out: the API server drops a
/// `null` it is sent for a field, so `kubectl apply` takes a manifest
/// with `identities: null` as one without `identities`, and so must this
/// reader. Only for lists the CRDs do not require: a required one written
/// `null` is still refused, as the API server refuses it.
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(<Option<Vec<T>> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or_default())
}

pub(crate) use self::{
    authn::canonical as canonical_net,
    read::{Entry, Resources},
};
pub use self::{
    authn::{
        Cidr, InvalidCidr, MeshTlsAuthentication, MeshTlsAuthenticationSpec, Network,
        NetworkAuthentication, NetworkAuthenticationSpec, ObjectRef,
    },
    authz::{
        AuthorizationPolicy, AuthorizationPolicySpec, ClientSpec, MeshTlsClient,
        ServerAuthorization, ServerAuthorizationSpec, ServerRef, ServiceAccountRef,
    },
    egress::{EgressNetwork, EgressNetworkSpec},
    ratelimit::{HttpLocalRateLimitPolicy, HttpLocalRateLimitPolicySpec, Limit, RateLimitOverride},
    read::{PolicySource, read_sources},
    selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator},
    server::{PortRef, ProxyProtocol, Server, ServerSpec},
};
