//! The admin listener, its dashboard, and the tuning every listener shares.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroUsize;
use std::time::Duration;

use mesh_core::serve::{
    HTTP2_KEEP_ALIVE_INTERVAL, HTTP2_KEEP_ALIVE_TIMEOUT, MAX_REQUEST_HEAD_BYTES,
    WRITE_STALL_TIMEOUT,
};
use mesh_metrics::{dashboard::DashboardConfig, query::Target};
use serde::Deserialize;

use super::error::{ConfigError, ConfigErrorKind};
use super::file::Addr;
use super::file::{ServerSection, non_zero_usize};
use super::listeners::reaches;
use super::outbound::ServiceName;
use super::resolve::Source;

/// The default admin listener, `0.0.0.0:4191` (Linkerd's admin port).
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4191));

/// The admin section: where `/live`, `/ready`, `/metrics` and `/shutdown`
/// are served, and the dashboard when it is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The address the admin server binds. Default
    /// [`DEFAULT_ADMIN_LISTEN`].
    pub listen: SocketAddr,
    /// `admin.dashboard`: serve the live dashboard at `/dashboard`. Default
    /// none.
    pub dashboard: Option<DashboardSettings>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN,
            dashboard: None,
        }
    }
}

/// `admin.dashboard`: which workloads the dashboard shows. The sidecar's own
/// admin server is always scraped, under `name`; each peer is another
/// sidecar's admin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    /// This sidecar's workload name, as the dashboard shows it.
    pub name: ServiceName,
    /// The other sidecars to scrape. Peers with one name are replicas of
    /// one workload.
    pub peers: Vec<DashboardPeer>,
}

/// A sidecar the dashboard scrapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardPeer {
    /// Its workload's name.
    pub name: ServiceName,
    /// Its admin server.
    pub admin: SocketAddr,
}

impl DashboardSettings {
    /// The dashboard's configuration, with this sidecar's admin server,
    /// bound at `own_admin`, as the first source. An unspecified address
    /// (`0.0.0.0`) is scraped over loopback.
    pub fn dashboard_config(&self, own_admin: SocketAddr) -> DashboardConfig {
        let mut own = own_admin;
        if own.ip().is_unspecified() {
            own.set_ip(match own.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let target = |name: &ServiceName, addr: SocketAddr| Target {
            name: name.as_str().to_owned(),
            addr: addr.to_string(),
        };
        let sources = std::iter::once(target(&self.name, own))
            .chain(self.peers.iter().map(|p| target(&p.name, p.admin)))
            .collect();
        DashboardConfig::new(sources)
    }
}

/// `admin.dashboard` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with name and peers")]
pub(super) struct DashboardSection {
    name: ServiceName,
    peers: Option<Vec<PeerEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with name and admin")]
struct PeerEntry {
    name: ServiceName,
    admin: Addr,
}

/// Checks `admin.dashboard`: a peer may not be on port 0, which nothing
/// can be scraped on, nor be listed twice, nor be this sidecar's own
/// admin server, which is always scraped.
pub(super) fn resolve_dashboard(
    section: DashboardSection,
    admin_listen: SocketAddr,
    source: Source<'_>,
) -> Result<DashboardSettings, ConfigError> {
    let mut peers: Vec<DashboardPeer> = Vec::new();
    for (index, entry) in section.peers.unwrap_or_default().into_iter().enumerate() {
        let admin = entry.admin.0;
        let path = format!("admin.dashboard.peers[{index}].admin");
        let conflict =
            |message: String| source.error(ConfigErrorKind::Conflict, &path, &path, message);
        if admin.port() == 0 {
            return Err(source.error(
                ConfigErrorKind::InvalidValue,
                &path,
                &path,
                format!("invalid admin address {admin} (port 0 cannot be connected to)"),
            ));
        }
        if let Some(first) = peers.iter().position(|p| p.admin == admin) {
            return Err(conflict(format!(
                "{admin} is already listed at admin.dashboard.peers[{first}]"
            )));
        }
        if reaches(admin, admin_listen) {
            return Err(conflict(format!(
                "{admin} is this sidecar's own admin server, which the dashboard always shows"
            )));
        }
        peers.push(DashboardPeer {
            name: entry.name,
            admin,
        });
    }
    Ok(DashboardSettings {
        name: section.name,
        peers,
    })
}

/// The server section: limits and timeouts shared by every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTuning {
    /// How long a client may take to send a request's headers before the
    /// connection is closed. Default 60 seconds. Never zero.
    pub header_read_timeout: Duration,
    /// How long protocol detection waits for a connection's first bytes.
    /// Default 10 seconds. Never zero.
    pub detect_timeout: Duration,
    /// The most connections served at once; further ones wait to be
    /// accepted. Default 10,000.
    pub max_connections: NonZeroUsize,
    /// How long a graceful shutdown lets in-flight requests finish after
    /// the listeners close. Default 30 seconds. Zero closes at once.
    pub shutdown_grace: Duration,
    /// How many runtimes (one thread each) serve traffic. Default 0, which
    /// means one per CPU core (see [`ServerTuning::worker_threads`]); at
    /// most [`ServerTuning::MAX_THREADS`].
    pub threads: usize,
    /// How long an HTTP/2 connection to a proxy listener may be quiet
    /// before it is pinged. Default 10 seconds; `None` (`0s` in the file)
    /// never pings.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    /// Default 20 seconds. Never zero.
    pub http2_keep_alive_timeout: Duration,
    /// How long an HTTP connection's writes may wait for the peer to read
    /// a byte before the connection is closed, so that a client that
    /// never reads its response does not hold its place for ever. Default
    /// 60 seconds (nginx's `send_timeout`). Never zero.
    pub write_stall_timeout: Duration,
    /// How long an HTTP stream on any listener may go without activity (a
    /// request or response body frame, the response head) before it is
    /// ended: `408` before the response head, a reset or a closed
    /// connection after. Default `None` (`0s` in the file, or no value):
    /// never, so that long-lived quiet gRPC streams live on, as under
    /// Linkerd. Envoy's `stream_idle_timeout` is the same bound, on by
    /// default at 5 minutes.
    pub stream_idle_timeout: Option<Duration>,
    /// The largest request head (request line and headers, or an HTTP/2
    /// header list) any listener takes, in bytes; a larger one is
    /// answered `431`. Default 64 KiB, from
    /// [`ServerTuning::MIN_REQUEST_HEAD_BYTES`] to
    /// [`ServerTuning::MAX_REQUEST_HEAD_BYTES`].
    pub max_request_head_bytes: usize,
}

impl ServerTuning {
    /// The most `threads`: each is a runtime with its own listeners,
    /// timers and connection pools, and more than this is a typing
    /// mistake that would otherwise fail at start, far from the file.
    pub const MAX_THREADS: usize = 1024;
    /// The smallest `max_request_head_bytes`: hyper reads an HTTP/1
    /// head into a buffer of at least this size whatever is set.
    pub const MIN_REQUEST_HEAD_BYTES: usize = 8 * 1024;
    /// The largest `max_request_head_bytes`: 1 MiB, already sixteen
    /// times Envoy's 60 KiB default; a larger head is an attack, not a
    /// request.
    pub const MAX_REQUEST_HEAD_BYTES: usize = 1024 * 1024;

    /// The default `header_read_timeout`: 60 seconds, longer than the
    /// upstream client's 30-second pool idle timeout, so that one sidecar
    /// never reuses a connection the next one is closing.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default `detect_timeout`: 10 seconds.
    pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `max_connections`: 10,000.
    pub const DEFAULT_MAX_CONNECTIONS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(9_999);
    /// The default `shutdown_grace`: 30 seconds.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

    /// The number of runtime threads to start: `threads`, or the number of
    /// CPU cores available to the process when `threads` is 0 (1 if that
    /// cannot be known).
    pub fn worker_threads(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }
}

impl Default for ServerTuning {
    fn default() -> Self {
        ServerTuning {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            detect_timeout: Self::DEFAULT_DETECT_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            threads: 0,
            http2_keep_alive_interval: Some(HTTP2_KEEP_ALIVE_INTERVAL),
            http2_keep_alive_timeout: HTTP2_KEEP_ALIVE_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            stream_idle_timeout: None,
            max_request_head_bytes: MAX_REQUEST_HEAD_BYTES,
        }
    }
}

/// The `server` section over the defaults. A ping timeout written beside
/// pings turned off (`http2_keep_alive_interval: 0s`) is an error: it
/// would mean nothing.
pub(super) fn resolve_server(
    section: &ServerSection,
    source: Source<'_>,
) -> Result<ServerTuning, ConfigError> {
    if section
        .http2_keep_alive_interval
        .is_some_and(|interval| interval.0.is_zero())
        && section.http2_keep_alive_timeout.is_some()
    {
        let path = "server.http2_keep_alive_timeout";
        return Err(source.error(
            ConfigErrorKind::Conflict,
            path,
            path,
            "http2_keep_alive_timeout bounds the answer to a ping, and \
             http2_keep_alive_interval: 0s sends none: remove one of them"
                .to_owned(),
        ));
    }
    let mut tuning = ServerTuning::default();
    if let Some(timeout) = section.header_read_timeout {
        tuning.header_read_timeout = timeout.0;
    }
    if let Some(timeout) = section.detect_timeout {
        tuning.detect_timeout = timeout.0;
    }
    if let Some(max) = section.max_connections {
        tuning.max_connections = non_zero_usize(max);
    }
    if let Some(grace) = section.shutdown_grace {
        tuning.shutdown_grace = grace.0;
    }
    if let Some(threads) = section.threads {
        // At most MAX_THREADS, as the field's type reads it.
        tuning.threads = usize::try_from(threads.0).unwrap_or(ServerTuning::MAX_THREADS);
    }
    if let Some(interval) = section.http2_keep_alive_interval {
        tuning.http2_keep_alive_interval = Some(interval.0).filter(|i| !i.is_zero());
    }
    if let Some(timeout) = section.http2_keep_alive_timeout {
        tuning.http2_keep_alive_timeout = timeout.0;
    }
    if let Some(timeout) = section.write_stall_timeout {
        tuning.write_stall_timeout = timeout.0;
    }
    if let Some(timeout) = section.stream_idle_timeout {
        tuning.stream_idle_timeout = Some(timeout.0).filter(|t| !t.is_zero());
    }
    if let Some(bytes) = section.max_request_head_bytes {
        // Within MIN_REQUEST_HEAD_BYTES and MAX_REQUEST_HEAD_BYTES, as
        // the field's type reads it.
        tuning.max_request_head_bytes =
            usize::try_from(bytes.0).unwrap_or(ServerTuning::MAX_REQUEST_HEAD_BYTES);
    }
    Ok(tuning)
}
