//! A bound on how long a peer may leave the server's writes waiting.
//!
//! A client that asks for a large or endless response and never reads it
//! fills the socket buffers, and from then on every write the server
//! makes waits. hyper has no timer for that: the header read timeout only
//! runs while a request head is awaited, and HTTP/1 has no pings. Such a
//! connection would keep its task, its buffers and its place under the
//! connection limit for ever, so a few thousand of them starve every
//! honest client (the "slow read" attack). nginx's `send_timeout` and
//! Envoy's `stream_idle_timeout` bound the same wait.
//!
//! [`WriteStall`] fails a write, with [`io::ErrorKind::TimedOut`], once the
//! stream has accepted no byte for the whole timeout. Any progress starts
//! the clock again, so a slow reader is served at its pace; only one that
//! reads nothing at all is cut. Reads are not timed: an idle keep-alive
//! connection has the header read timeout, an idle tunnel is allowed to be
//! idle, and a read also waits while the application takes its time to
//! answer.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

pin_project_lite::pin_project! {
    /// An I/O stream whose writes fail after `timeout` without progress.
    pub(super) struct WriteStall<I> {
        #[pin]
        io: I,
        timeout: Duration,
        clock: Clock,
    }
}

impl<I> WriteStall<I> {
    pub(super) fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            clock: Clock {
                timer: None,
                waiting: None,
            },
        }
    }
}

/// What the clock is timing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Flush,
}

/// The time since the writes last made progress.
struct Clock {
    // Created at the first write that waits, so that connections whose
    // writes never wait register no timer.
    timer: Option<Pin<Box<Sleep>>>,
    // What waits, while the timer runs.
    waiting: Option<Op>,
}

impl Clock {
    /// Passes on `result` of an `op`, and times the wait when it did not
    /// complete: `Pending` until `timeout` has passed without progress,
    /// then `TimedOut`.
    fn time<T>(
        &mut self,
        op: Op,
        timeout: Duration,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            // A completed write is progress. A completed flush is progress
            // only when the flush was what waited: one that is always
            // ready (a TCP stream's) between two blocked writes is not.
            if op == Op::Write || self.waiting == Some(Op::Flush) {
                self.waiting = None;
            }
            return result;
        }
        let deadline = Instant::now() + timeout;
        let sleep = match (&mut self.timer, self.waiting) {
            (Some(sleep), Some(_)) => sleep,
            (Some(sleep), None) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            (timer @ None, _) => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = Some(op);
        ready!(sleep.as_mut().poll(cx));
        self.waiting = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer read nothing for the write stall timeout",
        )))
    }
}

impl<I: AsyncRead> AsyncRead for WriteStall<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for WriteStall<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let write = this.io.poll_write(cx, buf);
        this.clock.time(Op::Write, *this.timeout, cx, write)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let write = this.io.poll_write_vectored(cx, bufs);
        this.clock.time(Op::Write, *this.timeout, cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flush = this.io.poll_flush(cx);
        this.clock.time(Op::Flush, *this.timeout, cx, flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let shutdown = this.io.poll_shutdown(cx);
        this.clock.time(Op::Flush, *this.timeout, cx, shutdown)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_timeout() {
        let (a, _b) = tokio::io::duplex(4);
        let mut io = WriteStall::new(a, TIMEOUT);
        let start = Instant::now();
        let err = io.write_all(b"more than four bytes").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_that_is_always_ready_does_not_restart_the_clock() {
        // hyper flushes between its attempts to write; a TCP stream's
        // flush is ready at once, and says nothing of the peer.
        let (a, _b) = tokio::io::duplex(4);
        let mut io = WriteStall::new(a, TIMEOUT);
        io.write_all(b"full").await.unwrap();
        let start = Instant::now();
        let err = std::future::poll_fn(|cx| {
            let mut io = std::pin::Pin::new(&mut io);
            if let Poll::Ready(result) = io.as_mut().poll_write(cx, b"more") {
                return Poll::Ready(result);
            }
            assert!(io.as_mut().poll_flush(cx).is_ready());
            Poll::Pending
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_served_at_its_pace() {
        let (a, mut b) = tokio::io::duplex(4);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0; 4];
            loop {
                // Slower than the timeout in total, never within one wait.
                tokio::time::sleep(TIMEOUT / 2).await;
                match b.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut io = WriteStall::new(a, TIMEOUT);
        io.write_all(b"sixteen bytes!!!").await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), b"sixteen bytes!!!");
    }
}
