//! `Server`: a port on the workloads a selector picks.

use std::fmt;

use mesh_core::resource::{ApiVersion, ObjectMeta, Resource};
use serde::{Deserialize, Deserializer, de};

use super::LabelSelector;
use crate::DefaultPolicy;

/// A `Server` (`policy.linkerd.io/v1beta1`..`v1beta3`): one port, by number
/// or name, on the workloads its `podSelector` picks in its namespace.
/// Once a Server covers a port, requests on it are denied unless an
/// authorization allows them (or its `accessPolicy` says otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `Server`.
    pub kind: String,
    /// Name, namespace and labels (which `ServerAuthorization` selectors
    /// match).
    pub metadata: ObjectMeta,
    /// The server.
    pub spec: ServerSpec,
}

impl Resource for Server {
    const KIND: &'static str = "Server";
    const API_VERSIONS: &'static [&'static str] = &[
        "policy.linkerd.io/v1beta1",
        "policy.linkerd.io/v1beta2",
        "policy.linkerd.io/v1beta3",
    ];
}

/// `spec` of a [`Server`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// `podSelector`: the pods, by their labels. A Server has this or
    /// `externalWorkloadSelector`, not both.
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// `externalWorkloadSelector` (Linkerd's mesh expansion): the
    /// `ExternalWorkload`s, by their labels. A [`Workload`](crate::Workload)
    /// is a pod, so such a Server never selects it.
    #[serde(default)]
    pub external_workload_selector: Option<LabelSelector>,
    /// `port`: a number, or the name of one of the workload's ports.
    pub port: PortRef,
    /// `proxyProtocol`; `unknown` when absent.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// `accessPolicy` (v1beta3): what requests that no authorization allows
    /// get; `deny` when absent.
    #[serde(default)]
    pub access_policy: Option<DefaultPolicy>,
}

/// A port by number or by name. A name without a letter (`"8080"`,
/// quoted in YAML, or a range such as `8080-8090`) is refused: Kubernetes
/// requires a letter in a port name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// A port number, 1 to 65535.
    Number(u16),
    /// The name of a port the workload declares.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PortRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number (1-65535) or a port name")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortRef, E> {
                match u16::try_from(n) {
                    Ok(n) if n != 0 => Ok(PortRef::Number(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
                }
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortRef, E> {
                u64::try_from(n)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
                    .and_then(|n| self.visit_u64(n))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<PortRef, E> {
                if name.is_empty() {
                    return Err(E::invalid_value(de::Unexpected::Str(name), &self));
                }
                // Kubernetes requires a letter in a port name, so no pod
                // port has this one (`"8080"`, or a range `8080-8090`): a
                // Server reading it as a name would select nothing and
                // leave the port to the default policy.
                if name.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format_args!(
                        "port name {name:?} has no letter, so no port can have it: write the number {name} without quotes"
                    )));
                }
                if !name.bytes().any(|b| b.is_ascii_alphabetic()) {
                    return Err(E::custom(format_args!(
                        "port name {name:?} has no letter, so no port can have it: a Server covers one port, by number or by name"
                    )));
                }
                Ok(PortRef::Name(name.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `proxyProtocol`: how the port's traffic is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum ProxyProtocol {
    /// Detect HTTP from the first bytes.
    #[default]
    #[serde(rename = "unknown")]
    Unknown,
    /// HTTP/1.
    #[serde(rename = "HTTP/1")]
    Http1,
    /// HTTP/2.
    #[serde(rename = "HTTP/2")]
    Http2,
    /// gRPC.
    #[serde(rename = "gRPC")]
    Grpc,
    /// Opaque bytes: authorized per connection.
    #[serde(rename = "opaque")]
    Opaque,
    /// TLS the application terminates: authorized per connection.
    #[serde(rename = "TLS")]
    Tls,
}

impl ProxyProtocol {
    /// The name as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Http1 => "HTTP/1",
            Self::Http2 => "HTTP/2",
            Self::Grpc => "gRPC",
            Self::Opaque => "opaque",
            Self::Tls => "TLS",
        }
    }

    /// Whether traffic is authorized per connection rather than per request.
    pub fn is_opaque(self) -> bool {
        matches!(self, Self::Opaque | Self::Tls)
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
