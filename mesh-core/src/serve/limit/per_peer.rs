//! A limit on how many connections one peer address holds at once: see
//! [`ConnectionLimit::per_peer`](super::ConnectionLimit::per_peer) for
//! why and how.

use std::{
    collections::{HashMap, hash_map::Entry},
    fmt,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::{
    error::BoxError,
    serve::{Accept, Accepted, Protocol},
};

/// An [`Accept`] hook that lets each peer IP address hold at most a
/// number of connections at once, and hands the rest of its connections
/// to the hook it wraps. Made, and documented, by
/// [`ConnectionLimit::per_peer`](super::ConnectionLimit::per_peer).
/// Clones share the counts.
#[derive(Clone)]
pub struct PerPeerLimit<A> {
    inner: A,
    peers: Arc<Peers>,
}

impl<A: fmt::Debug> fmt::Debug for PerPeerLimit<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerPeerLimit")
            .field("inner", &self.inner)
            .field("max", &self.peers.max)
            .finish_non_exhaustive()
    }
}

impl<A> PerPeerLimit<A> {
    /// `inner`, behind a limit of `max` connections per peer address (at
    /// least 1).
    pub(super) fn new(inner: A, max: usize) -> Self {
        Self {
            inner,
            peers: Arc::new(Peers {
                max: max.max(1),
                open: Mutex::default(),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// The most connections one peer address holds at once.
    pub fn max(&self) -> usize {
        self.peers.max
    }

    /// How many connections `peer` holds now.
    pub fn open(&self, peer: IpAddr) -> usize {
        self.peers
            .lock()
            .get(&peer.to_canonical())
            .map_or(0, |peer| peer.open)
    }

    /// How many connections were closed for being over their peer's
    /// limit since the hook was made: for a counter of refused
    /// connections.
    pub fn refused(&self) -> u64 {
        self.peers.refused.load(Ordering::Relaxed)
    }
}

/// The connections each peer address holds. Only peers that hold one
/// have an entry, so the map is no larger than the server's limit.
struct Peers {
    max: usize,
    open: Mutex<HashMap<IpAddr, Peer>>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Peer {
    open: usize,
    /// Whether a refusal has been logged since the peer came: one line
    /// until it has closed every connection, not one a connection, nor
    /// one each time it closes one and opens two.
    refusing: bool,
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Peer>> {
        // Nothing panics while holding it; were something to, the counts
        // are still whole numbers.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `ip`, or `None` when it holds the
    /// most already.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let first_refusal = {
            let mut open = self.lock();
            let peer = open.entry(ip).or_default();
            if peer.open < self.max {
                peer.open += 1;
                return Some(Slot {
                    peers: self.clone(),
                    ip,
                });
            }
            !std::mem::replace(&mut peer.refusing, true)
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        if first_refusal {
            tracing::info!(
                peer = %ip,
                max = self.max,
                "closing connections from a peer that holds its most; more are logged at debug"
            );
        }
        None
    }

    fn give_back(&self, ip: IpAddr) {
        let mut open = self.lock();
        if let Entry::Occupied(mut entry) = open.entry(ip) {
            let peer = entry.get_mut();
            peer.open = peer.open.saturating_sub(1);
            if peer.open == 0 {
                entry.remove();
            }
        }
    }
}

/// One connection's place under its peer's limit, given back when it is
/// dropped.
struct Slot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.peers.give_back(self.ip);
    }
}

impl<A: Accept<TcpStream>> Accept<TcpStream> for PerPeerLimit<A> {
    type Io = PeerIo<A::Io>;
    type Future = PerPeerFuture<A::Future>;

    fn accept(&self, tcp: TcpStream) -> Self::Future {
        let slot = match tcp.peer_addr() {
            Ok(peer) => match self.peers.take(peer.ip().to_canonical()) {
                Some(slot) => slot,
                None => {
                    let error = format!(
                        "closed: {} already holds {} connections, the most one peer address may",
                        peer.ip().to_canonical(),
                        self.peers.max
                    );
                    return PerPeerFuture::refused(error.into());
                }
            },
            Err(error) => return PerPeerFuture::refused(error.into()),
        };
        PerPeerFuture {
            inner: Some(self.inner.accept(tcp)),
            slot: Some(slot),
            refused: None,
        }
    }

    fn for_protocol(&self, protocol: Protocol) -> Self {
        Self {
            inner: self.inner.for_protocol(protocol),
            peers: self.peers.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a connection [`PerPeerLimit`] let through: the inner
    /// hook's, holding the connection's place meanwhile.
    pub struct PerPeerFuture<F> {
        #[pin]
        inner: Option<F>,
        slot: Option<Slot>,
        refused: Option<BoxError>,
    }
}

impl<F> PerPeerFuture<F> {
    fn refused(error: BoxError) -> Self {
        Self {
            inner: None,
            slot: None,
            refused: Some(error),
        }
    }
}

impl<F> fmt::Debug for PerPeerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerPeerFuture")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<F, I> Future for PerPeerFuture<F>
where
    F: Future<Output = Result<Accepted<I>, BoxError>>,
{
    type Output = Result<Accepted<PeerIo<I>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let error = this.refused.take().unwrap_or_else(|| "polled again".into());
            return Poll::Ready(Err(error));
        };
        let accepted = std::task::ready!(inner.poll(cx))?;
        let Some(slot) = this.slot.take() else {
            return Poll::Ready(Err("polled again".into()));
        };
        Poll::Ready(Ok(Accepted {
            io: PeerIo {
                io: accepted.io,
                _slot: slot,
            },
            tls: accepted.tls,
            alpn: accepted.alpn,
            retire: accepted.retire,
        }))
    }
}

pin_project_lite::pin_project! {
    /// A connection's stream, holding its place under its peer's limit
    /// for as long as it is open.
    pub struct PeerIo<I> {
        #[pin]
        io: I,
        _slot: Slot,
    }
}

impl<I: fmt::Debug> fmt::Debug for PeerIo<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIo")
            .field("io", &self.io)
            .field("peer", &self._slot.ip)
            .finish()
    }
}

impl<I: AsyncRead> AsyncRead for PeerIo<I> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for PeerIo<I> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(max: usize) -> Arc<Peers> {
        PerPeerLimit::new((), max).peers
    }

    #[test]
    fn a_peer_holds_at_most_max_and_gets_places_back() {
        let peers = peers(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = peers.take(a);
        let second = peers.take(a);
        assert!(first.is_some() && second.is_some());
        assert!(peers.take(a).is_none());
        assert!(
            peers.take(b).is_some(),
            "another peer has places of its own"
        );
        assert_eq!(peers.refused.load(Ordering::Relaxed), 1);
        drop(first);
        assert!(peers.take(a).is_some());
    }

    #[test]
    fn a_peer_is_logged_once_until_it_has_closed_every_connection() {
        let peers = peers(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let refusing = |peers: &Arc<Peers>| peers.lock().get(&a).is_some_and(|p| p.refusing);
        let first = peers.take(a);
        let second = peers.take(a);
        assert!(peers.take(a).is_none());
        assert!(refusing(&peers));
        // It closes one and opens two: the refusal is not logged again.
        drop(first);
        let third = peers.take(a);
        assert!(peers.take(a).is_none());
        assert!(refusing(&peers));
        drop((second, third));
        let _again = peers.take(a);
        assert!(!refusing(&peers), "a peer that left came back unlogged");
    }

    #[test]
    fn a_peer_that_holds_nothing_has_no_entry() {
        let peers = peers(1);
        let a: IpAddr = [10, 0, 0, 1].into();
        drop(peers.take(a));
        assert!(peers.lock().is_empty());
    }

    #[test]
    fn an_ipv4_address_mapped_into_ipv6_is_the_same_peer() {
        let limit = PerPeerLimit::new((), 1);
        let v4: IpAddr = [10, 0, 0, 1].into();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _slot = limit.peers.take(v4);
        assert_eq!(limit.open(mapped), 1);
    }
}
