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
//! body frame hyper takes to send. A stream gets one timer when it
//! starts. Activity only stores the time it happened; when the timer
//! fires, it is pushed back to one timeout after the latest activity, and
//! only when there was none since does the stream end. So a busy stream touches the timer once per
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
//! An HTTP/2 stream is timed in its own task instead ([`task`]): hyper
//! polls a response body only while the stream has send window, so a
//! client that grants none (an initial window of zero, and no
//! `WINDOW_UPDATE`) would leave a clock kept in the body unlooked at, and
//! the stream open for ever. The time a body frame waits for window is
//! quiet; a stream still waiting when the clock runs out is reset, up to
//! its last `DATA` frame, which h2 holds once hyper has handed it over
//! (see [`task`]).
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
pub(super) mod resets;
pub(super) mod task;

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use self::{
    reads::{LastRead, Opened},
    task::{StreamTasks, TaskClock},
};

/// The stream idle bound of one connection: handed to each of its
/// streams.
#[derive(Clone, Debug)]
pub(super) struct StreamIdle {
    timeout: Duration,
    /// The connection's last request data: on HTTP/1, its one stream's.
    reads: Arc<LastRead>,
    /// On HTTP/2, each stream's, handed over by the reads.
    opened: Option<Arc<Opened>>,
    /// On HTTP/2, the clocks handed to the streams' tasks.
    tasks: Option<Arc<StreamTasks>>,
}

impl StreamIdle {
    /// The bound of an HTTP/1 connection, whose reads note `reads`.
    pub(super) fn http1(timeout: Duration, reads: Arc<LastRead>) -> Self {
        Self {
            timeout,
            reads,
            opened: None,
            tasks: None,
        }
    }

    /// The bound of an HTTP/2 connection served in the current task,
    /// whose reads note `reads` and hand its streams over through
    /// `opened`.
    pub(super) fn http2(timeout: Duration, reads: Arc<LastRead>, opened: Arc<Opened>) -> Self {
        Self {
            timeout,
            reads,
            opened: Some(opened),
            tasks: Some(Arc::new(StreamTasks::new(timeout))),
        }
    }

    /// On HTTP/2, where the streams' tasks find their clocks: for the
    /// executor that spawns them.
    pub(super) fn tasks(&self) -> Option<&Arc<StreamTasks>> {
        self.tasks.as_ref()
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
    /// notes: kept by the response on HTTP/1, by the stream's task on
    /// HTTP/2. What it logs names the peer through the connection's span.
    pub(super) fn clock(&self, reads: Option<Arc<LastRead>>) -> Clock {
        match &self.tasks {
            None => Clock::Here(self.start(reads)),
            Some(tasks) => Clock::Task(TaskHandle(tasks.start(reads))),
        }
    }

    /// The stream a request was just made for is not timed: on HTTP/2,
    /// its task takes no clock.
    pub(super) fn untimed(&self) {
        if let Some(tasks) = &self.tasks {
            tasks.untimed();
        }
    }

    /// A clock of a stream starting now, kept where it is polled.
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

/// A stream's clock as its response future and body see it.
#[derive(Debug)]
pub(super) enum Clock {
    /// Kept by the response: on HTTP/1, which serves its stream in the
    /// connection's task, where the response is polled.
    Here(StreamClock),
    /// Kept by the stream's task, which the response tells of its
    /// activity: see [`task`].
    Task(TaskHandle),
}

impl Clock {
    /// The stream was active now.
    #[inline]
    pub(super) fn touch(&mut self) {
        match self {
            Self::Here(clock) => clock.touch(),
            Self::Task(handle) => handle.0.touch(),
        }
    }

    /// `Ready` once the stream has been quiet for the whole timeout.
    pub(super) fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Here(clock) => clock.poll_idle(cx),
            // The task polls the response again when it finds the stream
            // idle: nothing to wake here.
            Self::Task(handle) if handle.0.is_idle() => Poll::Ready(()),
            Self::Task(_) => Poll::Pending,
        }
    }
}

/// A response's hold on the clock its stream's task keeps: dropped, by a
/// response done with its clock, the task stops timing the stream.
#[derive(Debug)]
pub(super) struct TaskHandle(Arc<TaskClock>);

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.0.off();
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
        let last = || match &self.reads {
            Some(reads) => self.last.max(reads.get()),
            None => self.last,
        };
        poll_quiet(self.timer.as_mut(), self.timeout, last, cx)
    }
}

/// `Ready` once `timeout` has passed since `last()`: `timer`, set to run
/// out one timeout after some earlier activity, is pushed back when it
/// runs out early.
fn poll_quiet(
    mut timer: Pin<&mut Sleep>,
    timeout: Duration,
    last: impl Fn() -> Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        ready!(timer.as_mut().poll(cx));
        let deadline = last() + timeout;
        if deadline <= Instant::now() {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
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
