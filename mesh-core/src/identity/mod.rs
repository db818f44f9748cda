//! Workload identities: the names that mTLS proves and policy compares.
//!
//! Authorization, metrics labels and the `mesh-client-id` header all name the
//! peer, and they do it by comparing names. A name that was never checked lets
//! two spellings of one workload (`Web.NS.svc` and `web.ns.svc`) count as two
//! peers, or lets a malformed one (`spiffe://td/ns/../admin`) get past a policy
//! that compares strings. So a name is validated once, where it enters the
//! mesh (a certificate SAN, a config file, a header from a trusted peer), and
//! from then on it is an [`Identity`] that layers compare, hash and clone
//! without looking inside. Both types hold an `Arc<str>`, so the clone that
//! goes into every request's extensions is a reference-count increment.
//!
//! # Forms
//!
//! An [`Identity`] is one of two forms:
//!
//! - A **SPIFFE ID**, `spiffe://<trust-domain>/<path>`, checked against the
//!   rules of the SPIFFE ID specification:
//!   - the scheme is exactly `spiffe://`;
//!   - the trust domain is non-empty, at most 255 bytes, and made only of
//!     lowercase `a-z`, digits, `.`, `-` and `_` (so uppercase is an error,
//!     not something to fold: two IDs are equal when their bytes are);
//!   - there is no userinfo (`user@`), no port (`:8443`), no query (`?`), no
//!     fragment (`#`) and no percent-encoding (`%`);
//!   - the path is empty (`spiffe://example.org` names the trust domain
//!     itself) or a sequence of `/segment`s, each non-empty, neither `.` nor
//!     `..`, and made only of `A-Z`, `a-z`, digits, `.`, `-` and `_`;
//!   - the path does not end with `/`;
//!   - the whole ID is at most 2048 bytes.
//! - A **DNS-style name**, as Linkerd issues them
//!   (`web.emojivoto.serviceaccount.identity.linkerd.cluster.local`): at least
//!   two dot-separated labels of `a-z`, digits and `-`, each 1 to 63 bytes
//!   and neither starting nor ending with `-`, at most 253 bytes in all, and a
//!   last label that is not all digits (which keeps IPv4 addresses out).
//!   DNS names are case-insensitive (RFC 4343), so uppercase letters are
//!   **folded to lowercase** rather than rejected: `Web.NS.svc` and
//!   `web.ns.svc` parse to the same, equal, identity.
//!
//! Anything else is an [`InvalidIdentity`] saying exactly which rule failed.
//!
//! ```
//! use mesh_core::identity::{Identity, InvalidIdentity, TrustDomain};
//!
//! let id: Identity = "spiffe://cluster.local/ns/emojivoto/sa/web".parse()?;
//! let td = TrustDomain::parse("cluster.local")?;
//! assert!(td.contains(&id));
//! assert_eq!(id.path(), Some("/ns/emojivoto/sa/web"));
//!
//! assert_eq!(Identity::parse("spiffe://cluster.local/ns/../sa"), Err(InvalidIdentity::DotSegment));
//! # Ok::<(), InvalidIdentity>(())
//! ```

use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};

mod error;
#[cfg(test)]
mod tests;
mod validate;

pub use self::error::InvalidIdentity;
use self::validate::{
    dns_name, has_other_scheme, split_authority, validate_path, validate_trust_domain,
};

/// The scheme, with its separator, that starts every SPIFFE ID.
const SPIFFE_SCHEME: &str = "spiffe://";

/// The longest SPIFFE ID, in bytes, scheme included (SPIFFE ID spec §2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The longest trust domain name, in bytes (SPIFFE ID spec §2.3).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// The longest DNS-style name, in bytes (RFC 1035, without the final dot).
pub const MAX_DNS_NAME_LEN: usize = 253;

/// The longest label of a DNS-style name, in bytes (RFC 1035).
pub const MAX_DNS_LABEL_LEN: usize = 63;

/// A validated workload identity: a SPIFFE ID or a DNS-style name.
///
/// See the [module docs](self) for the rules each form follows. Cloning is
/// cheap (an `Arc` increment). Equality, ordering and hashing compare the
/// bytes; DNS-style names are lowercase, so case never makes two equal names
/// differ.
///
/// With serde, an identity is a string, validated on the way in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identity(Arc<str>);

impl Identity {
    /// Parses a SPIFFE ID or a DNS-style name.
    ///
    /// A string that starts with `spiffe://` is a SPIFFE ID. One that carries
    /// any other URI scheme is rejected. Anything else is read as a
    /// DNS-style name, and its uppercase letters are folded to lowercase.
    ///
    /// # Errors
    ///
    /// Returns the first rule the string breaks, as an [`InvalidIdentity`].
    pub fn parse(s: &str) -> Result<Self, InvalidIdentity> {
        if s.is_empty() {
            return Err(InvalidIdentity::Empty);
        }
        if let Some(rest) = s.strip_prefix(SPIFFE_SCHEME) {
            if s.len() > MAX_SPIFFE_ID_LEN {
                return Err(InvalidIdentity::TooLong);
            }
            let (trust_domain, path) = split_authority(rest)?;
            validate_trust_domain(trust_domain)?;
            validate_path(path)?;
            return Ok(Self(Arc::from(s)));
        }
        if has_other_scheme(s) {
            return Err(InvalidIdentity::WrongScheme);
        }
        Ok(Self(Arc::from(dns_name(s)?)))
    }

    /// The identity as a string: the SPIFFE ID, or the lowercase DNS name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this identity is a SPIFFE ID (rather than a DNS-style name).
    pub fn is_spiffe(&self) -> bool {
        self.0.starts_with(SPIFFE_SCHEME)
    }

    /// The trust domain of a SPIFFE ID; `None` for a DNS-style name.
    ///
    /// This allocates a new [`TrustDomain`]; to compare without allocating,
    /// use [`trust_domain_name`](Self::trust_domain_name) or
    /// [`TrustDomain::contains`].
    pub fn trust_domain(&self) -> Option<TrustDomain> {
        self.trust_domain_name()
            .map(|name| TrustDomain(Arc::from(name)))
    }

    /// The trust domain name of a SPIFFE ID (`example.org` in
    /// `spiffe://example.org/web`); `None` for a DNS-style name.
    pub fn trust_domain_name(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(SPIFFE_SCHEME)?;
        Some(rest.split_once('/').map_or(rest, |(td, _)| td))
    }

    /// The path of a SPIFFE ID, with its leading `/` (`/ns/default/sa/web`).
    ///
    /// The path of a trust domain's own ID (`spiffe://example.org`) is the
    /// empty string. A DNS-style name has no path: `None`.
    pub fn path(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(SPIFFE_SCHEME)?;
        Some(rest.find('/').map_or("", |i| &rest[i..]))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Identity {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Identity {
    type Error = InvalidIdentity;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Identity {
    type Error = InvalidIdentity;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Identity> for String {
    fn from(id: Identity) -> Self {
        id.as_str().to_owned()
    }
}

impl AsRef<str> for Identity {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// A SPIFFE trust domain: the name of one root of trust (`example.org`).
///
/// Every SPIFFE ID belongs to exactly one trust domain, the authority part of
/// the ID. A trust domain name follows the same rules as in a SPIFFE ID:
/// lowercase `a-z`, digits, `.`, `-` and `_`, at most 255 bytes.
///
/// With serde, a trust domain is a string, validated on the way in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(Arc<str>);

impl TrustDomain {
    /// Parses a trust domain, given as a bare name (`example.org`) or as the
    /// trust domain's own SPIFFE ID (`spiffe://example.org`).
    ///
    /// # Errors
    ///
    /// Returns the first rule the name breaks. A SPIFFE ID with a path is
    /// [`InvalidIdentity::UnexpectedPath`]: it names a workload, not a trust
    /// domain.
    pub fn parse(s: &str) -> Result<Self, InvalidIdentity> {
        if s.is_empty() {
            return Err(InvalidIdentity::Empty);
        }
        let name = match s.strip_prefix(SPIFFE_SCHEME) {
            Some(rest) => {
                let (name, path) = split_authority(rest)?;
                if !path.is_empty() {
                    return Err(InvalidIdentity::UnexpectedPath);
                }
                name
            }
            None if has_other_scheme(s) => return Err(InvalidIdentity::WrongScheme),
            None => s,
        };
        validate_trust_domain(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The trust domain name, without a scheme (`example.org`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, with an empty path
    /// (`spiffe://example.org`). Its signing authority carries this ID.
    pub fn id(&self) -> Identity {
        let mut id = String::with_capacity(SPIFFE_SCHEME.len() + self.0.len());
        id.push_str(SPIFFE_SCHEME);
        id.push_str(&self.0);
        Identity(Arc::from(id))
    }

    /// Whether `id` is a SPIFFE ID in this trust domain.
    ///
    /// A DNS-style name is never contained: that Linkerd's names end with the
    /// trust domain is a naming convention, not something the name proves.
    /// This does not allocate.
    pub fn contains(&self, id: &Identity) -> bool {
        id.trust_domain_name() == Some(self.as_str())
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for TrustDomain {
    type Error = InvalidIdentity;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = InvalidIdentity;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TrustDomain> for String {
    fn from(td: TrustDomain) -> Self {
        td.as_str().to_owned()
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
