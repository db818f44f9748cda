//! Copying bytes both ways between two streams, passing on what one
//! direction can still deliver when the other has failed: see
//! [`copy_both_ways`].

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Each direction's buffer: tokio's copy uses as much.
const BUFFER: usize = 8 * 1024;

/// Copies bytes between `a` and `b` until both directions are done,
/// passing each one's end on (a `shutdown`, a FIN); resolves to the bytes
/// copied from `a` to `b` and from `b` to `a`, or the first error.
///
/// # Why
///
/// tokio's `copy_bidirectional` ends at the first error of either
/// direction, and what the other direction had on its way is dropped
/// with it. A server that answers and closes while its client is still
/// sending resets the connection (its kernel does, for the bytes it left
/// unread): the next write of the client's bytes fails, and the answer,
/// already received, never reaches the client, where a client talking to
/// the server directly would have read it. A proxy's byte pipe (a
/// forwarded TCP connection, an HTTP/1.1 upgrade, a sidecar's opaque
/// connection to its application) should change no more than it must.
/// Linkerd's proxy (`linkerd/duplex` in linkerd2-proxy) ends at the first
/// error as tokio's does.
///
/// # How
///
/// Each direction copies as tokio's does: it reads into its buffer,
/// writes it all out, flushes when its reader has nothing more for now,
/// and passes the end on when its reader ends. Both are polled every
/// time, the other one too when one fails.
///
/// A write, or the passing on of an end, that fails because its side is
/// gone (reset, a broken pipe, aborted, or not connected, which is what
/// a reset socket's `shutdown` says) leaves the other direction to
/// finish: it reads from that gone side, whose reads end without its
/// peer (what it had received, then its end or the same error), so the
/// copy waits on nothing but the kernel. It does wait for that: the stream's readiness can lag the
/// kernel (tokio learns of the bytes and the reset when its driver next
/// runs), so "nothing to read yet" right after the failed write does not
/// mean the answer is not there. Any other failure (a read's, or a
/// write's that leaves its side alive, such as a write timeout) ends the
/// copy as soon as the other direction would wait, after what it can do
/// at once: it never waits on a live side after the other failed.
pub fn copy_both_ways<A, B>(a: A, b: B) -> CopyBothWays<A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    CopyBothWays {
        a,
        b,
        a_to_b: Direction::Copying(Copy::new()),
        b_to_a: Direction::Copying(Copy::new()),
        failure: None,
    }
}

/// The future of [`copy_both_ways`].
#[must_use = "futures do nothing unless polled"]
pub struct CopyBothWays<A, B> {
    a: A,
    b: B,
    a_to_b: Direction,
    b_to_a: Direction,
    /// The first failure, kept until the copy ends with it.
    failure: Option<Failure>,
}

impl<A, B> std::fmt::Debug for CopyBothWays<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyBothWays")
            .field("a_to_b", &self.a_to_b)
            .field("b_to_a", &self.b_to_a)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Direction {
    Copying(Copy),
    /// The reader ended: the writer is being shut down, after the count.
    Ending(u64),
    Done(u64),
    /// It failed; the copy holds the failure.
    Failed,
}

/// How a direction failed.
#[derive(Debug)]
struct Failure {
    error: io::Error,
    /// A write (or a shutdown) failed because the side written to is
    /// gone: the other direction, which reads from it, ends without that
    /// side's peer.
    side_gone: bool,
}

impl Failure {
    fn reading(error: io::Error) -> Self {
        Self {
            error,
            side_gone: false,
        }
    }

    fn writing(error: io::Error) -> Self {
        let side_gone = matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
                // A reset TCP socket's `shutdown` fails with `ENOTCONN`,
                // though what it received before the reset is still
                // there to read.
                | io::ErrorKind::NotConnected
        );
        Self { error, side_gone }
    }
}

/// One direction's copy in progress.
struct Copy {
    buf: Box<[u8]>,
    /// What of `buf[..filled]` is written out.
    written: usize,
    filled: usize,
    /// Bytes were written since the last flush.
    unflushed: bool,
    reader_done: bool,
    copied: u64,
}

impl std::fmt::Debug for Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copy")
            .field("buffered", &(self.filled - self.written))
            .field("reader_done", &self.reader_done)
            .field("copied", &self.copied)
            .finish()
    }
}

impl Copy {
    fn new() -> Self {
        Self {
            buf: vec![0; BUFFER].into_boxed_slice(),
            written: 0,
            filled: 0,
            unflushed: false,
            reader_done: false,
            copied: 0,
        }
    }

    /// Copies from `reader` to `writer` until the reader ends and all it
    /// gave is written and flushed: the bytes copied.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<Result<u64, Failure>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.written == self.filled && !self.reader_done {
                let mut buf = ReadBuf::new(&mut self.buf);
                match reader.as_mut().poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        let n = buf.filled().len();
                        self.reader_done = n == 0;
                        self.written = 0;
                        self.filled = n;
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(Failure::reading(error))),
                    Poll::Pending => {
                        // Nothing more for now: what was written goes out
                        // rather than waits in the writer for more.
                        if self.unflushed {
                            ready!(writer.as_mut().poll_flush(cx)).map_err(Failure::writing)?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.written < self.filled {
                let chunk = &self.buf[self.written..self.filled];
                let n = ready!(writer.as_mut().poll_write(cx, chunk)).map_err(Failure::writing)?;
                if n == 0 {
                    let error = io::ErrorKind::WriteZero.into();
                    return Poll::Ready(Err(Failure::writing(error)));
                }
                self.written += n;
                self.copied += n as u64;
                self.unflushed = true;
            }
            if self.reader_done {
                ready!(writer.as_mut().poll_flush(cx)).map_err(Failure::writing)?;
                self.unflushed = false;
                return Poll::Ready(Ok(self.copied));
            }
        }
    }
}

impl Direction {
    /// Drives the direction from `reader` to `writer`: ready once the
    /// reader's end is passed on, or with the failure the first time it
    /// fails; ready with nothing to do after that.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
        writer: Pin<&mut W>,
    ) -> Poll<Result<(), Failure>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let polled = self.drive(cx, reader, writer);
        if let Poll::Ready(Err(_)) = polled {
            *self = Self::Failed;
        }
        polled
    }

    fn drive<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<Result<(), Failure>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            match self {
                Self::Copying(copy) => {
                    let copied = ready!(copy.poll_copy(cx, reader.as_mut(), writer.as_mut()))?;
                    *self = Self::Ending(copied);
                }
                Self::Ending(copied) => {
                    ready!(writer.as_mut().poll_shutdown(cx)).map_err(Failure::writing)?;
                    *self = Self::Done(*copied);
                }
                Self::Done(_) | Self::Failed => return Poll::Ready(Ok(())),
            }
        }
    }

    /// The bytes copied, once done.
    fn copied(&self) -> u64 {
        match self {
            Self::Done(copied) => *copied,
            Self::Copying(_) | Self::Ending(_) | Self::Failed => 0,
        }
    }
}

impl<A, B> Future for CopyBothWays<A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<(u64, u64)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Both, always: when one fails, the other still does what it can
        // at once, and more when the failed one's side is gone (see
        // `copy_both_ways`).
        let a_to_b = this
            .a_to_b
            .poll(cx, Pin::new(&mut this.a), Pin::new(&mut this.b));
        let b_to_a = this
            .b_to_a
            .poll(cx, Pin::new(&mut this.b), Pin::new(&mut this.a));
        let both_done = a_to_b.is_ready() && b_to_a.is_ready();
        for polled in [a_to_b, b_to_a] {
            if let Poll::Ready(Err(failure)) = polled {
                this.failure.get_or_insert(failure);
            }
        }
        match this.failure.take() {
            None if both_done => Poll::Ready(Ok((this.a_to_b.copied(), this.b_to_a.copied()))),
            None => Poll::Pending,
            Some(failure) if both_done || !failure.side_gone => Poll::Ready(Err(failure.error)),
            Some(failure) => {
                this.failure = Some(failure);
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests;
