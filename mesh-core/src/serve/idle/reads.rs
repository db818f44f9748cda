//! Request data seen on a connection's reads.
//!
//! A stream's request body is read by the application, through hyper's
//! body type, which the server cannot wrap; the bytes it is made of pass
//! through the connection's reads first. [`Watched`] notes the time of
//! the last read that carried request data into a [`LastRead`] the
//! connection's streams share: for HTTP/1, any byte; for HTTP/2, a `DATA`
//! or `HEADERS` frame, told from the rest (pings, settings, window
//! updates, which a quiet stream's client sends too) by [`Frames`], which
//! reads the nine-byte frame headers and skips the payloads.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// When a connection last read request data.
#[derive(Debug)]
pub(in crate::serve) struct LastRead {
    base: Instant,
    /// Nanoseconds since `base`.
    since: AtomicU64,
}

impl LastRead {
    /// No request data yet: the last read is now.
    pub(in crate::serve) fn now() -> Self {
        Self {
            base: Instant::now(),
            since: AtomicU64::new(0),
        }
    }

    pub(in crate::serve) fn touch(&self) {
        let since = Instant::now().saturating_duration_since(self.base);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.since.store(nanos, Ordering::Relaxed);
    }

    /// The time of the last read of request data.
    pub(in crate::serve) fn get(&self) -> Instant {
        self.base + Duration::from_nanos(self.since.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// An I/O stream whose reads of request data are noted, when watched.
    pub(in crate::serve) struct Watched<I> {
        #[pin]
        io: I,
        watch: Option<Watch>,
    }
}

struct Watch {
    last: Arc<LastRead>,
    /// HTTP/2's frames, or `None` for HTTP/1, where every byte counts.
    frames: Option<Frames>,
}

impl<I> Watched<I> {
    /// `io`, its reads unwatched.
    pub(in crate::serve) fn off(io: I) -> Self {
        Self { io, watch: None }
    }

    /// `io`, carrying HTTP/1: every byte read is request data.
    pub(in crate::serve) fn http1(io: I, last: Arc<LastRead>) -> Self {
        let watch = Watch { last, frames: None };
        Self {
            io,
            watch: Some(watch),
        }
    }

    /// `io`, carrying HTTP/2 from its preface on.
    pub(in crate::serve) fn http2(io: I, last: Arc<LastRead>) -> Self {
        let frames = Some(Frames::after_preface());
        Self {
            io,
            watch: Some(Watch { last, frames }),
        }
    }
}

impl<I: AsyncRead> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let Some(watch) = this.watch else {
            return this.io.poll_read(cx, buf);
        };
        let before = buf.filled().len();
        let read = this.io.poll_read(cx, buf);
        let new = buf.filled().get(before..).unwrap_or_default();
        let data = match &mut watch.frames {
            None => !new.is_empty(),
            Some(frames) => frames.carry_request_data(new),
        };
        if data {
            watch.last.touch();
        }
        read
    }
}

impl<I: AsyncWrite> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4), which comes
/// before the first frame.
const PREFACE_LEN: usize = 24;
/// A frame header: length (3 bytes), type, flags, stream (4 bytes).
const HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;

/// Where a reader of an HTTP/2 byte stream is: how much payload to skip,
/// and the part of a frame header read so far.
#[derive(Debug)]
pub(in crate::serve) struct Frames {
    skip: usize,
    header: [u8; HEADER_LEN],
    have: usize,
}

impl Frames {
    pub(in crate::serve) fn after_preface() -> Self {
        Self {
            skip: PREFACE_LEN,
            header: [0; HEADER_LEN],
            have: 0,
        }
    }

    /// Reads on through `bytes`: whether a `DATA` or `HEADERS` frame
    /// began in them.
    pub(in crate::serve) fn carry_request_data(&mut self, mut bytes: &[u8]) -> bool {
        let mut seen = false;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let n = (HEADER_LEN - self.have).min(bytes.len());
            if let (Some(to), Some(from)) = (
                self.header.get_mut(self.have..self.have + n),
                bytes.get(..n),
            ) {
                to.copy_from_slice(from);
            }
            self.have += n;
            bytes = bytes.get(n..).unwrap_or_default();
            if self.have == HEADER_LEN {
                self.have = 0;
                let [l0, l1, l2, kind, ..] = self.header;
                self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                seen |= kind == DATA || kind == HEADERS;
            }
        }
        seen
    }
}
