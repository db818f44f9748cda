//! A bound on how long an HTTP stream may go quiet: see
//! [`ServerConfig::stream_idle_timeout`](super::ServerConfig::stream_idle_timeout).
//!
//! # Why
//!
//! The server times a request's headers, detection and a peer that reads
//! nothing, but not a stream that simply stops: a client that trickles its
//! request body a byte a minute, or an upstream whose response never
//! finishes, holds its stream, and for HTTP/1 its connection and its
//! place under the connection limit, for ever. Envoy bounds this with its
//! `stream_idle_timeout` (5 minutes by default): a stream with no activity
//! for that long is ended, with `408` when no response head has gone out,
//! and a reset after. Long-lived quiet streams are normal for gRPC
//! (watches, subscriptions), and Linkerd has no such bound, so here it is
//! off unless configured.
//!
//! # How
//!
//! Activity is a request body frame, the response head, or a response
//! body frame. A stream gets one timer when it starts. Activity only
//! stores the time it happened; when the timer fires, it is pushed back to
//! one timeout after the latest activity, and only when there was none
//! since does the stream end. So a busy stream touches the timer once per
//! timeout, not once per frame.
//!
//! Response activity is seen per stream: the server wraps each response
//! future and body ([`future`], [`body`]). The request body is the
//! application's to read (the service takes hyper's own body type), so its
//! frames are seen where they enter, on the connection's reads ([`reads`]):
//! for HTTP/1, which carries one stream at a time, any byte read; for
//! HTTP/2, each stream's own `DATA` frames and trailers, found by their
//! frame headers, which name the stream (hyper does not tell a request its
//! stream, so the reads hand each stream over to its request: see
//! [`reads`]). A quiet HTTP/2 stream is cut however busy the other streams
//! of its connection are, and its client's pings, window updates and
//! settings never count.
//!
//! When it fires before the response head, the service's future is
//! dropped (which cancels whatever it was waiting for) and the client gets
//! `408 Request Timeout`, Envoy's status, with `mesh-error: stream idle
//! timeout`; a gRPC client gets a trailers-only response with
//! `grpc-status: 4` (`DEADLINE_EXCEEDED`), the code of the mesh's other
//! timeouts. An HTTP/1 answer says `connection: close`, as the request's
//! body may be half read. After the head, the response body fails: hyper
//! resets an HTTP/2 stream (`RST_STREAM`) and closes an HTTP/1
//! connection, so the client sees a truncated body, never a silently
//! complete one.
//!
//! One quiet stream escapes the bound: an HTTP/2 response held by the
//! client's flow control. hyper polls a response body only while the
//! stream has send window, so a client that grants none (an initial
//! window of zero, and no `WINDOW_UPDATE`) leaves the body, and the
//! clock in it, unpolled, and the stream open; nor do the server's
//! writes wait, so the write stall bound does not see it either. Ending
//! such a stream needs a hook in hyper's HTTP/2 server (a send window
//! timeout, or a way to reset a stream from outside its body).
//!
//! Upgrades and `CONNECT` tunnels are not timed: a tunnel's bytes are the
//! application's protocol, not a stream's frames, and a tunnel keeps the
//! write stall bound and ends with its connection or the shutdown grace.
//! A request that asks for an upgrade is timed until a `101` answers it,
//! though: any client can add an `Upgrade` header, and one whose answer
//! is not `101` is a stream like any other.

pub(super) mod body;
pub(super) mod future;
pub(super) mod reads;

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use self::reads::{LastRead, Opened};

/// The stream idle bound of one connection: handed to each of its
/// streams.
#[derive(Clone, Debug)]
pub(super) struct StreamIdle {
    timeout: Duration,
    /// The connection's last request data: on HTTP/1, its one stream's.
    reads: Arc<LastRead>,
    /// On HTTP/2, each stream's, handed over by the reads.
    opened: Option<Arc<Opened>>,
}

impl StreamIdle {
    /// The bound of an HTTP/1 connection, whose reads note `reads`.
    pub(super) fn http1(timeout: Duration, reads: Arc<LastRead>) -> Self {
        Self {
            timeout,
            reads,
            opened: None,
        }
    }

    /// The bound of an HTTP/2 connection, whose reads note `reads` and
    /// hand its streams over through `opened`.
    pub(super) fn http2(timeout: Duration, reads: Arc<LastRead>, opened: Arc<Opened>) -> Self {
        Self {
            timeout,
            reads,
            opened: Some(opened),
        }
    }

    /// The request data of the stream a request was just made for: to be
    /// taken for every request, timed or not, as HTTP/2 hands its streams
    /// over in order. `None` when none is to come.
    pub(super) fn request_data(&self) -> Option<Arc<LastRead>> {
        let Some(opened) = &self.opened else {
            return Some(self.reads.clone());
        };
        opened.take().unwrap_or_else(|| {
            // Not expected: the reads hand over every stream h2 takes.
            tracing::debug!("a request whose HTTP/2 stream is not known; timing it by its connection's request data");
            Some(self.reads.clone())
        })
    }

    /// The clock of a stream starting now, whose request data `reads`
    /// notes. What it logs names the peer through the connection's span.
    pub(super) fn start(&self, reads: Option<Arc<LastRead>>) -> StreamClock {
        let now = Instant::now();
        StreamClock {
            timeout: self.timeout,
            timer: Box::pin(tokio::time::sleep_until(now + self.timeout)),
            last: now,
            reads,
        }
    }
}

/// The time since a stream's last activity.
pub(super) struct StreamClock {
    timeout: Duration,
    // Boxed: it moves from the response future to its body.
    timer: Pin<Box<Sleep>>,
    /// The stream's own last activity: its response head or a frame.
    last: Instant,
    /// The stream's last request data, when any is to come.
    reads: Option<Arc<LastRead>>,
}

impl StreamClock {
    /// The stream was active now.
    #[inline]
    pub(super) fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// `Ready` once the stream has been quiet for the whole timeout.
    pub(super) fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let last = match &self.reads {
                Some(reads) => self.last.max(reads.get()),
                None => self.last,
            };
            let deadline = last + self.timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl std::fmt::Debug for StreamClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamClock")
            .field("timeout", &self.timeout)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

/// The error a response body ends with when its stream went quiet.
#[derive(Debug)]
pub(super) struct StreamIdleTimeout;

impl std::fmt::Display for StreamIdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stream was idle for the stream idle timeout")
    }
}

impl std::error::Error for StreamIdleTimeout {}

#[cfg(test)]
mod tests;
