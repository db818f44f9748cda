//! What happens to traffic that no authorization names.

use std::{fmt, str::FromStr};

use serde::Deserialize;

/// A default policy: for ports no `Server` covers, and, as a `Server`'s
/// `accessPolicy`, for requests on a covered port that no authorization
/// allows. The names and meanings are Linkerd's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultPolicy {
    /// Allow every client. Linkerd's default for uncovered ports.
    #[default]
    AllUnauthenticated,
    /// Allow clients with a mesh identity (mutual TLS), from anywhere.
    AllAuthenticated,
    /// Allow clients with a mesh identity whose address is in the cluster
    /// networks.
    ClusterAuthenticated,
    /// Allow clients whose address is in the cluster networks, with or
    /// without an identity.
    ClusterUnauthenticated,
    /// Allow nobody (probes excepted, on servers without routes).
    Deny,
    /// Allow every client, but count and log each request that a `deny`
    /// would have refused: a dry run.
    Audit,
}

impl DefaultPolicy {
    /// Every policy, in a fixed order.
    pub const ALL: [DefaultPolicy; 6] = [
        Self::AllUnauthenticated,
        Self::AllAuthenticated,
        Self::ClusterAuthenticated,
        Self::ClusterUnauthenticated,
        Self::Deny,
        Self::Audit,
    ];

    /// The name as written in configuration, such as `all-unauthenticated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::AllAuthenticated => "all-authenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DefaultPolicy {
    type Err = InvalidDefaultPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| InvalidDefaultPolicy(s.into()))
    }
}

/// A string that names no [`DefaultPolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDefaultPolicy(Box<str>);

impl fmt::Display for InvalidDefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown default policy {:?}: expected all-unauthenticated, all-authenticated, cluster-authenticated, cluster-unauthenticated, deny or audit",
            self.0
        )
    }
}

impl std::error::Error for InvalidDefaultPolicy {}
