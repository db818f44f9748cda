//! Workload identities. (Being written: the API below is fixed.)

/// A validated workload identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(std::sync::Arc<str>);

/// A SPIFFE trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(std::sync::Arc<str>);
