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
