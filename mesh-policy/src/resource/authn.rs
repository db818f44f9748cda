//! `MeshTLSAuthentication` and `NetworkAuthentication`: who a client is.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use mesh_core::resource::{ApiVersion, ObjectMeta, Resource};
use serde::Deserialize;

/// A `MeshTLSAuthentication` (`policy.linkerd.io/v1alpha1`): clients with
/// one of these mesh identities.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTlsAuthentication {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `MeshTLSAuthentication`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The identities.
    pub spec: MeshTlsAuthenticationSpec,
}

impl Resource for MeshTlsAuthentication {
    const KIND: &'static str = "MeshTLSAuthentication";
    const API_VERSIONS: &'static [&'static str] = &["policy.linkerd.io/v1alpha1"];
}

/// `spec` of a [`MeshTlsAuthentication`]. At least one identity or
/// reference is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTlsAuthenticationSpec {
    /// `identities`: exact identities (SPIFFE IDs or DNS-style names), `*`
    /// for any mesh identity, or `*.suffix` for DNS-style names under a
    /// suffix. `null` is left out.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub identities: Vec<String>,
    /// `identityRefs`: service accounts (`kind: ServiceAccount`), whose
    /// identities follow the naming scheme in the crate docs, or every
    /// service account of a namespace (`kind: Namespace`, named by `name`;
    /// a `namespace` beside it is refused, as in Linkerd). `null` is left
    /// out.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub identity_refs: Vec<ObjectRef>,
}

/// A `NetworkAuthentication` (`policy.linkerd.io/v1alpha1`): clients whose
/// address is in one of these networks.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAuthentication {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `NetworkAuthentication`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The networks.
    pub spec: NetworkAuthenticationSpec,
}

impl Resource for NetworkAuthentication {
    const KIND: &'static str = "NetworkAuthentication";
    const API_VERSIONS: &'static [&'static str] = &["policy.linkerd.io/v1alpha1"];
}

/// `spec` of a [`NetworkAuthentication`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NetworkAuthenticationSpec {
    /// `networks`: a client matches when its address is in any of them.
    pub networks: Vec<Network>,
}

/// A network: a CIDR, less some sub-networks.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Network {
    /// `cidr`: the network, IPv4 or IPv6. A bare address is a /32 or /128.
    /// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is read as the
    /// IPv4 network it carries (`10.0.0.0/8`), as client addresses are.
    pub cidr: Cidr,
    /// `except`: networks within `cidr` that do not match. One that covers
    /// all of `cidr` is refused, as Linkerd's admission webhook refuses it:
    /// the network would match no address. Absent or `null`, none: the
    /// API server keeps a `null` it is sent for a field that is not
    /// nullable out of the object, so a manifest with `except: null` is
    /// one without it.
    #[serde(default, deserialize_with = "super::null_as_empty")]
    pub except: Vec<Cidr>,
}

impl Network {
    /// Whether `addr` is in the network and in none of its exceptions.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        self.cidr.0.contains(addr) && !self.except.iter().any(|e| e.0.contains(addr))
    }

    /// Every address, IPv4 and IPv6.
    pub fn all() -> [Network; 2] {
        let any = |net: IpNet| Network {
            cidr: Cidr(net),
            except: Vec::new(),
        };
        [
            any(IpNet::V4(ipnet::Ipv4Net::default())),
            any(IpNet::V6(ipnet::Ipv6Net::default())),
        ]
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or a bare address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, InvalidCidr> {
        if let Ok(net) = s.parse::<IpNet>() {
            // `10.1.2.3/8` has host bits set: it is a typo more often than not.
            if net.trunc() != net {
                return Err(InvalidCidr {
                    input: s.into(),
                    host_bits: true,
                });
            }
            return Ok(Cidr(canonical(net)));
        }
        s.parse::<IpAddr>()
            .map(|a| Cidr(IpNet::from(a.to_canonical())))
            .map_err(|_| InvalidCidr {
                input: s.into(),
                host_bits: false,
            })
    }
}

/// `net`, or for an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) the
/// IPv4 network it carries (`10.0.0.0/8`).
///
/// Clients are matched by the IPv4 address a mapped address carries (see
/// [`Client::addr`](crate::Client)), so a network written the way a
/// dual-stack listener's logs name them must be read as IPv4 too: else
/// it would match no client, and no IPv4 network could except it.
pub(crate) fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        _ => net,
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidCidr;

    fn try_from(s: String) -> Result<Self, InvalidCidr> {
        s.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A string that is not a CIDR or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCidr {
    input: Box<str>,
    host_bits: bool,
}

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host_bits {
            write!(f, "invalid cidr {:?}: host bits are set", self.input)
        } else {
            write!(f, "invalid cidr {:?}", self.input)
        }
    }
}

impl std::error::Error for InvalidCidr {}

/// A reference to another resource by kind and name: `identityRefs`,
/// `requiredAuthenticationRefs` and `targetRef` entries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ObjectRef {
    /// `group`; omitted for core kinds (`ServiceAccount`, `Namespace`).
    #[serde(default)]
    pub group: Option<String>,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace`; the referring resource's when absent.
    #[serde(default)]
    pub namespace: Option<String>,
}
