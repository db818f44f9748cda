//! The workload a policy is compiled for, and the knobs that are not
//! resources.

use std::collections::BTreeMap;

use ipnet::IpNet;
use mesh_core::{Identity, TrustDomain, identity::InvalidIdentity};

use crate::DefaultPolicy;

/// The workload whose inbound traffic is authorized: what a pod spec would
/// say about it. `Server`s select it by its labels exactly as they select a
/// pod, and name its ports by number or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Its namespace. Resources without a namespace belong to it, as with
    /// `kubectl apply -n`.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its service account. Decisions do not depend on it (clients are
    /// authorized, not servers); explanations name it.
    pub service_account: String,
    /// Its named ports (`http` → 8080), for Servers that name a port.
    pub ports: BTreeMap<String, u16>,
    /// The cluster's networks, for the `cluster-*` default policies and
    /// the `ServerAuthorization`s that name no networks.
    /// Default: Linkerd's, `10.0.0.0/8`, `100.64.0.0/10`, `172.16.0.0/12`,
    /// `192.168.0.0/16` and `fd00::/8`.
    pub cluster_networks: Vec<IpNet>,
    /// The trust domain of mesh identities, for service account
    /// references. `None` means [`DEFAULT_TRUST_DOMAIN`].
    pub trust_domain: Option<TrustDomain>,
    /// The control plane's namespace, which Linkerd's DNS-style identities
    /// contain. Default `linkerd`. Taken in lowercase, as the other names
    /// are: Kubernetes names are lowercase and DNS-style identities are
    /// matched without regard to case, so `Linkerd` is `linkerd`.
    pub control_plane_namespace: String,
}

impl Workload {
    /// A workload in `namespace` with no labels or named ports, the
    /// `default` service account, and the defaults above.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            labels: BTreeMap::new(),
            service_account: "default".to_owned(),
            ports: BTreeMap::new(),
            cluster_networks: default_cluster_networks(),
            trust_domain: None,
            control_plane_namespace: "linkerd".to_owned(),
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Names a port.
    #[must_use]
    pub fn with_port(mut self, name: impl Into<String>, port: u16) -> Self {
        self.ports.insert(name.into(), port);
        self
    }

    /// Sets the service account.
    #[must_use]
    pub fn with_service_account(mut self, name: impl Into<String>) -> Self {
        self.service_account = name.into();
        self
    }

    /// Replaces the cluster networks.
    #[must_use]
    pub fn with_cluster_networks(mut self, networks: Vec<IpNet>) -> Self {
        self.cluster_networks = networks;
        self
    }

    /// Sets the trust domain.
    #[must_use]
    pub fn with_trust_domain(mut self, trust_domain: TrustDomain) -> Self {
        self.trust_domain = Some(trust_domain);
        self
    }

    /// The identities a service account has, in both forms the mesh
    /// issues:
    ///
    /// - `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`, the SPIFFE
    ///   form (as SPIRE and Istio name workloads);
    /// - `<name>.<namespace>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`,
    ///   Linkerd's DNS-style form.
    ///
    /// # Errors
    ///
    /// When the names do not make a valid identity (an empty name, a `/`),
    /// or the namespace has a `.` ([`InvalidIdentity::BadDnsChar`]): a
    /// namespace is a DNS label, and the DNS-style form of `x` in `a.b`
    /// would be that of the account `x.a` in the namespace `b`.
    ///
    /// Names are taken in lowercase, in both forms: Kubernetes names are
    /// lowercase, and Linkerd matches its DNS-style form without regard to
    /// case, so `Web` names the account `web`, whose SPIFFE ID is
    /// `.../sa/web`.
    pub fn service_account_identities(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<[Identity; 2], InvalidIdentity> {
        namespace_label(namespace)?;
        let (name, namespace) = (name.to_ascii_lowercase(), namespace.to_ascii_lowercase());
        let td = self.trust_domain_or_default();
        Ok([
            Identity::parse(&format!("spiffe://{td}/ns/{namespace}/sa/{name}"))?,
            Identity::parse(&format!("{name}.{namespace}{}", self.dns_tail()))?,
        ])
    }

    /// The DNS-style identities' tail after the namespace,
    /// `.serviceaccount.identity.<control-plane-ns>.<trust-domain>`, in
    /// lowercase as DNS-style identities are parsed to.
    fn dns_tail(&self) -> String {
        format!(
            ".serviceaccount.identity.{}.{}",
            self.control_plane_namespace.to_ascii_lowercase(),
            self.trust_domain_or_default()
        )
    }

    /// The trust domain, or [`DEFAULT_TRUST_DOMAIN`] when none is set.
    fn trust_domain_or_default(&self) -> &str {
        self.trust_domain
            .as_ref()
            .map_or(DEFAULT_TRUST_DOMAIN, TrustDomain::as_str)
    }

    /// The SPIFFE form of a service account identity written in Linkerd's
    /// DNS-style form under this workload's trust domain and control-plane
    /// namespace: `web.ns.serviceaccount.identity.linkerd.<td>` is
    /// `spiffe://<td>/ns/ns/sa/web` (and `build.bot.ns...`, an account
    /// whose name has a dot, `spiffe://<td>/ns/ns/sa/build.bot`), and
    /// `*.ns.serviceaccount...` every `spiffe://<td>/ns/ns/sa/` name; a
    /// wildcard over every namespace (`*.serviceaccount.identity.linkerd.<td>`,
    /// `*.linkerd.<td>`, `*.<td>`) every `spiffe://<td>/ns/<ns>/sa/<name>`.
    /// `None` for anything else (another trust domain, or a name that is
    /// not a service account's), which is matched only as written.
    ///
    /// Policies copied from Linkerd name clients this way, while the mesh
    /// issues SPIFFE IDs; both name the same service account, as
    /// [`service_account_identities`](Self::service_account_identities)
    /// says.
    pub(crate) fn spiffe_form(&self, written: &str) -> Option<SpiffeForm> {
        let td = self.trust_domain_or_default();
        let dns = written.to_ascii_lowercase();
        let tail = self.dns_tail();
        // A wildcard whose suffix is a whole-label tail of
        // `serviceaccount.identity.<cp>.<td>` (`*.cluster.local`,
        // `*.linkerd.cluster.local`) admits, in Linkerd's form, every
        // service account of every namespace: so, in the SPIFFE form, does
        // every `spiffe://<td>/ns/<ns>/sa/<name>`.
        if let Some(suffix) = dns.strip_prefix("*.")
            && let Some(accounts) = tail.strip_prefix('.')
            && (accounts == suffix
                || accounts
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.')))
        {
            return Some(SpiffeForm::TrustDomain(format!("spiffe://{td}/ns/")));
        }
        // The namespace is the last label before the tail: a namespace is
        // a DNS label, while a service account's name is a DNS subdomain
        // and may hold dots (`build.bot.ci...` is `build.bot` in `ci`).
        let (account, namespace) = dns.strip_suffix(&tail)?.rsplit_once('.')?;
        let label = |s: &str| !s.is_empty() && !s.contains(['.', '/', '*']);
        if !label(namespace) {
            return None;
        }
        let prefix = format!("spiffe://{td}/ns/{namespace}/sa/");
        match account {
            "*" => Some(SpiffeForm::Namespace(prefix)),
            // `*.bot.ci...` is a suffix over account names, which no SPIFFE
            // prefix says: matched as written only.
            name if name.split('.').all(label) => Identity::parse(&format!("{prefix}{name}"))
                .ok()
                .map(SpiffeForm::Exact),
            _ => None,
        }
    }

    /// What every service account of a namespace has in common, in both
    /// forms of [`service_account_identities`](Self::service_account_identities):
    /// the DNS-style suffix `<namespace>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`
    /// (which Linkerd writes `*.<namespace>...`) and the SPIFFE prefix
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/`.
    pub(crate) fn namespace_identities(
        &self,
        namespace: &str,
    ) -> Result<(Identity, String), InvalidIdentity> {
        // `*.a.b.serviceaccount...` would be the accounts of `b` whose
        // names end in `.a`, not a namespace `a.b`, which cannot exist.
        namespace_label(namespace)?;
        // In lowercase in both forms, as the DNS form is parsed to.
        let namespace = namespace.to_ascii_lowercase();
        let td = self.trust_domain_or_default();
        // Parsing the DNS form checks the name (not empty, no `/`).
        let suffix = Identity::parse(&format!("{namespace}{}", self.dns_tail()))?;
        Ok((suffix, format!("spiffe://{td}/ns/{namespace}/sa/")))
    }
}

/// Refuses a namespace with a `.`: Kubernetes namespaces are DNS labels,
/// and in the DNS-style identity form the label before `.serviceaccount`
/// is the namespace, so a dotted one would name another namespace.
fn namespace_label(namespace: &str) -> Result<(), InvalidIdentity> {
    if namespace.contains('.') {
        return Err(InvalidIdentity::BadDnsChar('.'));
    }
    Ok(())
}

/// A DNS-style identity's SPIFFE form ([`Workload::spiffe_form`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SpiffeForm {
    /// One service account.
    Exact(Identity),
    /// Every service account of a namespace: the SPIFFE prefix one more
    /// path segment completes.
    Namespace(String),
    /// Every service account of every namespace of the trust domain: the
    /// SPIFFE prefix `spiffe://<td>/ns/` that a namespace, `/sa/` and an
    /// account name complete.
    TrustDomain(String),
}

/// The trust domain of a workload that names none: Kubernetes' default
/// cluster domain, as Linkerd uses it.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// Linkerd's default `clusterNetworks`.
pub fn default_cluster_networks() -> Vec<IpNet> {
    [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fd00::/8",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// The probe paths allowed by default: `/live`, `/ready` and `/healthz`.
pub const DEFAULT_PROBE_PATHS: [&str; 3] = ["/live", "/ready", "/healthz"];

/// What a policy needs besides its resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The policy of ports no Server covers. Default
    /// [`DefaultPolicy::AllUnauthenticated`], as in Linkerd.
    pub default_policy: DefaultPolicy,
    /// Paths that `GET` requests may reach without authorization on
    /// servers that have no routes, so kubelet probes keep working under
    /// `deny`: ports no Server covers, and Servers whose `proxyProtocol`
    /// is not `gRPC` (as in Linkerd, a gRPC Server without `GRPCRoute`s
    /// has the default route alone). Default [`DEFAULT_PROBE_PATHS`].
    pub probe_paths: Vec<String>,
    /// The global egress namespace: its `EgressNetwork`s apply to clients
    /// of every namespace that has none of its own (see
    /// [`egress`](crate::egress)), where those of any other namespace
    /// apply to that namespace's clients only. Default
    /// [`DEFAULT_EGRESS_NAMESPACE`], as Linkerd's Helm value
    /// `egress.globalEgressNetworkNamespace`.
    pub egress_namespace: String,
}

/// The global egress namespace of a [`PolicyConfig`] that names none:
/// Linkerd's default, `linkerd-egress`.
pub const DEFAULT_EGRESS_NAMESPACE: &str = "linkerd-egress";

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            default_policy: DefaultPolicy::default(),
            probe_paths: DEFAULT_PROBE_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            egress_namespace: DEFAULT_EGRESS_NAMESPACE.to_owned(),
        }
    }
}

impl PolicyConfig {
    /// Sets the default policy.
    #[must_use]
    pub fn with_default_policy(mut self, policy: DefaultPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// Replaces the probe paths.
    #[must_use]
    pub fn with_probe_paths(mut self, paths: Vec<String>) -> Self {
        self.probe_paths = paths;
        self
    }

    /// Sets the global egress namespace.
    #[must_use]
    pub fn with_egress_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.egress_namespace = namespace.into();
        self
    }
}
