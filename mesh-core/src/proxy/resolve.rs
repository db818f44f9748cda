//! Endpoints given by DNS name, looked up again and again.
//!
//! # Why
//!
//! In Kubernetes, pod addresses change with every restart, scale-up and
//! rollout, so a list of addresses written at deploy time goes stale. A
//! headless Service's DNS name answers with the address of every ready
//! pod. Looking it up again every few seconds, and updating the
//! [`EndpointSet`](super::EndpointSet) a `Forward` balances over, keeps
//! the endpoints current without a control plane.
//!
//! # How
//!
//! A [`Resolution`] holds a service's configured endpoints: addresses,
//! which are never looked up, and names with a port. It has no I/O and no
//! clock; it only merges answers. A [`Resolver`] looks every name up with
//! a lookup function ([`lookup_host`], or one a test injects) once per
//! round, and [`Resolver::run`] runs a round every interval (default 5 s).
//!
//! The names of a round are looked up at once, each bounded by
//! [`LOOKUP_TIMEOUT`] (5 s, the system resolver's usual wait for one
//! server): a name whose server does not answer neither holds up the
//! others nor the next round. A lookup that fails, times out, or answers
//! with no address at all, keeps the name's last good answer: a DNS
//! hiccup must not empty a healthy service. A name that never answered contributes no endpoint, and a
//! service whose names all fail before their first answer has none: its
//! `Forward` answers `503` until one arrives.

use std::{fmt, future::Future, io, net::SocketAddr, time::Duration};

/// How often names are looked up again by default: 5 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How long one lookup may take before it counts as failed: 5 seconds,
/// glibc's default wait for a name server (`timeout:5` in resolv.conf).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait between rounds: a year. `tokio`'s clock panics when
/// asked for a time further from now than an `Instant` holds.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// An endpoint as configured: an address, or a DNS name to look up and
/// the port to reach its addresses on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointAddr {
    /// An address, used as it is.
    Socket(SocketAddr),
    /// A name whose addresses serve on `port`.
    Name {
        /// The DNS name, such as `emoji.emojivoto.svc.cluster.local`.
        host: String,
        /// The port every address of the name serves on.
        port: u16,
    },
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(addr) => addr.fmt(f),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for EndpointAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::Socket(addr)
    }
}

impl PartialEq<SocketAddr> for EndpointAddr {
    fn eq(&self, other: &SocketAddr) -> bool {
        matches!(self, Self::Socket(addr) if addr == other)
    }
}

/// A service's endpoints: its addresses, and the last good answer for
/// each of its names. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    addrs: Vec<SocketAddr>,
    names: Vec<Name>,
}

#[derive(Clone, Debug)]
struct Name {
    host: String,
    port: u16,
    /// The last good answer; `None` until the first.
    last: Option<Vec<SocketAddr>>,
}

/// Whether a lookup gave the name new addresses to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It answered with at least one address.
    Resolved,
    /// It failed, or answered with none: the last good answer stays.
    Failed,
}

impl Resolution {
    /// The endpoints of a service configured as `endpoints`, no name
    /// looked up yet.
    pub fn new<'a>(endpoints: impl IntoIterator<Item = &'a EndpointAddr>) -> Self {
        let mut resolution = Self::default();
        for endpoint in endpoints {
            match endpoint {
                EndpointAddr::Socket(addr) => resolution.addrs.push(*addr),
                EndpointAddr::Name { host, port } => resolution.names.push(Name {
                    host: host.clone(),
                    port: *port,
                    last: None,
                }),
            }
        }
        resolution
    }

    /// Whether any endpoint is a name, to be looked up again and again.
    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// The names to look up, with their ports, in order: the `index` of
    /// [`record`](Self::record) counts them.
    pub fn names(&self) -> impl Iterator<Item = (&str, u16)> {
        self.names
            .iter()
            .map(|name| (name.host.as_str(), name.port))
    }

    /// Keeps the `answer` to the lookup of name `index` if it holds an
    /// address; else the name's last good answer stays.
    pub fn record(&mut self, index: usize, answer: io::Result<Vec<SocketAddr>>) -> Outcome {
        let Some(name) = self.names.get_mut(index) else {
            return Outcome::Failed;
        };
        match answer {
            Ok(addrs) if !addrs.is_empty() => {
                name.last = Some(addrs);
                Outcome::Resolved
            }
            Ok(_) => {
                tracing::warn!(
                    host = %name.host,
                    kept = name.last.as_ref().map_or(0, Vec::len),
                    "a name resolved to no address; its last addresses stay"
                );
                Outcome::Failed
            }
            Err(error) => {
                tracing::warn!(
                    host = %name.host,
                    %error,
                    kept = name.last.as_ref().map_or(0, Vec::len),
                    "a name did not resolve; its last addresses stay"
                );
                Outcome::Failed
            }
        }
    }

    /// Every endpoint: the addresses, and each name's last good answer,
    /// sorted, each once.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        let answers = self.names.iter().filter_map(|name| name.last.as_deref());
        let mut endpoints: Vec<SocketAddr> = self
            .addrs
            .iter()
            .chain(answers.flatten())
            .copied()
            .collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        endpoints
    }
}

/// What one round of lookups found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// Every endpoint after the round ([`Resolution::endpoints`]).
    pub endpoints: Vec<SocketAddr>,
    /// Whether they differ from those after the round before (or, for
    /// the first, from those the resolution held when handed over).
    pub changed: bool,
    /// How many names answered with addresses.
    pub resolved: u32,
    /// How many did not; they kept their last good answer.
    pub failed: u32,
}

/// Looks a service's names up, round after round, with a lookup function
/// `L`. See the [module docs](self).
#[derive(Debug)]
pub struct Resolver<L> {
    resolution: Resolution,
    lookup: L,
    interval: Duration,
    last: Vec<SocketAddr>,
}

impl<L, F> Resolver<L>
where
    L: FnMut(String, u16) -> F,
    F: Future<Output = io::Result<Vec<SocketAddr>>>,
{
    /// Looks up the names of `resolution` with `lookup`, such as
    /// [`lookup_host`].
    pub fn new(resolution: Resolution, lookup: L) -> Self {
        Self {
            last: resolution.endpoints(),
            resolution,
            lookup,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// How long [`run`](Self::run) waits between rounds. Default is
    /// 5 seconds ([`DEFAULT_INTERVAL`]); zero counts as a millisecond,
    /// and anything over a year as a year ([`MAX_INTERVAL`]), which the
    /// clock can always add to the time now.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.clamp(Duration::from_millis(1), MAX_INTERVAL);
        self
    }

    /// Looks every name up once, all at once, each lookup bounded by
    /// [`LOOKUP_TIMEOUT`].
    pub async fn resolve(&mut self) -> Round {
        let (mut resolved, mut failed) = (0, 0);
        let lookups = self.resolution.names.iter().map(|name| {
            let lookup = (self.lookup)(name.host.clone(), name.port);
            async move {
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(answer) => answer,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer in {}s", LOOKUP_TIMEOUT.as_secs()),
                    )),
                }
            }
        });
        let answers = futures_util::future::join_all(lookups).await;
        for (index, answer) in answers.into_iter().enumerate() {
            match self.resolution.record(index, answer) {
                Outcome::Resolved => resolved += 1,
                Outcome::Failed => failed += 1,
            }
        }
        let endpoints = self.resolution.endpoints();
        let changed = endpoints != self.last;
        if changed {
            self.last.clone_from(&endpoints);
        }
        Round {
            endpoints,
            changed,
            resolved,
            failed,
        }
    }

    /// Waits an interval, runs a round and hands it to `each`, forever.
    /// The first round is the caller's: call [`resolve`](Self::resolve)
    /// first for the endpoints to start with.
    pub async fn run(mut self, mut each: impl FnMut(Round)) {
        let start = tokio::time::Instant::now() + self.interval;
        let mut ticks = tokio::time::interval_at(start, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            each(self.resolve().await);
        }
    }
}

/// Looks `host` up with the system's resolver (tokio's
/// [`lookup_host`](tokio::net::lookup_host)), and gives its addresses
/// `port`.
///
/// # Errors
///
/// When the name does not resolve.
pub async fn lookup_host(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host.as_str(), port))
        .await?
        .collect())
}

#[cfg(test)]
mod tests;
