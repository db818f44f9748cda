//! I/O adapters the engine shares with the layers.
//!
//! Protocol detection and TLS detection both have to read a connection's
//! first bytes before they know who should handle it. [`PrefixedIo`] gives
//! those bytes back: it replays them ahead of the rest of the stream, so the
//! handler sees the connection exactly as the peer sent it.
//!
//! A byte pipe between two connections (a forwarded TCP connection, an
//! HTTP/1.1 upgrade, an opaque connection to the application) copies both
//! ways with [`copy_both_ways`], which, unlike tokio's
//! `copy_bidirectional`, still passes on what one side sent when the other
//! fails.

mod duplex;

pub use self::duplex::{CopyBothWays, copy_both_ways};

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream the engine can hand around without naming its type: a TCP
/// stream, a TLS stream, either of them behind a [`PrefixedIo`], and so on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`], for paths that are per connection rather than per request,
/// where one allocation does not matter and a type parameter would spread.
pub type BoxIo = Box<dyn Io>;

/// An I/O stream whose first reads return bytes that were already read from
/// it.
#[derive(Debug)]
pub struct PrefixedIo<I> {
    prefix: Bytes,
    io: I,
}

impl<I> PrefixedIo<I> {
    /// Wraps `io`, replaying `prefix` before anything else is read from it.
    pub fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }

    /// The bytes not yet replayed.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &I {
        &self.io
    }

    /// The inner stream, and the bytes not yet replayed.
    pub fn into_parts(self) -> (Bytes, I) {
        (self.prefix, self.io)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PrefixedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                // An empty view still holds the buffer it was cut from:
                // detection's, a kibibyte or more, for as long as the
                // connection stays open.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_then_reads_the_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut io = PrefixedIo::new(Bytes::from_static(b"hello"), a);
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn a_small_read_buffer_takes_the_prefix_in_pieces() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = PrefixedIo::new(Bytes::from_static(b"abcdef"), a);
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(io.prefix(), b"ef");
    }
}
