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
//! connection has the header read timeout, and an idle tunnel is allowed
//! to be idle.

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
        // Created at the first write that waits, so that connections whose
        // writes never wait register no timer.
        timer: Option<Pin<Box<Sleep>>>,
        // Whether the timer runs for the wait in progress.
        waiting: bool,
    }
}

impl<I> WriteStall<I> {
    pub(super) fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            waiting: false,
        }
    }
}

/// Runs `write` and times the wait when it does not complete: `Pending`
/// until `timeout` has passed without progress, then `TimedOut`.
fn timed<T>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    waiting: &mut bool,
    timeout: Duration,
    cx: &mut Context<'_>,
    write: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    if write.is_ready() {
        *waiting = false;
        return write;
    }
    let deadline = Instant::now() + timeout;
    let sleep = match timer {
        Some(sleep) if *waiting => sleep,
        Some(sleep) => {
            sleep.as_mut().reset(deadline);
            sleep
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    *waiting = true;
    ready!(sleep.as_mut().poll(cx));
    *waiting = false;
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the peer read nothing for the write stall timeout",
    )))
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
        timed(this.timer, this.waiting, *this.timeout, cx, write)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let write = this.io.poll_write_vectored(cx, bufs);
        timed(this.timer, this.waiting, *this.timeout, cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flush = this.io.poll_flush(cx);
        timed(this.timer, this.waiting, *this.timeout, cx, flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let shutdown = this.io.poll_shutdown(cx);
        timed(this.timer, this.waiting, *this.timeout, cx, shutdown)
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
