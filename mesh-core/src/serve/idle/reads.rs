//! Request data seen on a connection's reads.
//!
//! # Why
//!
//! A stream's request body is read by the application, through hyper's
//! body type, which the server cannot wrap (the service takes hyper's
//! `Incoming`, which only hyper builds); the bytes it is made of pass
//! through the connection's reads first. [`Watched`] notes there when
//! request data was last read: for HTTP/1, which carries one stream at a
//! time, any byte, into the connection's [`LastRead`]; for HTTP/2, the
//! `DATA` frames and trailing `HEADERS` of each stream, into that
//! stream's own [`LastRead`], so that a quiet stream is not kept alive by
//! its busy neighbours (Envoy's `stream_idle_timeout` is per stream too).
//! [`Frames`] tells them from the rest (pings, settings, window updates,
//! which a quiet stream's client sends too) by the nine-byte frame
//! headers, and skips the payloads. A frame counts when its header is
//! read and again when its last byte is, which is when hyper hands its
//! data to the application: a large frame sent slowly is not counted
//! only as it began.
//!
//! # How a request finds its stream
//!
//! hyper does not tell a request which HTTP/2 stream it came on, but it
//! makes the requests in the order their streams were opened. So the
//! reads hand the streams over one at a time: a read ends where a header
//! block that opens a stream ends, and leaves that stream's [`LastRead`]
//! in [`Opened`] (or none, when the block ended the stream too: no
//! request data is to come) for the next request made to take; the reads
//! then wait until it is taken. h2 decodes all it was given before it
//! reads again, and hyper makes a request for every stream h2 accepted
//! before the connection waits. So a stream still there when the
//! connection waits, after the reads waited for it, is one h2 refused
//! (too many streams, a malformed head, a connection going away):
//! [`Handover`] drops it and wakes the connection to read on. Requests
//! that arrive together are still all handed over in one poll of the
//! connection. This leans on how h2 0.4 and hyper 1 serve a connection;
//! the tests open a refused stream between two others to hold them to it.
//!
//! # Rapid reset
//!
//! h2 bounds a flood of streams opened and reset at once (rapid reset,
//! CVE-2023-44487) by the streams it holds reset before the server took
//! them: it decodes all a peer has sent before hyper takes any, and past
//! 20 such streams it ends the connection, and none of them is served.
//! Handed over one at a time, every stream is taken before its reset is
//! read, so h2 never finds one waiting, and the service would be called
//! for each stream of the flood. So the reads count them instead: a
//! stream reset in the same burst of reads that opened it (until the
//! socket has nothing more to read, where h2 would have let hyper take
//! them), and past h2's bound they fail, which ends the connection.
//!
//! A paced flood, whose client waits for each stream to be served before
//! it resets it, h2 does not bound at all, handed over or not: the reads
//! count the streams reset prematurely, by when they opened, against
//! those the service was called for ([`resets`]), on every HTTP/2
//! connection the bound is on for, and when the client
//! goes past it they tell the connection ([`Handover`]), which goes away
//! gracefully (`GOAWAY`). The streams the client opens after that are
//! served up to a grace, for those a client pipelining its calls sent
//! before it could read the `GOAWAY` ([`resets`] says how many, and
//! why); the next one fails the read that carries it, before h2 decodes
//! it: the connection ends then, and that stream is not served.
//!
//! [`resets`]: super::resets

use std::{
    collections::HashMap,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

use super::resets::{Flooded, RapidReset, Resets};
use crate::serve::connection::Graceful;

/// When a connection, or an HTTP/2 stream, last read request data.
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
        self.touch_at(Instant::now());
    }

    fn touch_at(&self, now: Instant) {
        let since = now.saturating_duration_since(self.base);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.since.store(nanos, Ordering::Relaxed);
    }

    /// The time of the last read of request data.
    pub(in crate::serve) fn get(&self) -> Instant {
        self.base + Duration::from_nanos(self.since.load(Ordering::Relaxed))
    }
}

/// The HTTP/2 stream whose header block was read last, until its request
/// takes it.
#[derive(Debug, Default)]
pub(in crate::serve) struct Opened {
    offer: Mutex<Option<Offer>>,
}

#[derive(Debug)]
struct Offer {
    /// The stream's request data, or `None` when its header block ended
    /// it.
    stream: Option<Arc<LastRead>>,
    /// Whether the reads have waited for its request since: h2 decoded
    /// its header block, and asked for more.
    waited: bool,
}

impl Opened {
    /// Takes the stream a request was made for: `None` when none is
    /// offered; `Some(None)` when the stream has no request data to come.
    pub(in crate::serve) fn take(&self) -> Option<Option<Arc<LastRead>>> {
        self.lock().take().map(|offer| offer.stream)
    }

    /// The connection waits: hyper has made a request for every stream
    /// h2 took. Drops a stream the reads waited for, which h2 refused;
    /// whether there was one.
    pub(in crate::serve) fn drop_refused(&self) -> bool {
        let mut offer = self.lock();
        let refused = offer.as_ref().is_some_and(|offer| offer.waited);
        if refused {
            *offer = None;
        }
        refused
    }

    fn put(&self, stream: Option<Arc<LastRead>>) {
        *self.lock() = Some(Offer {
            stream,
            waited: false,
        });
    }

    /// Whether a stream is still offered; if so, the reads wait for it.
    fn wait(&self) -> bool {
        match &mut *self.lock() {
            Some(offer) => {
                offer.waited = true;
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Offer>> {
        self.offer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/2 connection, whose reads hand its streams over when
    /// `opened` is set: when it waits, drops a stream h2 refused, and
    /// wakes itself for the reads to go on. When its reads find its
    /// client `flooded` it with premature resets, it goes away
    /// gracefully, once.
    pub(in crate::serve) struct Handover<C> {
        #[pin]
        conn: C,
        opened: Option<Arc<Opened>>,
        flooded: Option<Arc<Flooded>>,
        going_away: bool,
    }
}

impl<C> Handover<C> {
    pub(in crate::serve) fn new(
        conn: C,
        opened: Option<Arc<Opened>>,
        flooded: Option<Arc<Flooded>>,
    ) -> Self {
        Self {
            conn,
            opened,
            flooded,
            going_away: false,
        }
    }

    pub(in crate::serve) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().conn
    }
}

impl<C: Graceful> Future for Handover<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        let mut poll = this.conn.as_mut().poll(cx);
        if poll.is_pending()
            && !*this.going_away
            && this
                .flooded
                .as_ref()
                .is_some_and(|flooded| flooded.is_set())
        {
            // The connection's span names the peer.
            tracing::debug!("HTTP/2 streams reset prematurely (rapid reset); going away");
            *this.going_away = true;
            this.conn.as_mut().graceful_shutdown();
            if let Some(flooded) = this.flooded {
                flooded.tell();
            }
            // For h2 to send its GOAWAY now.
            poll = this.conn.as_mut().poll(cx);
        }
        if poll.is_pending()
            && let Some(opened) = this.opened
            && opened.drop_refused()
        {
            cx.waker().wake_by_ref();
        }
        poll
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

enum Watch {
    /// Every byte is request data of the one stream.
    Http1(Arc<LastRead>),
    Http2(Box<Http2>),
}

/// The reads of an HTTP/2 connection.
struct Http2 {
    frames: Frames,
    /// When its streams are timed: where their request data is noted.
    timed: Option<Timed>,
    /// Bytes read past a header block handed over: the next reads'.
    held: BytesMut,
    /// Whether a stream was handed over, and maybe not taken yet.
    handed: bool,
}

/// Where the request data of a connection whose streams are timed is
/// noted.
struct Timed {
    /// The connection's last request data, for a request whose stream is
    /// not known.
    last: Arc<LastRead>,
    opened: Arc<Opened>,
}

impl<I> Watched<I> {
    /// `io`, its reads unwatched.
    pub(in crate::serve) fn off(io: I) -> Self {
        Self { io, watch: None }
    }

    /// `io`, carrying HTTP/1: every byte read is request data.
    pub(in crate::serve) fn http1(io: I, last: Arc<LastRead>) -> Self {
        Self {
            io,
            watch: Some(Watch::Http1(last)),
        }
    }

    /// `io`, carrying HTTP/2 from its preface on: when its streams are
    /// `timed`, they are handed over to their requests through the
    /// [`Opened`] and their request data noted from the [`LastRead`]; when
    /// `resets` are counted, a client past their bound is found out.
    pub(in crate::serve) fn http2(
        io: I,
        timed: Option<(Arc<LastRead>, Arc<Opened>)>,
        resets: Option<Resets>,
    ) -> Self {
        let http2 = Http2 {
            frames: Frames::new(timed.is_some(), resets),
            timed: timed.map(|(last, opened)| Timed { last, opened }),
            held: BytesMut::new(),
            handed: false,
        };
        Self {
            io,
            watch: Some(Watch::Http2(Box::new(http2))),
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
        match this.watch {
            None => this.io.poll_read(cx, buf),
            Some(Watch::Http1(last)) => {
                let before = buf.filled().len();
                let read = this.io.poll_read(cx, buf);
                if buf.filled().len() > before {
                    last.touch();
                }
                read
            }
            Some(Watch::Http2(http2)) => http2.poll_read(this.io, cx, buf),
        }
    }
}

impl Http2 {
    fn poll_read<I: AsyncRead>(
        &mut self,
        io: Pin<&mut I>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.handed {
            // Woken by the connection if no request takes it: see
            // `Handover`.
            if self.timed.as_ref().is_some_and(|timed| timed.opened.wait()) {
                return Poll::Pending;
            }
            self.handed = false;
        }
        let before = buf.filled().len();
        let held = !self.held.is_empty();
        if held {
            let n = self.held.len().min(buf.remaining());
            buf.put_slice(self.held.get(..n).unwrap_or_default());
        } else if let Poll::Ready(read) = io.poll_read(cx, buf) {
            read?;
        } else {
            // Nothing more to read: h2 lets hyper take what it decoded.
            self.frames.burst_drained();
            return Poll::Pending;
        }
        let new = buf.filled().get(before..).unwrap_or_default();
        let scan = self.frames.read(new);
        if self.frames.burst_resets > BURST_RESETS_MAX {
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many HTTP/2 streams reset as they were opened (rapid reset)",
            )));
        }
        if let Some((bound, told)) = self.frames.kept_on {
            // Nothing of it is h2's to decode.
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                RapidReset {
                    bound,
                    kept_on: true,
                    told,
                    ended_by: None,
                },
            )));
        }
        if held {
            self.held.advance(scan.len);
        } else if let Some(rest) = new.get(scan.len..) {
            self.held.extend_from_slice(rest);
        }
        buf.set_filled(before + scan.len);
        if let Some(timed) = &self.timed {
            if scan.data {
                timed.last.touch();
            }
            if let Some(stream) = scan.opened {
                timed.opened.put(stream);
                self.handed = true;
            }
        }
        Poll::Ready(Ok(()))
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
const RST_STREAM: u8 = 0x3;
const CONTINUATION: u8 = 0x9;
/// Flags of `DATA` and `HEADERS` frames.
const END_STREAM: u8 = 0x1;
/// Flag of `HEADERS` and `CONTINUATION` frames.
const END_HEADERS: u8 = 0x4;
/// How many streams are kept before the ended ones are swept out.
const SWEEP_MIN: usize = 16;
/// How many streams one burst of reads may open and see reset: h2's
/// default bound on the streams reset before the server took them
/// (`max_pending_accept_reset_streams`), which the server keeps.
const BURST_RESETS_MAX: usize = 20;

/// What a read of an HTTP/2 byte stream carried.
#[derive(Debug)]
pub(in crate::serve) struct Scan {
    /// How many bytes to pass on now: up to the end of a header block
    /// that opened a stream, or all.
    pub(in crate::serve) len: usize,
    /// Whether a `DATA` or `HEADERS` frame began in them.
    pub(in crate::serve) data: bool,
    /// The stream a header block opened, ending at `len`: its request
    /// data, or `None` when the block ended it too.
    pub(in crate::serve) opened: Option<Option<Arc<LastRead>>>,
}

/// Where a reader of an HTTP/2 byte stream is, and the request data of
/// the streams it has seen opened.
#[derive(Debug)]
pub(in crate::serve) struct Frames {
    /// Whether the streams are handed over to their requests, and their
    /// request data noted: the streams are timed.
    hands_over: bool,
    /// The count of the streams reset prematurely, when bounded.
    resets: Option<Resets>,
    /// The bound of the resets, when a stream was opened after the
    /// client went past it, and whether the connection had sent its
    /// `GOAWAY` by then.
    kept_on: Option<(super::resets::ResetBound, bool)>,
    /// Payload (or preface) bytes to skip.
    skip: usize,
    header: [u8; HEADER_LEN],
    have: usize,
    /// The highest stream a `HEADERS` frame opened.
    last_opened: u32,
    /// The stream whose header block is being read, when that block
    /// opens it: its request data, if any is to come.
    opening: Option<Option<Arc<LastRead>>>,
    /// Whether the frame being skipped ends that block.
    block_ends: bool,
    /// The request data of the stream whose `DATA` frame (or trailers)
    /// is being skipped: the frame is request data again when its last
    /// byte is read, which is when hyper hands it on.
    payload_of: Option<Arc<LastRead>>,
    /// The streams with request data to come. One whose request is done
    /// (only this map holds its `LastRead`) is swept out, at the latest
    /// once the map has doubled.
    streams: HashMap<u32, Arc<LastRead>>,
    sweep_at: usize,
    /// The first stream opened since the socket last had nothing to
    /// read: the streams of this burst are it and those above it.
    burst_first: Option<u32>,
    /// How many streams of this burst were reset in it.
    burst_resets: usize,
}

impl Frames {
    /// A reader that hands streams over, and counts no resets.
    #[cfg(test)]
    pub(in crate::serve) fn after_preface() -> Self {
        Self::new(true, None)
    }

    /// A reader from after the preface, which hands streams over or not,
    /// and counts `resets`.
    pub(in crate::serve) fn new(hands_over: bool, resets: Option<Resets>) -> Self {
        Self {
            hands_over,
            resets,
            kept_on: None,
            skip: PREFACE_LEN,
            header: [0; HEADER_LEN],
            have: 0,
            last_opened: 0,
            opening: None,
            block_ends: false,
            payload_of: None,
            streams: HashMap::new(),
            sweep_at: SWEEP_MIN,
            burst_first: None,
            burst_resets: 0,
        }
    }

    /// The socket had nothing more to read: a burst of reads ends.
    fn burst_drained(&mut self) {
        self.burst_first = None;
        self.burst_resets = 0;
    }

    /// Reads on through `bytes`, up to the end of the first header block
    /// that opens a stream, noting request data of the streams seen.
    pub(in crate::serve) fn read(&mut self, bytes: &[u8]) -> Scan {
        let mut at = 0;
        let mut data = false;
        let mut now = None;
        while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                self.skip -= n;
                at += n;
                if self.skip == 0
                    && let Some(stream) = self.payload_of.take()
                {
                    stream.touch_at(*now.get_or_insert_with(Instant::now));
                    data = true;
                }
            } else {
                let n = (HEADER_LEN - self.have).min(rest.len());
                if let (Some(to), Some(from)) =
                    (self.header.get_mut(self.have..self.have + n), rest.get(..n))
                {
                    to.copy_from_slice(from);
                }
                self.have += n;
                at += n;
                if self.have < HEADER_LEN {
                    continue;
                }
                self.have = 0;
                data |= self.frame(&mut now);
            }
            if self.skip == 0 && self.block_ends {
                self.block_ends = false;
                return Scan {
                    len: at,
                    data,
                    opened: self.opening.take(),
                };
            }
        }
        Scan {
            len: at,
            data,
            opened: None,
        }
    }

    /// Takes in the frame whose header was just read: whether it is
    /// request data.
    fn frame(&mut self, now: &mut Option<Instant>) -> bool {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
        self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
        let end_headers = flags & END_HEADERS != 0;
        match kind {
            HEADERS if stream > self.last_opened => {
                let below = std::mem::replace(&mut self.last_opened, stream);
                if let Some(resets) = &mut self.resets
                    && !resets.opened(below, *now.get_or_insert_with(Instant::now))
                {
                    self.kept_on = Some((resets.bound(), resets.told()));
                }
                if !self.hands_over {
                    return true;
                }
                self.burst_first.get_or_insert(stream);
                let data = (flags & END_STREAM == 0).then(|| {
                    let data = Arc::new(LastRead::now());
                    self.insert(stream, data.clone());
                    data
                });
                self.opening = Some(data);
                self.block_ends = end_headers;
                true
            }
            // No stream's request data is noted.
            DATA | HEADERS if !self.hands_over => true,
            DATA | HEADERS => {
                if let Some(data) = self.streams.get(&stream) {
                    data.touch_at(*now.get_or_insert_with(Instant::now));
                    if self.skip > 0 {
                        self.payload_of = Some(data.clone());
                    }
                }
                if flags & END_STREAM != 0 {
                    self.streams.remove(&stream);
                }
                true
            }
            CONTINUATION => {
                self.block_ends = end_headers && self.opening.is_some();
                false
            }
            RST_STREAM => {
                if let Some(resets) = &mut self.resets
                    && stream != 0
                    && stream <= self.last_opened
                {
                    resets.reset(stream, *now.get_or_insert_with(Instant::now));
                }
                if self.burst_first.is_some_and(|first| stream >= first) {
                    self.burst_resets += 1;
                }
                self.streams.remove(&stream);
                false
            }
            _ => false,
        }
    }

    fn insert(&mut self, stream: u32, data: Arc<LastRead>) {
        if self.streams.len() >= self.sweep_at {
            self.streams.retain(|_, data| Arc::strong_count(data) > 1);
            self.sweep_at = (self.streams.len() * 2).max(SWEEP_MIN);
        }
        self.streams.insert(stream, data);
    }
}
