//! Compiled client requirements: identities and networks.

use std::{fmt, net::IpAddr, sync::Arc};

use ipnet::IpNet;
use mesh_core::{Identity, identity::InvalidIdentity};

use crate::{
    evaluate::{Client, ClientTls},
    resource::Network,
    workload::SpiffeForm,
};

/// Identities a requirement accepts, matched without allocating.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdentitySet {
    any: bool,
    /// Sorted, for a binary search: no hashing on the request path.
    exact: Vec<Box<str>>,
    /// DNS suffixes with their leading dot: `*.example.com` is
    /// `.example.com`.
    suffixes: Vec<Box<str>>,
    /// SPIFFE ID prefixes that one more path segment completes: a
    /// namespace's service accounts, `spiffe://td/ns/<ns>/sa/`.
    spiffe_prefixes: Vec<Box<str>>,
    /// SPIFFE ID prefixes, `spiffe://td/ns/`, that a namespace, `/sa/` and
    /// an account complete: every service account of a trust domain, as a
    /// DNS-style wildcard over all of its namespaces admits them.
    spiffe_domains: Vec<Box<str>>,
    /// As written, for explanations.
    written: Vec<String>,
}

impl IdentitySet {
    /// Any mesh identity.
    pub(crate) fn any() -> Self {
        Self {
            any: true,
            written: vec!["*".to_owned()],
            ..Self::default()
        }
    }

    /// Adds a pattern: `*`, `*.suffix`, or an exact identity.
    pub(crate) fn add_pattern(&mut self, pattern: &str) -> Result<(), InvalidIdentity> {
        if pattern == "*" {
            self.any = true;
        } else if let Some(suffix) = pattern.strip_prefix("*.") {
            // The suffix must itself be a valid DNS-style name.
            let suffix = Identity::parse(suffix)?;
            if suffix.is_spiffe() {
                return Err(InvalidIdentity::WrongScheme);
            }
            self.suffixes.push(format!(".{}", suffix.as_str()).into());
        } else {
            self.add(&Identity::parse(pattern)?);
            return Ok(());
        }
        self.written.push(pattern.to_owned());
        Ok(())
    }

    /// Adds a pattern as [`add_pattern`](Self::add_pattern) does, and, for
    /// a service account written in Linkerd's DNS-style form, its SPIFFE
    /// form too ([`Workload::spiffe_form`](crate::Workload)), so that a
    /// policy copied from Linkerd admits the same clients here.
    pub(crate) fn add_written(
        &mut self,
        pattern: &str,
        workload: &crate::Workload,
    ) -> Result<(), InvalidIdentity> {
        self.add_pattern(pattern)?;
        // Listed too, so that an explanation names what the set admits.
        match workload.spiffe_form(pattern) {
            Some(SpiffeForm::Exact(id)) => {
                self.insert_exact(&id);
                self.written.push(id.as_str().to_owned());
            }
            Some(SpiffeForm::Namespace(prefix)) => {
                self.written.push(format!("{prefix}*"));
                self.spiffe_prefixes.push(prefix.into());
            }
            Some(SpiffeForm::TrustDomain(prefix)) => {
                self.written.push(format!("{prefix}*/sa/*"));
                self.spiffe_domains.push(prefix.into());
            }
            None => {}
        }
        Ok(())
    }

    /// Adds an exact identity.
    pub(crate) fn add(&mut self, id: &Identity) {
        self.written.push(id.as_str().to_owned());
        self.insert_exact(id);
    }

    /// Puts `id` among the exact identities, kept sorted and without
    /// repeats.
    fn insert_exact(&mut self, id: &Identity) {
        if let Err(at) = self.exact.binary_search_by(|e| (**e).cmp(id.as_str())) {
            self.exact.insert(at, id.as_str().into());
        }
    }

    /// Adds every service account of a namespace, in both forms
    /// ([`Workload::namespace_identities`](crate::Workload)).
    pub(crate) fn add_namespace(&mut self, dns_suffix: &Identity, spiffe_prefix: &str) {
        self.suffixes
            .push(format!(".{}", dns_suffix.as_str()).into());
        self.spiffe_prefixes.push(spiffe_prefix.into());
        self.written.push(format!("*.{}", dns_suffix.as_str()));
        self.written.push(format!("{spiffe_prefix}*"));
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any
            && self.exact.is_empty()
            && self.suffixes.is_empty()
            && self.spiffe_prefixes.is_empty()
            && self.spiffe_domains.is_empty()
    }

    /// Whether `other` matches exactly the identities this set does, as
    /// written in any order.
    pub(crate) fn same_identities(&self, other: &Self) -> bool {
        fn sorted(v: &[Box<str>]) -> Vec<&str> {
            let mut v: Vec<&str> = v.iter().map(|s| &**s).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        self.any == other.any
            && self.exact == other.exact
            && sorted(&self.suffixes) == sorted(&other.suffixes)
            && sorted(&self.spiffe_prefixes) == sorted(&other.spiffe_prefixes)
            && sorted(&self.spiffe_domains) == sorted(&other.spiffe_domains)
    }

    #[inline]
    pub(crate) fn matches(&self, id: &Identity) -> bool {
        let id = id.as_str();
        self.any
            || self.exact.binary_search_by(|e| (**e).cmp(id)).is_ok()
            || if id.starts_with("spiffe://") {
                self.spiffe_prefixes.iter().any(|p| {
                    id.strip_prefix(&**p)
                        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
                }) || self.spiffe_domains.iter().any(|p| {
                    id.strip_prefix(&**p)
                        .and_then(|rest| rest.split_once("/sa/"))
                        .is_some_and(|(ns, name)| {
                            [ns, name].iter().all(|s| !s.is_empty() && !s.contains('/'))
                        })
                })
            } else {
                self.suffixes.iter().any(|s| id.ends_with(&**s))
            }
    }
}

impl fmt::Display for IdentitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written.join(", "))
    }
}

/// Networks a requirement accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct NetworkSet {
    networks: Vec<Network>,
}

impl NetworkSet {
    pub(crate) fn new(networks: Vec<Network>) -> Self {
        Self { networks }
    }

    pub(crate) fn from_nets(nets: &[IpNet]) -> Self {
        Self::new(
            nets.iter()
                .map(|n| Network {
                    cidr: crate::resource::Cidr(crate::resource::canonical_net(*n)),
                    except: Vec::new(),
                })
                .collect(),
        )
    }

    pub(crate) fn contains(&self, addr: &IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(addr))
    }
}

impl fmt::Display for NetworkSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", n.cidr)?;
            if !n.except.is_empty() {
                let except: Vec<_> = n.except.iter().map(ToString::to_string).collect();
                write!(f, " except {}", except.join(", "))?;
            }
        }
        Ok(())
    }
}

/// One condition on the client. An authorization holds a list, all of
/// which must hold.
#[derive(Clone, Debug)]
pub(crate) enum Requirement {
    /// The connection is TLS the mesh terminated, with or without a
    /// client identity: TLS passed through to the application is not.
    Tls,
    /// The client has a mesh identity in the set. `from` names the
    /// authentication it came from.
    Identity { from: Arc<str>, set: IdentitySet },
    /// The client's address is in the set.
    Network { from: Arc<str>, set: NetworkSet },
}

impl Requirement {
    #[inline]
    pub(crate) fn allows(&self, client: &Client<'_>) -> bool {
        match self {
            Self::Tls => matches!(client.tls, ClientTls::NoClientCert | ClientTls::Mutual(_)),
            Self::Identity { set, .. } => client.identity().is_some_and(|id| set.matches(id)),
            // A mapped address (`::ffff:10.0.0.5`) is the IPv4 address it
            // carries, however the client was built: IPv4 networks and
            // their exceptions must decide it, not `::/0`.
            Self::Network { set, .. } => {
                client.addr.is_some_and(|a| set.contains(&a.to_canonical()))
            }
        }
    }

    /// What the requirement asks for, in words.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Tls => "TLS, with or without a client certificate".to_owned(),
            Self::Identity { from, set } => format!("an identity in [{set}] ({from})"),
            Self::Network { from, set } => format!("an address in [{set}] ({from})"),
        }
    }

    /// Whether the requirement holds for `client`, and why, in words.
    pub(crate) fn explain(&self, client: &Client<'_>) -> String {
        let verdict = if self.allows(client) { "ok" } else { "failed" };
        let seen = match (self, client.tls, client.addr) {
            (Self::Network { .. }, _, Some(addr)) => format!("client address {addr}"),
            (Self::Network { .. }, _, None) => "no client address".to_owned(),
            (_, ClientTls::Plaintext, _) => "client is plaintext".to_owned(),
            (_, ClientTls::NoClientCert, _) => "client has no certificate".to_owned(),
            (_, ClientTls::Mutual(id), _) => format!("client is {id}"),
            (_, ClientTls::Passthrough(sni), _) => {
                format!("client's tls for {sni} was passed through")
            }
        };
        format!("needs {}: {seen}: {verdict}", self.describe())
    }
}

/// What kind of rule an authorization is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthzKind {
    /// An `AuthorizationPolicy`.
    AuthorizationPolicy,
    /// A `ServerAuthorization`.
    ServerAuthorization,
    /// The probe exception of a server without routes.
    Probe,
    /// A default policy or a Server's `accessPolicy`.
    Default,
}

impl AuthzKind {
    /// The kind as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationPolicy => "authorizationpolicy",
            Self::ServerAuthorization => "serverauthorization",
            Self::Probe => "probe",
            Self::Default => "default",
        }
    }
}

/// A compiled authorization: a name and requirements that must all hold.
#[derive(Debug)]
pub(crate) struct Authz {
    pub(crate) name: Arc<str>,
    pub(crate) kind: AuthzKind,
    pub(crate) requirements: Vec<Requirement>,
}

impl Authz {
    #[inline]
    pub(crate) fn allows(&self, client: &Client<'_>) -> bool {
        self.requirements.iter().all(|r| r.allows(client))
    }
}
