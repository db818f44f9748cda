//! HTTP/2 streams timed in their own tasks.
//!
//! # Why
//!
//! hyper serves each HTTP/2 stream in a task of its own, and polls a
//! response body only while the stream has send window: it takes a frame,
//! then waits for the client's flow control to let it go before it takes
//! the next. A client that grants no window (`SETTINGS_INITIAL_WINDOW_SIZE`
//! of zero, or a byte, and no `WINDOW_UPDATE`) leaves the body unpolled,
//! with the response, the service behind it and a stream of its
//! connection held for ever, while the socket stays writable (a "slow
//! read" on one stream, as in CVE-2019-9517). A clock kept in the body is
//! never looked at then. Envoy's `stream_idle_timeout` counts such a
//! stream as idle, since no bytes move on it.
//!
//! So the clock of an HTTP/2 stream is kept in its task: the server's
//! executor wraps the task hyper spawns for the stream ([`StreamTask`]),
//! which looks at the clock whenever the stream waits, whatever it waits
//! for. The response future and body only note their activity, in the
//! [`TaskClock`] they share with the task: its head, and each body frame
//! hyper takes. hyper takes a frame, then waits for the stream to have a
//! byte of window before it hands the frame to h2 and takes the next, so
//! the time a frame waits for window is quiet. When the
//! stream goes quiet, the task tells the response and polls it once
//! more: a response still to come answers `408`, and a body hyper is
//! polling fails, which resets the stream, as over HTTP/1. A stream still
//! waiting after that waits for window: its task ends, which drops the
//! response and its body, and h2 resets the stream (`RST_STREAM` with
//! `CANCEL`) once nothing else holds it (a request body still being read
//! elsewhere holds it until it is dropped).
//!
//! A response whose last frame hyper has handed to h2 is done with its
//! task, and no longer timed: h2 holds what is left of it, and the
//! stream, until the client grants the window, or the connection ends.
//! hyper hands that frame over once the stream has a byte of window, and
//! trailers without waiting for any, so a body of one frame (a `Full`
//! body, a gRPC unary answer) escapes the bound once its client grants a
//! byte. Resetting such a stream needs a hook h2 does not have (a send
//! timeout, or a reset of a stream whose end it still holds); the
//! stream counts against the connection's concurrent streams meanwhile.
//!
//! # How a task finds its stream's clock
//!
//! hyper spawns a stream's task from the connection's task, right after
//! it has called the service for the stream, so the connection's
//! [`StreamTasks`] hands over the one clock the call just made. Only the
//! connection's own task takes it: a tunnel's task, which hyper spawns
//! from the stream's, takes none.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{task::Id, time::Sleep};

use super::{poll_quiet, reads::LastRead};

/// What a stream's response and its task share: the response's last
/// activity, and whether the task found the stream idle.
#[derive(Debug)]
pub(in crate::serve) struct TaskClock {
    last: LastRead,
    idle: AtomicBool,
    /// The response no longer wants timing: a `101` ended the stream.
    off: AtomicBool,
}

impl TaskClock {
    pub(in crate::serve) fn touch(&self) {
        self.last.touch();
    }

    /// Whether the stream's task found it idle.
    pub(in crate::serve) fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// The response dropped its clock: the stream's task stops timing it.
    pub(in crate::serve) fn off(&self) {
        self.off.store(true, Ordering::Relaxed);
    }
}

/// What a stream's task times: handed over from the service's call to
/// the task.
#[derive(Debug)]
pub(in crate::serve) struct Ticket {
    clock: Arc<TaskClock>,
    /// The stream's request data, when any is to come.
    reads: Option<Arc<LastRead>>,
}

/// The tickets of one HTTP/2 connection's streams, on their way from the
/// service's call to the stream's task.
#[derive(Debug)]
pub(in crate::serve) struct StreamTasks {
    timeout: Duration,
    /// The connection's task, the only one whose spawns are streams.
    conn: Option<Id>,
    next: Mutex<Option<Ticket>>,
}

impl StreamTasks {
    /// The tickets of the connection served in the current task.
    pub(in crate::serve) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            conn: tokio::task::try_id(),
            next: Mutex::new(None),
        }
    }

    /// A clock for the stream a request was just made for, whose request
    /// data `reads` notes: its task takes it (see [`Self::take`]).
    pub(in crate::serve) fn start(&self, reads: Option<Arc<LastRead>>) -> Arc<TaskClock> {
        let clock = Arc::new(TaskClock {
            last: LastRead::now(),
            idle: AtomicBool::new(false),
            off: AtomicBool::new(false),
        });
        self.put(Some(Ticket {
            clock: clock.clone(),
            reads,
        }));
        clock
    }

    /// The stream a request was just made for is not timed.
    pub(in crate::serve) fn untimed(&self) {
        self.put(None);
    }

    fn put(&self, ticket: Option<Ticket>) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = ticket;
    }

    /// The ticket of a task being spawned: the last call's, when the
    /// connection's task spawns it.
    pub(in crate::serve) fn take(&self) -> Option<Ticket> {
        if tokio::task::try_id() != self.conn {
            return None;
        }
        self.next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// `task`, timed by `ticket`.
    pub(in crate::serve) fn timed<F>(&self, task: F, ticket: Ticket) -> StreamTask<F> {
        let deadline = ticket.clock.last.get() + self.timeout;
        StreamTask {
            inner: task,
            timer: tokio::time::sleep_until(deadline),
            timeout: self.timeout,
            ticket,
        }
    }
}

pin_project_lite::pin_project! {
    /// The task hyper serves an HTTP/2 stream in, and the stream's clock.
    pub(in crate::serve) struct StreamTask<F> {
        #[pin]
        inner: F,
        // In the task, not boxed: it stays where the task is.
        #[pin]
        timer: Sleep,
        timeout: Duration,
        ticket: Ticket,
    }
}

impl<F: Future> Future for StreamTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.inner.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let Ticket { clock, reads } = &*this.ticket;
        if clock.off.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let last = || {
            let last = clock.last.get();
            reads.as_ref().map_or(last, |reads| last.max(reads.get()))
        };
        ready!(poll_quiet(this.timer.as_mut(), *this.timeout, last, cx));
        clock.idle.store(true, Ordering::Relaxed);
        if this.inner.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        tracing::debug!("stream idle waiting for send window; resetting it");
        Poll::Ready(())
    }
}

impl<F> std::fmt::Debug for StreamTask<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTask")
            .field("timeout", &self.timeout)
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}
