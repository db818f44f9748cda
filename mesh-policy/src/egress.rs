//! Egress networks: which traffic leaving the cluster a workload may send.
//!
//! Linkerd 2.17 and later describe destinations outside the cluster with
//! the `EgressNetwork` resource (`policy.linkerd.io/v1alpha1`,
//! <https://linkerd.io/2.17/reference/egress-network/>), so that traffic
//! to them can be observed and allowed or refused like traffic to a
//! service. A request whose destination no service names goes to the
//! `EgressNetwork` that captures its address, and its `trafficPolicy`
//! (`Allow` or `Deny`) decides it.
//!
//! Which network captures an address is decided as Linkerd's policy
//! controller decides it (`resolve_egress_network` in linkerd2's
//! `policy-controller`):
//!
//! 1. A workload's candidates are the `EgressNetwork`s of its own
//!    namespace if there is any, even when none of them captures the
//!    address; otherwise those of the global egress namespace
//!    ([`PolicyConfig::egress_namespace`](crate::PolicyConfig::egress_namespace),
//!    Linkerd's `egress.globalEgressNetworkNamespace`, `linkerd-egress`
//!    by default). Those of other namespaces apply to other workloads.
//! 2. A network captures an address when one of its `networks` contains it
//!    (its `cidr` does and none of its `except` does). One without
//!    `networks` captures every address outside
//!    [`Workload::cluster_networks`](crate::Workload::cluster_networks):
//!    `0.0.0.0/0` and `::/0`, each except the cluster networks of its
//!    family.
//! 3. Of the candidates that capture it, the one whose matching block is
//!    the smallest wins; then the older by `metadata.creationTimestamp`
//!    (one without a timestamp after those with one, as routes and
//!    Servers are ordered); then the first by namespace, then name.
//!
//! A block's size is, as in Linkerd (`Network::block_size`), the addresses
//! of its `cidr` less those of its `except`: `0.0.0.0/0` except the
//! cluster networks (a network without `networks`) is smaller than a
//! written `0.0.0.0/0`, and `10.0.0.0/16` except all but `10.0.224.0/19`
//! is smaller than `10.0.192.0/18`. Addresses are counted exactly, where
//! Linkerd counts `ipnet`'s hosts: it leaves two addresses out of each
//! IPv4 block larger than a /31 (so blocks that cover the same addresses
//! can differ in size there, and tie here), adds up exceptions that
//! overlap (counted once here), and cannot count an IPv6 block of a /64
//! or more (its count overflows).
//!
//! [`EgressNetworks`] is built once per compiled policy, with every block
//! sorted in that order, so [`EgressNetworks::find`] is a scan that stops
//! at the first block containing the address, and allocates nothing.

use std::{cmp::Ordering, fmt, net::IpAddr, sync::Arc};

use ipnet::IpNet;
use mesh_core::resource::Timestamp;
use serde::{Deserialize, Deserializer, de};

use crate::resource::{Cidr, Network};

/// An `EgressNetwork`'s `trafficPolicy`: what happens to the traffic it
/// captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrafficPolicy {
    /// `Allow`: the traffic leaves the mesh to its destination.
    Allow,
    /// `Deny`: the traffic is refused.
    Deny,
}

impl TrafficPolicy {
    /// The values Linkerd's CRD allows, as written.
    pub const VALUES: [&'static str; 2] = ["Allow", "Deny"];

    /// The name as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        }
    }
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrafficPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = TrafficPolicy;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Allow or Deny")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<TrafficPolicy, E> {
                match value {
                    "Allow" => Ok(TrafficPolicy::Allow),
                    "Deny" => Ok(TrafficPolicy::Deny),
                    // The CRD's enum is case-sensitive: the API server
                    // refuses `allow`, so it is refused here too.
                    other => Err(E::custom(format_args!(
                        "trafficPolicy {other:?} is not one of Allow and Deny (written so, as Linkerd's CRD spells them)"
                    ))),
                }
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// An `EgressNetwork` that applies to the workload, as compiled: its
/// networks are those written, or for one without `networks` the
/// addresses outside the cluster networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressNetwork {
    name: Arc<str>,
    namespace: Arc<str>,
    traffic_policy: TrafficPolicy,
    networks: Vec<Network>,
    written: bool,
    created: Option<Timestamp>,
}

impl EgressNetwork {
    /// The network `name` of `namespace`, with the `networks` written, or
    /// when `None`, those outside `cluster_networks`.
    pub(crate) fn new(
        name: &str,
        namespace: &str,
        traffic_policy: TrafficPolicy,
        networks: Option<&[Network]>,
        cluster_networks: &[IpNet],
        created: Option<Timestamp>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            traffic_policy,
            written: networks.is_some(),
            networks: networks.map_or_else(|| outside(cluster_networks), <[Network]>::to_vec),
            created,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`, or the workload's when the document has none.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// [`name`](Self::name), shared: what a caller that keeps the network's
    /// name for each request it sends there clones without copying it.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// [`namespace`](Self::namespace), shared as
    /// [`shared_name`](Self::shared_name) is.
    pub fn shared_namespace(&self) -> &Arc<str> {
        &self.namespace
    }

    /// `spec.trafficPolicy`.
    pub fn traffic_policy(&self) -> TrafficPolicy {
        self.traffic_policy
    }

    /// The networks it captures: `spec.networks`, or when the document has
    /// none, `0.0.0.0/0` and `::/0` except the cluster networks.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// Whether [`networks`](Self::networks) are those written in
    /// `spec.networks`, rather than those outside the cluster networks.
    pub fn networks_written(&self) -> bool {
        self.written
    }

    /// `metadata.creationTimestamp`, if the document has one.
    pub fn created(&self) -> Option<Timestamp> {
        self.created
    }

    /// The order among networks whose matching blocks are the same size:
    /// the older first, one without a timestamp after those with one;
    /// then by namespace, then name.
    fn precedence(&self, other: &Self) -> Ordering {
        Timestamp::older_first(self.created, other.created)
            .then_with(|| self.namespace.cmp(&other.namespace))
            .then_with(|| self.name.cmp(&other.name))
    }
}

/// Every address outside `cluster_networks`: `0.0.0.0/0` except the IPv4
/// ones, `::/0` except the IPv6 ones, as Linkerd's policy controller
/// defaults an `EgressNetwork` without `networks`.
fn outside(cluster_networks: &[IpNet]) -> Vec<Network> {
    let [mut v4, mut v6] = Network::all();
    for net in cluster_networks {
        let net = crate::resource::canonical_net(*net);
        match net {
            IpNet::V4(_) => v4.except.push(Cidr(net)),
            IpNet::V6(_) => v6.except.push(Cidr(net)),
        }
    }
    vec![v4, v6]
}

/// The egress networks that apply to one workload, ready for lookups.
///
/// [`Default`] holds none, and finds nothing.
#[derive(Clone, Debug, Default)]
pub struct EgressNetworks {
    /// The candidates (the workload's namespace's, else the global
    /// namespace's), in [`EgressNetwork::precedence`] order.
    networks: Vec<EgressNetwork>,
    /// Every IPv4 block of the candidates, the smallest first, then by
    /// their network's precedence.
    v4: Vec<Block>,
    /// As `v4`, for IPv6.
    v6: Vec<Block>,
}

/// One entry of one network's `networks`, for lookups.
#[derive(Clone, Debug)]
struct Block {
    cidr: IpNet,
    except: Vec<IpNet>,
    /// How many addresses it captures, less one (so that all of `::/0`
    /// fits): those of `cidr` not in `except`. The smallest wins.
    size: u128,
    /// Its network, by index into [`EgressNetworks::networks`].
    network: usize,
}

impl Block {
    fn new(cidr: IpNet, except: Vec<IpNet>, network: usize) -> Self {
        Self {
            size: captured_less_one(cidr, &except),
            cidr,
            except,
            network,
        }
    }
}

/// The number of addresses of `cidr` outside every one of `except`, less
/// one; `0` when the exceptions cover it all (it then captures nothing,
/// and its rank does not matter). An exception inside another is counted
/// once.
fn captured_less_one(cidr: IpNet, except: &[IpNet]) -> u128 {
    let host_bits = |net: &IpNet| u32::from(net.max_prefix_len() - net.prefix_len());
    // 2^bits, which for a whole family's IPv6 space does not fit: it is
    // then `u128::MAX`, and the subtractions below saturate.
    let addresses = |net: &IpNet| 1u128.checked_shl(host_bits(net)).unwrap_or(u128::MAX);
    let all_less_one = match host_bits(&cidr) {
        0 => 0,
        bits => u128::MAX >> (128 - bits),
    };
    let mut excepted: u128 = 0;
    for (i, e) in except.iter().enumerate() {
        // Exceptions are within the cidr (checked when read, or cluster
        // networks of its family); count each address once, by leaving
        // out one inside another (an equal one, after the first).
        let inside_another = except
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.contains(e) && (o != e || j < i));
        if cidr.contains(e) && !inside_another {
            excepted = excepted.saturating_add(addresses(e));
        }
    }
    all_less_one.saturating_sub(excepted)
}

impl EgressNetworks {
    /// The networks of `all` that apply to clients of `namespace`: those of
    /// `namespace` if there is any, else those of `egress_namespace`.
    pub(crate) fn new(
        all: impl IntoIterator<Item = EgressNetwork>,
        namespace: &str,
        egress_namespace: &str,
    ) -> Self {
        let (mut local, global): (Vec<_>, Vec<_>) = all
            .into_iter()
            .filter(|n| *n.namespace == *namespace || *n.namespace == *egress_namespace)
            .partition(|n| *n.namespace == *namespace);
        if local.is_empty() {
            local = global;
        }
        let mut networks = local;
        networks.sort_by(EgressNetwork::precedence);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, network) in networks.iter().enumerate() {
            for net in &network.networks {
                let block = Block::new(net.cidr.0, net.except.iter().map(|e| e.0).collect(), i);
                match net.cidr.0 {
                    IpNet::V4(_) => v4.push(block),
                    IpNet::V6(_) => v6.push(block),
                }
            }
        }
        // The smallest block first; the sort is stable, so blocks of one
        // size stay in their networks' precedence order.
        for blocks in [&mut v4, &mut v6] {
            blocks.sort_by_key(|b| b.size);
        }
        Self { networks, v4, v6 }
    }

    /// Whether no network applies to the workload.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The network that captures `ip` for this workload's clients, by the
    /// rules of the [module docs](self). An IPv4-mapped IPv6 address is
    /// looked up as the IPv4 address it carries, as networks written so
    /// are read.
    pub fn find(&self, ip: IpAddr) -> Option<&EgressNetwork> {
        let ip = ip.to_canonical();
        let blocks = match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        };
        blocks
            .iter()
            .find(|b| b.cidr.contains(&ip) && !b.except.iter().any(|e| e.contains(&ip)))
            .and_then(|b| self.networks.get(b.network))
    }

    /// The networks that apply, most preferred first among blocks of one
    /// size: the older, then by namespace and name.
    pub fn iter(&self) -> impl Iterator<Item = &EgressNetwork> {
        self.networks.iter()
    }

    /// How many networks apply.
    pub fn len(&self) -> usize {
        self.networks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str, except: &[&str]) -> Network {
        Network {
            cidr: cidr.parse().unwrap(),
            except: except.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    fn egress(name: &str, namespace: &str, networks: &[Network]) -> EgressNetwork {
        EgressNetwork::new(
            name,
            namespace,
            TrafficPolicy::Allow,
            Some(networks),
            &[],
            None,
        )
    }

    fn found(set: &EgressNetworks, ip: &str) -> Option<String> {
        set.find(ip.parse().unwrap())
            .map(|n| format!("{}/{}", n.namespace(), n.name()))
    }

    #[test]
    fn the_smallest_matching_block_wins_whatever_the_order() {
        let set = EgressNetworks::new(
            [
                egress("wide", "ns", &[net("192.168.0.0/16", &[])]),
                egress(
                    "narrow",
                    "ns",
                    &[net("10.0.0.0/8", &[]), net("192.168.0.0/24", &[])],
                ),
            ],
            "ns",
            "linkerd-egress",
        );
        assert_eq!(found(&set, "192.168.0.4").as_deref(), Some("ns/narrow"));
        assert_eq!(found(&set, "192.168.1.4").as_deref(), Some("ns/wide"));
        assert_eq!(found(&set, "10.1.2.3").as_deref(), Some("ns/narrow"));
        assert_eq!(found(&set, "11.1.2.3"), None);
        assert_eq!(found(&set, "::1"), None);
    }

    #[test]
    fn an_exception_passes_the_address_to_the_next_block() {
        let set = EgressNetworks::new(
            [
                egress("b", "ns", &[net("192.168.0.0/16", &["192.168.0.4"])]),
                egress("d", "ns", &[net("192.168.0.0/16", &[])]),
            ],
            "ns",
            "g",
        );
        assert_eq!(found(&set, "192.168.0.4").as_deref(), Some("ns/d"));
        assert_eq!(found(&set, "192.168.0.5").as_deref(), Some("ns/b"));
    }

    #[test]
    fn mapped_addresses_are_looked_up_as_ipv4() {
        let set = EgressNetworks::new(
            [egress("v4", "ns", &[net("203.0.113.0/24", &[])])],
            "ns",
            "g",
        );
        assert_eq!(found(&set, "::ffff:203.0.113.9").as_deref(), Some("ns/v4"));
    }

    #[test]
    fn sizes_are_counted_exactly_at_the_ends_of_each_family() {
        let size = |cidr: &str, except: &[&str]| {
            let except: Vec<IpNet> = except.iter().map(|e| e.parse().unwrap()).collect();
            captured_less_one(cidr.parse().unwrap(), &except)
        };
        assert_eq!(size("0.0.0.0/0", &[]), u128::from(u32::MAX));
        assert_eq!(size("203.0.113.7/32", &[]), 0);
        assert_eq!(size("2001:db8::1/128", &[]), 0);
        assert_eq!(size("::/0", &[]), u128::MAX);
        assert_eq!(size("::/0", &["::/1"]), u128::MAX >> 1);
        // One address less than all of `::/0`: smaller, though
        // `2^128 - 1` is `u128::MAX`.
        assert_eq!(size("::/0", &["::1/128"]), u128::MAX - 1);
        assert_eq!(
            size("0.0.0.0/0", &["10.0.0.0/8", "10.0.0.0/8"]),
            (1 << 32) - (1 << 24) - 1
        );
        assert_eq!(size("10.0.0.0/8", &["10.0.0.0/9", "10.128.0.0/9"]), 0);
        assert_eq!(size("::/0", &["::/1", "8000::/1"]), 0);
        // A cluster network of all the family's addresses.
        assert_eq!(size("::/0", &["::/0"]), 0);
    }

    #[test]
    fn default_is_empty_and_finds_nothing() {
        let set = EgressNetworks::default();
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        assert_eq!(found(&set, "8.8.8.8"), None);
    }
}
