//! What a layer knows about the connection a request arrived on.
//!
//! The server inserts a [`ConnectionInfo`] into every request's extensions.
//! Authorization reads the peer's identity and address from it, metrics read
//! the TLS status for their `tls` and `client_id` labels, and the sidecar
//! reads it to tell the application who called.

use std::{fmt, net::IpAddr, net::SocketAddr, sync::Arc};

use crate::identity::Identity;

/// The connection a request arrived on. A request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The address the connection was accepted on.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// How the peer was authenticated, if at all.
    pub tls: Tls,
}

impl ConnectionInfo {
    /// A plaintext connection: the peer offered no TLS
    /// ([`NoTlsReason::NotProvidedByRemote`]).
    pub fn plaintext(local_addr: SocketAddr, remote_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            remote_addr,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
        }
    }

    /// The authenticated peer identity, when the connection is mutual TLS.
    pub fn peer_identity(&self) -> Option<&Identity> {
        match &self.tls {
            Tls::Mutual { peer } => Some(peer),
            _ => None,
        }
    }
}

/// The TLS status of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// No TLS, and why.
    Plaintext(NoTlsReason),
    /// TLS, but the client presented no certificate.
    NoClientCert,
    /// Mutual TLS: the peer presented a certificate the trust bundle vouches
    /// for, naming this identity.
    Mutual {
        /// The peer's identity, from its certificate.
        peer: Identity,
    },
    /// TLS the mesh did not terminate: the ClientHello named another
    /// server than this workload, so the connection is the application's
    /// own TLS (an application serving HTTPS on a meshed port), and its
    /// bytes were passed on untouched. Linkerd's `ServerTls::Passthru`
    /// (linkerd2-proxy `linkerd/tls/src/server.rs`), labelled
    /// `tls="opaque",sni="..."` in its metrics.
    ///
    /// The mesh knows nothing of the peer but the name it asked for: it
    /// has no identity, and is not even known to finish its handshake.
    /// Authorization treats it as unauthenticated, and the connection is
    /// served as opaque bytes, never read as HTTP.
    Passthrough {
        /// The server name the ClientHello asked for.
        sni: Sni,
    },
}

impl Tls {
    /// Whether the connection is encrypted. A passed-through connection
    /// is, by the application's TLS, though not by the mesh's.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Tls::Plaintext(_))
    }
}

/// The server name a TLS client asked for (the `server_name` extension of
/// its ClientHello, RFC 6066 §3), in lower case: a DNS host name, since
/// RFC 6066 allows no address and no trailing dot there.
///
/// Cloning is an `Arc` increment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sni(Arc<str>);

impl Sni {
    /// The longest DNS name, in its text form without a trailing dot.
    const MAX_LEN: usize = 253;

    /// Reads `name` as a server name: a DNS host name of labels of
    /// letters, digits, hyphens (not first or last) and underscores
    /// (which real host names carry, and rustls accepts), each at most 63
    /// bytes, 253 in all, and not an IP address. Stored in lower case,
    /// since DNS names compare case-insensitively.
    ///
    /// # Errors
    ///
    /// [`InvalidSni`] when `name` is not such a name.
    pub fn parse(name: &str) -> Result<Self, InvalidSni> {
        if name.is_empty() || name.len() > Self::MAX_LEN || name.parse::<IpAddr>().is_ok() {
            return Err(InvalidSni);
        }
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name.split('.').all(label_ok) {
            return Err(InvalidSni);
        }
        Ok(Self(Arc::from(name.to_ascii_lowercase())))
    }

    /// The name, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A TLS server name that is no DNS host name (RFC 6066 §3): empty, too
/// long, an address, or with a character or label a host name cannot have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidSni;

impl fmt::Display for InvalidSni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tls server name is not a dns host name (rfc 6066 section 3)")
    }
}

impl std::error::Error for InvalidSni {}

/// Why a connection is not TLS: the `no_tls_reason` label of a series
/// whose `tls` label is `no_identity`, and the `tls` field of a tap event.
///
/// Dashboards, alerts and `linkerd viz` queries written for Linkerd match
/// the values the current linkerd2-proxy writes, so where Linkerd has the
/// same situation the value is Linkerd's: its `NoServerTls` (inbound) and
/// `NoClientTls` (outbound) in `linkerd/tls/src/{server,client}.rs`, printed
/// by the `TlsAccept` / `TlsConnect` labels of `linkerd/app/core`. Linkerd
/// 2.8 called an inbound peer that offered no TLS `not_provided_by_remote`;
/// later proxies call it `no_tls_from_remote`, and that is what is written
/// here. Readers of scraped metrics accept both spellings, since an older
/// proxy may be scraped.
///
/// [`NoTlsReason::Disabled`] is never a `no_tls_reason`: like Linkerd, the
/// metrics write it as `tls="disabled"` alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoTlsReason {
    /// Inbound: the peer did not start a TLS handshake (`no_tls_from_remote`,
    /// Linkerd's `NoServerTls::NoClientHello`).
    NotProvidedByRemote,
    /// TLS is turned off for this listener or target (`disabled`, as in
    /// Linkerd, both directions).
    Disabled,
    /// The connection came from, or goes to, the local host (`loopback`, as
    /// in Linkerd, both directions).
    Loopback,
    /// Inbound: the port is configured to skip the mesh (`port_skipped`, as
    /// in Linkerd).
    PortSkipped,
    /// Outbound: discovery named no identity for the target, so there is
    /// none to verify (`not_provided_by_service_discovery`, Linkerd's
    /// `NoClientTls::NotProvidedByServiceDiscovery`).
    NotProvidedByServiceDiscovery,
    /// No local identity is configured yet (`no_identity`). Linkerd has no
    /// such reason: its proxy does not serve before it has an identity.
    NoIdentity,
}

impl NoTlsReason {
    /// The value Linkerd 2.8 wrote for [`NoTlsReason::NotProvidedByRemote`];
    /// readers of scraped metrics take it as [`NoTlsReason::NotProvidedByRemote`].
    pub const LEGACY_NOT_PROVIDED_BY_REMOTE: &'static str = "not_provided_by_remote";

    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::NotProvidedByRemote => "no_tls_from_remote",
            Self::Disabled => "disabled",
            Self::Loopback => "loopback",
            Self::PortSkipped => "port_skipped",
            Self::NotProvidedByServiceDiscovery => "not_provided_by_service_discovery",
            Self::NoIdentity => "no_identity",
        }
    }

    /// The reason a scraped `no_tls_reason` value names, in the current
    /// spelling or an older proxy's; `None` for a value this mesh never
    /// writes.
    pub fn from_label(value: &str) -> Option<Self> {
        const ALL: [NoTlsReason; 6] = [
            NoTlsReason::NotProvidedByRemote,
            NoTlsReason::Disabled,
            NoTlsReason::Loopback,
            NoTlsReason::PortSkipped,
            NoTlsReason::NotProvidedByServiceDiscovery,
            NoTlsReason::NoIdentity,
        ];
        if value == Self::LEGACY_NOT_PROVIDED_BY_REMOTE {
            return Some(Self::NotProvidedByRemote);
        }
        ALL.into_iter().find(|r| r.as_label() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::{NoTlsReason, Sni, Tls};

    #[test]
    fn a_server_name_is_a_host_name_in_lower_case() {
        let sni = Sni::parse("App.Example").unwrap();
        assert_eq!(sni.as_str(), "app.example");
        assert_eq!(Sni::parse("localhost").unwrap().as_str(), "localhost");
        assert_eq!(
            Sni::parse("_svc.x-1.example").unwrap().as_str(),
            "_svc.x-1.example"
        );
        for bad in [
            "",
            "app.example.",
            "-app.example",
            "app-.example",
            "a..b",
            "10.0.0.1",
            "::1",
            "app example",
            "app\"x",
            "ex\u{e4}mple.org",
        ] {
            assert!(Sni::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Sni::parse(&"a".repeat(64)).is_err());
        assert!(Sni::parse(&["a"; 128].join(".")).is_err());
        assert!(Sni::parse(&["a"; 127].join(".")).is_ok());
    }

    #[test]
    fn a_passed_through_connection_is_tls_without_an_identity() {
        let tls = Tls::Passthrough {
            sni: Sni::parse("app.example").unwrap(),
        };
        assert!(tls.is_tls());
    }

    #[test]
    fn labels_are_those_of_the_current_linkerd_proxy() {
        assert_eq!(
            NoTlsReason::NotProvidedByRemote.as_label(),
            "no_tls_from_remote"
        );
        assert_eq!(NoTlsReason::Disabled.as_label(), "disabled");
        assert_eq!(NoTlsReason::Loopback.as_label(), "loopback");
        assert_eq!(NoTlsReason::PortSkipped.as_label(), "port_skipped");
        assert_eq!(
            NoTlsReason::NotProvidedByServiceDiscovery.as_label(),
            "not_provided_by_service_discovery"
        );
        assert_eq!(NoTlsReason::NoIdentity.as_label(), "no_identity");
    }

    #[test]
    fn both_spellings_of_a_plaintext_peer_are_read() {
        for value in ["no_tls_from_remote", "not_provided_by_remote"] {
            assert_eq!(
                NoTlsReason::from_label(value),
                Some(NoTlsReason::NotProvidedByRemote),
                "{value}"
            );
        }
        assert_eq!(
            NoTlsReason::from_label("port_skipped"),
            Some(NoTlsReason::PortSkipped)
        );
        assert_eq!(NoTlsReason::from_label("opaque"), None);
    }
}
