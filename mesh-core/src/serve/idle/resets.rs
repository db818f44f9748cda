//! The count of an HTTP/2 connection's streams its client reset
//! prematurely: see
//! [`ServerConfig::http2_premature_reset_total_streams`](crate::serve::ServerConfig::http2_premature_reset_total_streams).
//!
//! # Why
//!
//! A paced rapid reset (CVE-2023-44487) opens a stream, waits until the
//! server has started on it, resets it, and opens the next: each stream
//! costs the service a call, while the client never holds more than one
//! open. h2 bounds only the streams reset before the server took them,
//! which a client that waits a round trip never leaves. Envoy ends such
//! a connection by the share of its streams reset within a minimum
//! lifetime of opening them; so does the server here, counting on the
//! connection's reads, which see every `HEADERS` that opens a stream and
//! every `RST_STREAM` (see [`reads`](super::reads)).
//!
//! # How
//!
//! Two counters per run of streams (served, which the connection's
//! service counts, and reset prematurely, which the reads do: see
//! [`Flooded`]), and when the streams opened, kept without a time per
//! stream: stream ids only grow, so the streams opened since a moment are
//! those above the highest opened before it. [`Marks`] notes that highest stream at most four
//! times a lifetime; a reset is premature when its stream is above the
//! oldest mark younger than the lifetime. A stream is always above a mark
//! taken within a quarter lifetime before it opened, so a reset within
//! three quarters of the lifetime always counts; a mark younger than the
//! lifetime has only streams younger than it above it, so a reset after
//! the whole lifetime never does. The memory is the same whatever the
//! connection's age or traffic; serving a stream costs a counter, and
//! opening one a comparison of times.
//!
//! # After the bound
//!
//! Past the bound the connection goes away gracefully, and the streams
//! its client opens from then on are counted, by one counter: up to the
//! bound's grace, [`http2_max_concurrent_streams`](crate::serve::ServerConfig::http2_max_concurrent_streams),
//! they are served; the next one fails the reads, which ends the
//! connection. A client may open a stream until it has read the
//! `GOAWAY` (RFC 9113 §6.8), so one that pipelines its calls (a gRPC
//! channel whose calls time out within a second during an upstream's
//! incident, say) has streams on the way that it sent before it could
//! know. Cutting at the first of them would end its open calls too,
//! though it tripped the bound by giving up on calls, not by flooding.
//! h2 refuses new streams itself only once the client has answered the
//! ping sent with the first `GOAWAY` (which names the last stream id
//! there is); a client that never answers could otherwise open streams
//! for ever. A client that keeps to the concurrency the server announced
//! has at most that many streams in flight at once, so the grace covers
//! a burst of them; streams that end and are replaced while the `GOAWAY`
//! is on its way count too (the counter adds no per-stream state to
//! tell them apart), so a client that opens more than that within the
//! round trip is cut. Streams opened after the ping's answer, which h2
//! ignores, count as well: the client had read the `GOAWAY`. A flood
//! gets at most that many calls more, no more than it could hold open at
//! once anyway; the streams it holds open keep the connection until they
//! end, as any client's may (only a stream idle timeout bounds them).
//! Go's HTTP/2 server measures its own rapid-reset bound in the same
//! unit: it ends a connection whose calls waiting to start pass four
//! times the streams it announced (`golang.org/x/net/http2`,
//! `scheduleHandler`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{error::BoxError, serve::ServerConfig};

/// How many marks a lifetime holds.
const MARKS: usize = 4;

/// The bound of [`ServerConfig::http2_premature_reset_total_streams`],
/// when on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::serve) struct ResetBound {
    /// How many streams a run counts.
    run: u32,
    /// How soon after its opening a stream's reset is premature.
    lifetime: Duration,
    /// How many streams opened past the bound are served before the
    /// next one ends the connection: see the module's docs.
    grace: u32,
}

impl ResetBound {
    /// The bound `config` sets, or `None` when it is off.
    pub(in crate::serve) fn of(config: &ServerConfig) -> Option<Self> {
        let run = config
            .http2_premature_reset_total_streams
            .filter(|&n| n > 0)?;
        let lifetime = config.http2_premature_reset_min_stream_lifetime;
        let grace = config.http2_max_concurrent_streams.max(1);
        (!lifetime.is_zero()).then_some(Self {
            run,
            lifetime,
            grace,
        })
    }

    /// How many premature resets in a run end the connection: half of it,
    /// rounded up.
    fn most(self) -> u32 {
        self.run.div_ceil(2)
    }
}

/// What a connection's reads and its service share of the bound: whether
/// its client went past its [`ResetBound`], set by its reads, looked at by
/// the connection (see [`Handover`](super::reads::Handover)) and by what
/// tells how it ended; and how many of its streams the service was called
/// for, which the reads count runs by.
///
/// A run counts the streams served, not every `HEADERS` that opens one:
/// h2 refuses a malformed head, or a stream past
/// [`http2_max_concurrent_streams`](crate::serve::ServerConfig::http2_max_concurrent_streams),
/// at the cost of a decode and before the service sees it, so a client
/// that sent such heads between the streams of its flood would keep its
/// resets under half of every run, for free.
#[derive(Debug, Default)]
pub(in crate::serve) struct Flooded {
    flooded: AtomicBool,
    /// Whether its reads failed for a stream opened past the bound and
    /// its grace.
    cut: AtomicBool,
    /// Whether the connection has sent its `GOAWAY`.
    told: AtomicBool,
    served: AtomicU32,
}

impl Flooded {
    pub(in crate::serve) fn is_set(&self) -> bool {
        self.flooded.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.flooded.store(true, Ordering::Relaxed);
    }

    /// The connection has sent its `GOAWAY`.
    pub(in crate::serve) fn tell(&self) {
        self.told.store(true, Ordering::Relaxed);
    }

    /// Whether the connection's reads failed for a stream its client
    /// opened past the bound and its grace, with a [`RapidReset`] of
    /// their own.
    pub(in crate::serve) fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// The service is called for one more of the connection's streams.
    pub(in crate::serve) fn serve(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// How many streams the service was called for, wrapping.
    fn served(&self) -> u32 {
        self.served.load(Ordering::Relaxed)
    }
}

/// The error a connection past its [`ResetBound`] ends with.
#[derive(Debug)]
pub(in crate::serve) struct RapidReset {
    pub(in crate::serve) bound: ResetBound,
    /// Whether the client opened more streams past the bound than its
    /// grace.
    pub(in crate::serve) kept_on: bool,
    /// Whether the connection had sent its `GOAWAY` by then: streams
    /// sent right behind the reset that went past the bound came before
    /// the client could know.
    pub(in crate::serve) told: bool,
    /// What ended the connection after it was told to go away, when not
    /// its client's leaving: a keep-alive ping it left unanswered, say.
    pub(in crate::serve) ended_by: Option<BoxError>,
}

impl std::fmt::Display for RapidReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many HTTP/2 streams reset prematurely (rapid reset): {} of at most {} \
             reset within {:?} of opening",
            self.bound.most(),
            self.bound.run,
            self.bound.lifetime,
        )?;
        match (self.kept_on, self.told) {
            (false, _) => {}
            (true, true) => write!(
                f,
                "; the client opened more than {} streams after it was told to go away",
                self.bound.grace,
            )?,
            (true, false) => write!(
                f,
                "; the client opened more than {} streams right behind, before it was told \
                 to go away",
                self.bound.grace,
            )?,
        }
        Ok(())
    }
}

impl std::error::Error for RapidReset {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.ended_by
            .as_deref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

/// A connection's count of the streams its client reset prematurely.
#[derive(Debug)]
pub(in crate::serve) struct Resets {
    bound: ResetBound,
    /// How many streams had been served when this run began.
    run_start: u32,
    /// Streams reset prematurely since this run began.
    premature: u32,
    /// Streams opened since the client went past the bound.
    late: u32,
    marks: Marks,
    flooded: Arc<Flooded>,
}

impl Resets {
    pub(in crate::serve) fn new(bound: ResetBound, flooded: Arc<Flooded>) -> Self {
        Self {
            bound,
            run_start: 0,
            premature: 0,
            late: 0,
            marks: Marks::new(bound.lifetime / MARKS as u32),
            flooded,
        }
    }

    /// Stream ids up to `below` were opened before now, and one above
    /// them now: whether it is to be served (not once the client, past
    /// the bound, has opened as many as its grace since).
    pub(in crate::serve) fn opened(&mut self, below: u32, now: Instant) -> bool {
        if self.flooded.is_set() {
            if self.late < self.bound.grace {
                self.late += 1;
                return true;
            }
            self.flooded.cut.store(true, Ordering::Relaxed);
            return false;
        }
        self.marks.note(below, now);
        true
    }

    /// The client reset `stream`, one it opened, now.
    pub(in crate::serve) fn reset(&mut self, stream: u32, now: Instant) {
        if self.flooded.is_set() || !self.marks.is_young(stream, now, self.bound.lifetime) {
            return;
        }
        // A run ends once as many streams as it counts were served.
        let served = self.flooded.served();
        if served.wrapping_sub(self.run_start) >= self.bound.run {
            self.run_start = served;
            self.premature = 0;
        }
        self.premature += 1;
        if self.premature >= self.bound.most() {
            self.flooded.set();
        }
    }

    pub(in crate::serve) fn bound(&self) -> ResetBound {
        self.bound
    }

    /// Whether the connection has sent its `GOAWAY`.
    pub(in crate::serve) fn told(&self) -> bool {
        self.flooded.told.load(Ordering::Relaxed)
    }
}

/// The highest stream opened before each of a few moments: each stream
/// above a mark's opened at or after its time.
#[derive(Debug)]
struct Marks {
    /// A ring, oldest first from the one after `newest`.
    marks: [Mark; MARKS],
    newest: usize,
    spacing: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    at: Instant,
    below: u32,
}

impl Marks {
    fn new(spacing: Duration) -> Self {
        let start = Mark {
            at: Instant::now(),
            below: 0,
        };
        Self {
            marks: [start; MARKS],
            newest: 0,
            spacing,
        }
    }

    /// A stream above `below` opens now: marked, unless the newest mark
    /// is younger than the spacing.
    fn note(&mut self, below: u32, now: Instant) {
        let newest = self.marks.get(self.newest).map(|mark| mark.at);
        let due = newest
            .and_then(|at| at.checked_add(self.spacing))
            .is_some_and(|due| due <= now);
        if due {
            self.newest = (self.newest + 1) % MARKS;
            if let Some(mark) = self.marks.get_mut(self.newest) {
                *mark = Mark { at: now, below };
            }
        }
    }

    /// Whether `stream` is above the oldest mark taken less than
    /// `lifetime` before `now`: opened since.
    fn is_young(&self, stream: u32, now: Instant, lifetime: Duration) -> bool {
        let since = now.checked_sub(lifetime);
        (1..=MARKS)
            .filter_map(|i| self.marks.get((self.newest + i) % MARKS))
            .find(|mark| since.is_none_or(|since| mark.at > since))
            .is_some_and(|mark| stream > mark.below)
    }
}

#[cfg(test)]
mod tests;
