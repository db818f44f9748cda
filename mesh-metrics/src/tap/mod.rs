//! Tap: watch live requests through a proxy, one line per event, as
//! `linkerd viz tap` does.
//!
//! Metrics say how many requests failed; a tap shows which ones: their
//! method, authority and path, the status that came back, how long it
//! took and how many bytes the response had. It is what an operator opens
//! when a success rate drops and the question becomes "which requests?".
//!
//! A [`Tap`] is the hub. [`TapLayer`] puts it in front of a stack, inbound
//! or outbound; the admin server serves it at `/tap` ([`Tap::serve`]),
//! which streams an event as a line of JSON ([`TapEvent`]) for each
//! request that matches the query ([`TapFilter`]: direction, method,
//! authority, path prefix, and at most `max_rps` requests a second,
//! Linkerd's default of 100 when not given). [`watch`] is the client:
//! `sidecar tap` prints its events in Linkerd's format.
//!
//! # What it costs
//!
//! A proxy nobody taps pays one relaxed atomic load per request, and
//! wraps its response body in a type that does nothing (and adds a
//! pointer to its size). While a tap is open, each request takes a lock
//! to be matched against the open taps, and reads the clock only if one
//! matches. One that matches is copied once (its method, authority and
//! path), and its three events share what they repeat; the tap's reader,
//! not the request, writes the addresses out as text. Events go to each tap
//! through a bounded queue ([`QUEUE`] events, [`MAX_QUEUED_BYTES`]): a
//! tap that reads too slowly loses events, and never slows the requests
//! it watches, nor holds more than that of what their clients sent. A tap
//! that loses an event of a request gets none of its later ones (lost
//! too): its reader sees each request's events in order from the request
//! event, or none, as Linkerd's proxy taps a request only if its tap took
//! the first event. The events lost are counted ([`Tap::dropped`], and
//! `tap_events_dropped_total` once [registered](Tap::register)).
//!
//! # Who may tap
//!
//! A tap shows paths and authorities, which can carry what an application
//! considers private, so `/tap` answers loopback clients only, as
//! `/shutdown` does (`kubectl port-forward` connects from loopback), and
//! not when a browser says a page of another site sent it: such a page
//! cannot read the events, but could hold every place. At most
//! [`MAX_TAPS`] taps are open at once; the next gets `503`.
//!
//! # Shutdown
//!
//! A tap's stream has no end of its own: it lasts as long as its client
//! reads. A server that drains finishes the responses in flight first,
//! so an operator's open tap would hold the proxy's shutdown for the
//! whole grace period. A hub given the server's shutdown signal
//! ([`Tap::with_shutdown`]) ends every stream when it fires, and refuses
//! new taps from then on (`503`).

mod event;
mod filter;
mod queue;
mod service;
mod stream;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use http::Request;
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    serve::shutdown::Shutdown,
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::time::Instant;

use self::filter::RateGate;
pub use self::{
    event::{Proxy, TapEvent, TapEventKind},
    filter::{DEFAULT_MAX_RPS, InvalidTapQuery, MAX_MAX_RPS, TapFilter},
    service::{TapBody, TapFuture, TapLayer, TapService},
    stream::{CONNECT_TIMEOUT, MAX_EVENT_LINE, WatchError, watch},
};
use crate::{body_rule::BodyRule, labels::Direction};

/// The most taps open at once on one hub. Every tap comes from loopback,
/// and an admin server that shares its connections out per peer address
/// (the reference sidecar gives each 16) must keep room beside them for
/// the `503` that refuses one more and for loopback's other requests
/// (`sidecar stat`, probes through `kubectl port-forward`): eight taps
/// leave half of such a share.
pub const MAX_TAPS: usize = 8;

/// The events queued for one tap before further ones are lost.
pub const QUEUE: usize = 1024;

/// The most bytes the events queued for one tap may hold: 1 MiB, past
/// which they are lost as when [`QUEUE`] are. A request's path and
/// authority may be as long as its head, so a tap nobody reads would
/// otherwise hold [`QUEUE`] of them; events of ordinary requests (a few
/// hundred bytes) fill [`QUEUE`] first.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// The hub requests are tapped through. Cloning shares it. See the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Tap {
    hub: Arc<Hub>,
    /// When the streams of `/tap` end; `None`: when their clients go.
    shutdown: Option<Shutdown>,
}

#[derive(Debug, Default)]
struct Hub {
    /// How many taps are open: read on every request, so that a proxy
    /// nobody taps takes no lock.
    open: AtomicUsize,
    taps: Mutex<Vec<Watcher>>,
    next_tap: AtomicU64,
    next_request: AtomicU64,
    /// Events lost to full queues.
    dropped: Counter,
}

/// One open tap, as the hub holds it.
#[derive(Debug)]
struct Watcher {
    id: u64,
    filter: TapFilter,
    gate: RateGate,
    queue: queue::Queue,
}

/// An open tap: its events, until it is dropped.
#[derive(Debug)]
pub struct Subscription {
    events: queue::Events,
    id: u64,
    hub: Arc<Hub>,
}

/// Why a tap could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTaps;

impl std::fmt::Display for TooManyTaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{MAX_TAPS} taps are open already")
    }
}

impl std::error::Error for TooManyTaps {}

impl Tap {
    /// A hub with no tap open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every stream [`serve`](Self::serve) answers with when `signal`
    /// fires, and refuses taps from then on, so that an open tap does not
    /// hold a draining server for its grace period. See the
    /// [module docs](self#shutdown).
    #[must_use]
    pub fn with_shutdown(self, signal: Shutdown) -> Self {
        Self {
            shutdown: Some(signal),
            ..self
        }
    }

    /// Opens a tap for the requests `filter` matches.
    ///
    /// # Errors
    ///
    /// [`MAX_TAPS`] taps are open already.
    pub fn subscribe(&self, filter: TapFilter) -> Result<Subscription, TooManyTaps> {
        let mut taps = self.hub.lock();
        if taps.len() >= MAX_TAPS {
            return Err(TooManyTaps);
        }
        let id = self.hub.next_tap.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = queue::channel();
        taps.push(Watcher {
            id,
            gate: RateGate::new(filter.max_rps, Instant::now()),
            filter,
            queue,
        });
        self.hub.open.store(taps.len(), Ordering::Relaxed);
        Ok(Subscription {
            events: receiver,
            id,
            hub: self.hub.clone(),
        })
    }

    /// Events lost so far because a tap's queue was full: its reader
    /// fell behind.
    pub fn dropped(&self) -> u64 {
        self.hub.dropped.get()
    }

    /// Registers `tap_events_dropped_total` in `registry`: the events lost
    /// because a tap's reader fell behind, so that a tap that shows fewer
    /// requests than metrics count can be told from one that missed them.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tap_events_dropped",
            "Tap events lost because the tap's reader fell behind",
            self.hub.dropped.clone(),
        );
    }

    /// How many taps are open.
    pub fn open(&self) -> usize {
        self.hub.open.load(Ordering::Relaxed)
    }

    /// Starts tapping `req` on `direction`, if an open tap wants it: the
    /// request event is sent, and what the rest of the exchange sends
    /// through is returned.
    fn start<B>(&self, direction: Direction, req: &Request<B>) -> Option<Tapped> {
        if self.hub.open.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // The clock is read once a filter matches: while the open taps
        // watch other requests, the rest pay for the match alone. A tap
        // leaves the list when its subscription is dropped, which is the
        // only way its queue closes.
        let mut now = None;
        let watchers: Vec<Watching> = {
            let mut taps = self.hub.lock();
            taps.iter_mut()
                .filter_map(|tap| {
                    let wanted = tap.filter.matches(direction, req)
                        && tap.gate.admit(*now.get_or_insert_with(Instant::now));
                    wanted.then(|| Watching {
                        queue: tap.queue.clone(),
                        lost: false,
                    })
                })
                .collect()
        };
        let now = match now {
            Some(now) if !watchers.is_empty() => now,
            _ => return None,
        };
        let mut tapped = Tapped {
            head: Arc::new(Head::of(
                self.hub.next_request.fetch_add(1, Ordering::Relaxed),
                direction,
                req,
            )),
            watchers,
            dropped: self.hub.dropped.clone(),
            start: now,
            body_rule: BodyRule::of(req.method()),
        };
        tapped.send(event::TapEventKind::Req {
            method: req.method().as_str().to_owned(),
            authority: filter::authority(req).unwrap_or_default().to_owned(),
            path: req.uri().path().to_owned(),
        });
        // Kept even when every tap lost the request: its later events are
        // counted as lost with it.
        Some(tapped)
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watcher>> {
        // A panic elsewhere while holding the lock leaves a list that is
        // still whole: every change to it is one call.
        self.taps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Subscription {
    /// The next event; `None` only if the hub is gone.
    pub async fn next(&mut self) -> Option<TapEvent> {
        std::future::poll_fn(|cx| self.events.poll_recv(cx)).await
    }

    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<TapEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut taps = self.hub.lock();
        taps.retain(|tap| tap.id != self.id);
        self.hub.open.store(taps.len(), Ordering::Relaxed);
    }
}

/// What every event of one request repeats, as the request path takes
/// it: addresses and labels are written out as text by the reader of the
/// tap, not by the request.
#[derive(Debug)]
struct Head {
    id: u64,
    proxy: Proxy,
    src: Option<SocketAddr>,
    dst: Dst,
    tls: Option<&'static str>,
    /// `src`, `dst` and `tls` as text, written by the reader of the first
    /// event and copied into the others.
    text: OnceLock<HeadText>,
}

#[derive(Debug)]
struct HeadText {
    src: String,
    dst: String,
    tls: Option<String>,
}

/// Where a tapped request went.
#[derive(Debug)]
enum Dst {
    /// Inbound: the address the proxy accepted it on.
    Local(Option<SocketAddr>),
    /// Outbound: the authority it was addressed to.
    Authority(String),
}

impl Head {
    fn of<B>(id: u64, direction: Direction, req: &Request<B>) -> Self {
        let conn = req.extensions().get::<ConnectionInfo>();
        let src = conn.map(|c| c.remote_addr);
        match direction {
            Direction::Inbound => Self {
                id,
                proxy: Proxy::In,
                src,
                dst: Dst::Local(conn.map(|c| c.local_addr)),
                tls: conn.map(|c| tls_label(&c.tls)),
                text: OnceLock::new(),
            },
            Direction::Outbound => Self {
                id,
                proxy: Proxy::Out,
                src,
                dst: Dst::Authority(filter::authority(req).unwrap_or_default().to_owned()),
                tls: None,
                text: OnceLock::new(),
            },
        }
    }
}

fn tls_label(tls: &Tls) -> &'static str {
    match tls {
        Tls::Mutual { .. } => "true",
        Tls::NoClientCert => "no_identity",
        Tls::Plaintext(reason) => reason.as_label(),
        // Never an HTTP request's: a passed-through connection is served
        // as opaque bytes.
        Tls::Passthrough { .. } => "opaque",
    }
}

/// A request being tapped: where its events go.
#[derive(Debug)]
struct Tapped {
    head: Arc<Head>,
    watchers: Vec<Watching>,
    /// Counts the events a full queue loses.
    dropped: Counter,
    start: Instant,
    /// Whether its response has a body a server reads, by its method.
    body_rule: BodyRule,
}

/// A tap a request's events go to.
#[derive(Debug)]
struct Watching {
    queue: queue::Queue,
    /// The tap lost an event of the request: it gets none of the rest,
    /// which are lost too.
    lost: bool,
}

impl Tapped {
    /// Sends `kind` to every tap that took the request. A tap whose queue
    /// is full loses it, and the request's later events: a tap's reader
    /// sees a request's events in order, from its first, or none of them
    /// (as Linkerd's proxy taps a request only if its tap took the
    /// request's first event).
    fn send(&mut self, kind: TapEventKind) {
        // The last tap that still wants events takes the event itself, the
        // others a copy: one tap is the usual case, and copies nothing.
        let last = self.watchers.iter().rposition(|w| !w.lost);
        let mut kind = Some(kind);
        let mut lost = 0;
        for (i, watcher) in self.watchers.iter_mut().enumerate() {
            let event = if watcher.lost {
                None
            } else if Some(i) == last {
                kind.take()
            } else {
                kind.clone()
            };
            let Some(event) = event else {
                lost += 1;
                continue;
            };
            if !watcher.queue.push(&self.head, event) {
                watcher.lost = true;
                lost += 1;
            }
        }
        if lost > 0 {
            self.dropped.inc_by(lost);
        }
    }
}

#[cfg(test)]
mod tests;
