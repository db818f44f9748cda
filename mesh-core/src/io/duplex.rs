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
/// time, the other one too when one fails: what the other can do at once
/// (bytes already received, passed on to a side that takes them) is done,
/// and the copy ends with the first error as soon as the other would
/// wait. It never waits on a side after the other failed, so a failure
/// still ends the copy at once.
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
    }
}

/// The future of [`copy_both_ways`].
#[must_use = "futures do nothing unless polled"]
pub struct CopyBothWays<A, B> {
    a: A,
    b: B,
    a_to_b: Direction,
    b_to_a: Direction,
}

impl<A, B> std::fmt::Debug for CopyBothWays<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyBothWays")
            .field("a_to_b", &self.a_to_b)
            .field("b_to_a", &self.b_to_a)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Direction {
    Copying(Copy),
    /// The reader ended: the writer is being shut down, after the count.
    Ending(u64),
    Done(u64),
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
    ) -> Poll<io::Result<u64>>
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
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {
                        // Nothing more for now: what was written goes out
                        // rather than waits in the writer for more.
                        if self.unflushed {
                            ready!(writer.as_mut().poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.written < self.filled {
                let chunk = &self.buf[self.written..self.filled];
                let n = ready!(writer.as_mut().poll_write(cx, chunk))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
                self.copied += n as u64;
                self.unflushed = true;
            }
            if self.reader_done {
                ready!(writer.as_mut().poll_flush(cx))?;
                self.unflushed = false;
                return Poll::Ready(Ok(self.copied));
            }
        }
    }
}

impl Direction {
    /// Drives the direction from `reader` to `writer`: the bytes copied
    /// once the reader's end is passed on.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
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
                    ready!(writer.as_mut().poll_shutdown(cx))?;
                    *self = Self::Done(*copied);
                }
                Self::Done(copied) => return Poll::Ready(Ok(*copied)),
            }
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
        // at once before the error ends the copy.
        let a_to_b = this
            .a_to_b
            .poll(cx, Pin::new(&mut this.a), Pin::new(&mut this.b));
        let b_to_a = this
            .b_to_a
            .poll(cx, Pin::new(&mut this.b), Pin::new(&mut this.a));
        match (a_to_b, b_to_a) {
            (Poll::Ready(Err(error)), _) | (_, Poll::Ready(Err(error))) => Poll::Ready(Err(error)),
            (Poll::Ready(Ok(sent)), Poll::Ready(Ok(received))) => Poll::Ready(Ok((sent, received))),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
