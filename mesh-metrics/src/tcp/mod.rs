//! Transport metrics, counted by an I/O wrapper on each connection.
//!
//! Linkerd's transport families tell an operator how many connections a
//! workload holds, how they end and how many bytes they carry, with the same
//! `direction` and TLS labels as the HTTP families:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `tcp_open_total` | counter | `direction`, `peer`, TLS |
//! | `tcp_open_connections` | gauge | `direction`, `peer`, TLS |
//! | `tcp_read_bytes_total` | counter | `direction`, `peer`, TLS |
//! | `tcp_write_bytes_total` | counter | `direction`, `peer`, TLS |
//! | `tcp_close_total` | counter | `direction`, `peer`, TLS, `errno` |
//! | `tcp_series_overflow_total` | counter | `family` |
//! | `inbound_tcp_errors_total`, `outbound_tcp_errors_total` | counter | target, `error` |
//!
//! The error families count connections the proxy closed for an error of
//! its own, as their owner reports them ([`TcpMetrics::count_error`]; see
//! [`errors`](crate::errors)).
//!
//! `peer` is `src` for accepted connections and `dst` for ones we opened.
//! `errno` is empty for a clean close, or the name of the socket error that
//! ended the connection (`ECONNRESET`, `EPIPE`, `ETIMEDOUT`, `ENETDOWN`,
//! ...), as Linkerd names it: any errno by its name, a number without one
//! `UNKNOWN_ERRNO`. The error that ended the connection is the first one
//! its stream returned, of any kind, as in Linkerd's transport sensor
//! (`linkerd/proxy/transport/src/metrics.rs`): errors after it are its
//! consequences. When that first error carries no errno, from a layer
//! above the socket, `errno` is empty, as in Linkerd.
//!
//! A connection is counted closed (`tcp_open_connections` down by one,
//! `tcp_close_total` up by one) exactly once: at that first error, since the
//! connection is dead then even if its owner holds the stream a while
//! longer, as Linkerd counts it; or, if no error came, when the stream is
//! dropped, as a clean close. A stream that ended before its accept hook
//! returned (it failed in the handshake, or the hook dropped it) is
//! counted open and closed at once when the hook returns, whether the hook
//! succeeded or not, with the errno of its first error: otherwise it would
//! count as an open connection for as long as it is held, or for ever.
//!
//! # Where TLS labels come from
//!
//! The bytes to count are the ones on the wire, so the wrapper,
//! [`CountingIo`], sits directly on the TCP stream, under TLS. But a server
//! learns the TLS status only after the handshake, which runs over that
//! very stream. So [`TcpAccept`] wraps the stream first, runs the inner
//! [`Accept`](mesh_core::serve::Accept) hook (mesh-tls's handshake, or
//! plaintext), and only then resolves the connection's label handles from
//! the [`Accepted::tls`](mesh_core::serve::Accepted) it returned. The
//! wrapper holds the bytes it moved before that (the handshake) and adds
//! them to the right series once the handles arrive, even if the stream
//! has ended by then.
//!
//! A connection whose hook fails (a handshake refused, or timed out on a
//! silent peer), or whose hook is dropped unfinished (the server shuts
//! down mid-handshake), is counted all the same: it was accepted, held a
//! socket and carried bytes, and a flood of them is what an operator needs
//! to see. It has no TLS status, so it is counted under the one of a peer
//! that established no TLS session, `tls="no_identity",
//! no_tls_reason="no_tls_from_remote"`, open and closed at once when the
//! hook gives up (or when whoever still holds the stream drops it), with
//! the errno of the stream's first error, empty for a timeout. Linkerd
//! counts a connection after its TLS detection instead, and a failed one
//! only in `inbound_tcp_errors_total` (`error="tls detection timeout"` or
//! `"i/o"`); a server can count it there as well, where its accept hook
//! fails ([`TcpMetrics::count_error`]).
//!
//! A connection whose TLS the acceptor passed through to the application
//! (its ClientHello named another server: `Tls::Passthrough`) is labelled
//! as Linkerd labels a `ServerTls::Passthru` one, `tls="opaque"` and the
//! server name asked for as `sni`. That name is the peer's choice: its
//! series count against the family's series limit like any other, and past
//! it fold into the overflow series, which keeps `tls="opaque"`.
//!
//! On the client side the labels are known before connecting: they name the
//! server identity the client expects, which is configuration.
//! [`TcpConnect`] wraps a hyper-util connector.
//!
//! Handles are resolved once per connection through a lock-free cache, and
//! counting a read or a write is one atomic add.

mod accept;
mod connect;
mod errno;
mod errors;
mod io;

use std::{
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
    sync::Arc,
};

use mesh_core::conn::Tls;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

pub use self::{
    accept::{AcceptFuture, TcpAccept},
    connect::{ConnectFuture, TcpConnect},
    errors::{Classify, CountErrors, CountErrorsFuture},
    io::CountingIo,
};
use crate::{
    config::MetricsConfig,
    errors::{ErrorFamilies, ProxyError, TcpErrorLabels},
    family::{
        Family, FoldCounters,
        cache::{HandleCache, Resolved},
    },
    labels::{CloseLabels, Direction, Peer, TcpLabels, TlsView},
};

/// The transport families, registered once per registry and shared by
/// every [`TcpAccept`] and [`TcpConnect`]. See the [module docs](self).
/// Cloning is an `Arc` increment.
#[derive(Clone, Debug)]
pub struct TcpMetrics {
    inner: Arc<Families>,
}

#[derive(Debug)]
struct Families {
    open_total: Family<TcpLabels, Counter>,
    open: Family<TcpLabels, Gauge>,
    read: Family<TcpLabels, Counter>,
    write: Family<TcpLabels, Counter>,
    close: Family<CloseLabels, Counter>,
    conns: HandleCache<Arc<TcpLabels>, Arc<ConnHandles>>,
    /// `inbound_tcp_errors_total` and `outbound_tcp_errors_total`.
    errors: ErrorFamilies<TcpErrorLabels>,
    /// The keys of `conns`' hash. A passed-through connection's `sni` is
    /// the peer's choice, so a hash anyone can compute would let a client
    /// pick server names that all land in one bucket of `conns`, and make
    /// every new connection scan up to the series limit's worth of
    /// entries. Keyed per registration, the hash cannot be predicted.
    /// (HTTP targets keep the unkeyed hash: their values are configured
    /// names and identities the trust bundle vouches for.)
    keys: RandomState,
}

impl TcpMetrics {
    /// Registers the transport families in `registry` with the default
    /// [`MetricsConfig`]. Register once per registry.
    pub fn register(registry: &mut Registry) -> Self {
        Self::register_with(registry, MetricsConfig::default())
    }

    /// Registers the transport families in `registry`, bounded as `config`
    /// says.
    pub fn register_with(registry: &mut Registry, config: MetricsConfig) -> Self {
        let limit = config.series_limit().get();
        let families = Families {
            open_total: Family::new(limit, Counter::default),
            open: Family::new(limit, Gauge::default),
            read: Family::new(limit, Counter::default),
            write: Family::new(limit, Counter::default),
            close: Family::new(limit, Counter::default),
            conns: HandleCache::default(),
            keys: RandomState::new(),
            errors: ErrorFamilies::register(
                registry,
                limit,
                ["inbound_tcp_errors", "outbound_tcp_errors"],
                [
                    "Inbound TCP connections the proxy closed for an error of its own",
                    "Outbound TCP connections the proxy closed for an error of its own",
                ],
            ),
        };
        registry.register(
            "tcp_open",
            "Total count of opened connections",
            families.open_total.clone(),
        );
        registry.register(
            "tcp_open_connections",
            "Number of currently open connections",
            families.open.clone(),
        );
        registry.register(
            "tcp_read_bytes",
            "Total count of bytes read from peers",
            families.read.clone(),
        );
        registry.register(
            "tcp_write_bytes",
            "Total count of bytes written to peers",
            families.write.clone(),
        );
        registry.register(
            "tcp_close",
            "Total count of closed connections",
            families.close.clone(),
        );
        let [(inbound_folds, inbound), (outbound_folds, outbound)] = families.errors.folds();
        registry.register(
            "tcp_series_overflow",
            "Observations recorded in an overflow series because their family reached its series limit",
            FoldCounters::new(
                vec![
                    ("tcp_open_total", families.open_total.folds()),
                    ("tcp_open_connections", families.open.folds()),
                    ("tcp_read_bytes_total", families.read.folds()),
                    ("tcp_write_bytes_total", families.write.folds()),
                    ("tcp_close_total", families.close.folds()),
                ],
                vec![
                    ("inbound_tcp_errors_total", inbound_folds, inbound),
                    ("outbound_tcp_errors_total", outbound_folds, outbound),
                ],
            ),
        );
        Self {
            inner: Arc::new(families),
        }
    }

    /// Counts a connection the proxy closed for `error`, in
    /// `inbound_tcp_errors_total` or `outbound_tcp_errors_total`:
    /// `target_addr` is the address the connection came to (inbound: the
    /// application's port, as the HTTP families' `target_port`) or the
    /// one the application connected to (outbound). Call it once per
    /// connection, where the error that ends it is met; it finds the
    /// series then, so a connection that ends well costs nothing. See
    /// [`errors`](crate::errors).
    pub fn count_error(&self, direction: Direction, target_addr: SocketAddr, error: ProxyError) {
        let labels = TcpErrorLabels {
            direction,
            target_addr,
            error,
        };
        self.inner.errors.counter(direction, &labels).0.inc();
    }

    /// The handles of a connection with these labels.
    fn conn(&self, direction: Direction, peer: Peer, tls: &Tls) -> Arc<ConnHandles> {
        let view = (direction, peer, TlsView::of(tls));
        let f = &self.inner;
        f.conns.get_or_resolve(
            f.keys.hash_one(view),
            |k| (k.direction, k.peer, k.tls.view()) == view,
            || {
                let labels = Arc::new(TcpLabels {
                    direction,
                    peer,
                    tls: crate::labels::TlsLabels::of(tls),
                });
                let open_total = f.open_total.get_or_create(&labels);
                let open = f.open.get_or_create(&labels);
                let read = f.read.get_or_create(&labels);
                let write = f.write.get_or_create(&labels);
                let close_labels = CloseLabels {
                    conn: labels.clone(),
                    errno: "",
                };
                let clean = f.close.get_or_create(&close_labels);
                let folded =
                    open_total.folded || open.folded || read.folded || write.folded || clean.folded;
                let handles = Arc::new(ConnHandles {
                    labels: labels.clone(),
                    open_total: open_total.metric,
                    open: open.metric,
                    read: read.metric,
                    write: write.metric,
                    close_clean: clean.metric,
                    close: f.close.clone(),
                });
                if folded {
                    Resolved::Once(handles)
                } else {
                    Resolved::Cache(labels, handles)
                }
            },
        )
    }
}

/// The resolved series of one label set of connections.
#[derive(Debug)]
pub(crate) struct ConnHandles {
    labels: Arc<TcpLabels>,
    open_total: Counter,
    open: Gauge,
    read: Counter,
    write: Counter,
    close_clean: Counter,
    close: Family<CloseLabels, Counter>,
}

impl ConnHandles {
    fn opened(&self) {
        self.open_total.inc();
        self.open.inc();
    }

    fn closed(&self, errno: Option<&'static str>) {
        self.open.dec();
        match errno {
            None => {
                self.close_clean.inc();
            }
            Some(errno) => {
                let labels = CloseLabels {
                    conn: self.labels.clone(),
                    errno,
                };
                self.close.get_or_create(&labels).metric.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::conn::{Sni, Tls};
    use prometheus_client::registry::Registry;

    use super::*;

    /// Two sidecars (or two registries) hash the same peer-chosen server
    /// name differently, so no client can compute names that share a
    /// bucket of the connection cache.
    #[test]
    fn the_connection_cache_hash_is_keyed_per_registration() {
        let a = TcpMetrics::register(&mut Registry::default());
        let b = TcpMetrics::register(&mut Registry::default());
        let tls = Tls::Passthrough {
            sni: Sni::parse("app.example").unwrap(),
        };
        let view = (Direction::Inbound, Peer::Src, TlsView::of(&tls));
        assert_ne!(
            a.inner.keys.hash_one(view),
            b.inner.keys.hash_one(view),
            "the hash of a label set must not be the same for every registration"
        );
    }
}
