//! The inbound side: listeners that accept traffic for the local application.

use std::error::Error as StdError;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use mesh_metrics::access_log::AccessLogFormat;
use mesh_tls::InboundMode;

/// The default inbound listener, `0.0.0.0:4143` (Linkerd's inbound port).
pub const DEFAULT_INBOUND_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4143));

/// Application ports whose traffic is treated as opaque unless configured
/// otherwise: SMTP (25, 587), MySQL (3306), Galera (4444), PostgreSQL
/// (5432), Redis (6379), Elasticsearch (9300) and Memcached (11211).
///
/// These are Linkerd's default opaque ports, those of protocols its
/// documentation lists as interacting poorly with protocol detection. In
/// SMTP and MySQL the server speaks first, so detection would wait for
/// client bytes that never come, delaying each connection by the
/// detection timeout; the others are client-first, and skip detection
/// altogether.
pub const DEFAULT_OPAQUE_PORTS: [u16; 8] = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];

/// The inbound section: the listeners that forward to the local application.
///
/// The default has no listeners: without an `app` address there is nothing
/// to forward to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundConfig {
    /// Every inbound listener. In the file, the section's own
    /// `listen`/`app`/`protocol` form the first entry (when `app` is given),
    /// followed by the `ports:` entries in order.
    pub ports: Vec<InboundPort>,
    /// What every inbound listener asks of its peers: mutual TLS only
    /// (`strict`), anything (`permissive`, the default), or plaintext only
    /// (`disabled`). Without an `identity` section there is no certificate
    /// to serve, and the listeners serve plaintext whatever this says.
    pub tls: InboundMode,
    /// Whether every inbound request is written to standard error as a
    /// line of the access log, and in which format (Linkerd's
    /// `config.linkerd.io/access-log`). Default: none, as in Linkerd.
    pub access_log: Option<AccessLogFormat>,
}

impl InboundConfig {
    /// Every inbound listener, in file order (see [`InboundConfig::ports`]).
    pub fn ports(&self) -> &[InboundPort] {
        &self.ports
    }
}

/// One inbound listener and the application address it forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundPort {
    /// The address the sidecar listens on.
    pub listen: SocketAddr,
    /// The local application's address that accepted traffic goes to.
    pub app: SocketAddr,
    /// How the traffic is handled. Already resolved: when the file does not
    /// say, it is [`PortProtocol::default_for_app_port`] of `app`.
    pub protocol: PortProtocol,
}

impl InboundPort {
    /// A listener with the default protocol for the application's port.
    pub fn new(listen: SocketAddr, app: SocketAddr) -> Self {
        InboundPort {
            listen,
            app,
            protocol: PortProtocol::default_for_app_port(app.port()),
        }
    }

    /// Sets the protocol instead of the default.
    #[must_use]
    pub fn with_protocol(mut self, protocol: PortProtocol) -> Self {
        self.protocol = protocol;
        self
    }
}

/// How an inbound listener handles its connections.
///
/// In the file: `http`, `opaque` or `detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// Always HTTP (HTTP/1.1 or HTTP/2): per-request authorization,
    /// metrics and retries apply.
    Http,
    /// Never parsed: bytes are proxied as they are, with connection-level
    /// authorization and TCP metrics only.
    Opaque,
    /// Peek at the first bytes and serve HTTP when they are HTTP, otherwise
    /// proxy them opaquely. The default, except for
    /// [`DEFAULT_OPAQUE_PORTS`].
    Detect,
}

impl PortProtocol {
    /// The protocol used when the file does not name one: [`Opaque`] for
    /// the application ports in [`DEFAULT_OPAQUE_PORTS`], [`Detect`] for
    /// every other port.
    ///
    /// [`Opaque`]: PortProtocol::Opaque
    /// [`Detect`]: PortProtocol::Detect
    pub fn default_for_app_port(port: u16) -> Self {
        if DEFAULT_OPAQUE_PORTS.contains(&port) {
            PortProtocol::Opaque
        } else {
            PortProtocol::Detect
        }
    }

    /// The name used in the file: `http`, `opaque` or `detect`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Http => "http",
            PortProtocol::Opaque => "opaque",
            PortProtocol::Detect => "detect",
        }
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortProtocol {
    type Err = InvalidProtocol;

    /// Parses `http`, `opaque` or `detect` (lowercase, as in the file).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "http" => Ok(PortProtocol::Http),
            "opaque" => Ok(PortProtocol::Opaque),
            "detect" => Ok(PortProtocol::Detect),
            _ => Err(InvalidProtocol(())),
        }
    }
}

/// A protocol name other than `http`, `opaque` or `detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidProtocol(());

impl fmt::Display for InvalidProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected http, opaque or detect")
    }
}

impl StdError for InvalidProtocol {}
