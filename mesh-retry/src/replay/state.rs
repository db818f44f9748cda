//! The state the attempts of one request share.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// What the attempts of one request share: where the original body is, and
/// what of it has been recorded.
pub(super) struct Shared<B> {
    slot: Mutex<Slot<B>>,
    /// The most bytes recorded for replay.
    pub(super) max_bytes: usize,
    /// The original body's size hint, for attempts that have not started.
    pub(super) size_hint: SizeHint,
    /// The original body's `is_end_stream`, for an attempt dropped while
    /// it reads (`Drop` cannot require `B: Body`).
    pub(super) ended: fn(&B) -> bool,
}

/// The state, and the retry waiting for the attempt that holds the body to
/// let it go, if one is.
pub(super) struct Slot<B> {
    pub(super) state: State<B>,
    release: Option<Waker>,
}

pub(super) enum State<B> {
    /// An attempt's body holds the reader and is reading the original body.
    Reading,
    /// The original body is not finished, and no attempt holds it: the last
    /// attempt ended before reading it all. The next attempt replays what
    /// was recorded, then reads on.
    Parked(Reader<B>),
    /// The original body was read to its end and recorded whole.
    Complete(Recording),
    /// The body cannot be replayed: it outgrew the cap, or the original
    /// body failed.
    Committed,
}

/// The original body and what has been read from it so far.
pub(super) struct Reader<B> {
    pub(super) body: B,
    /// Every data chunk read so far, in order, while recording.
    pub(super) chunks: Chunks,
    /// The sum of `chunks`' lengths.
    pub(super) recorded: usize,
    /// Whether chunks are still recorded; false once the cap is passed.
    pub(super) recording: bool,
}

/// A body read to its end: every chunk, and the trailers. It stays in the
/// shared state, and each replay reads it there: a retry copies no chunks.
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) chunks: Chunks,
    pub(super) trailers: Option<HeaderMap>,
    pub(super) len: u64,
}

/// Chunks in order. Most small bodies are one chunk, which is kept without
/// a `Vec`. The first attempt's body holds this inline and is moved with
/// its request many times, so it is kept as small as one `Bytes`: two
/// variants fit in the niche of `Bytes`, where a third would add a tag.
/// No chunks at all is an empty `Vec`, which does not allocate.
#[derive(Debug)]
pub(super) enum Chunks {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Chunks {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        match self {
            Self::Many(chunks) if chunks.is_empty() => *self = Self::One(chunk),
            Self::Many(chunks) => chunks.push(chunk),
            Self::One(_) => {
                if let Self::One(first) = std::mem::take(self) {
                    // As many as a `Vec` holds at first anyway.
                    let mut chunks = Vec::with_capacity(4);
                    chunks.extend([first, chunk]);
                    *self = Self::Many(chunks);
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(chunks) => chunks.len(),
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Self::One(chunk) => (i == 0).then_some(chunk),
            Self::Many(chunks) => chunks.get(i),
        }
    }

    /// The bytes in `self[from..]`.
    pub(super) fn bytes_from(&self, from: usize) -> u64 {
        (from..self.len())
            .filter_map(|i| self.get(i))
            .map(|c| c.len() as u64)
            .sum()
    }
}

/// Where the original body stands, which decides whether another attempt
/// can be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replayable {
    /// It was read to its end and recorded whole (or it is empty).
    Complete,
    /// An attempt ended before reading it all; the next attempt can replay
    /// what was read and read on.
    Unfinished,
    /// An attempt still holds it and is sending it.
    InUse,
    /// It outgrew the cap (or failed), and parts of it are gone.
    Committed,
}

impl<B> Shared<B> {
    pub(super) fn new(max_bytes: usize, size_hint: SizeHint) -> Self
    where
        B: Body,
    {
        Self {
            slot: Mutex::new(Slot {
                state: State::Reading,
                release: None,
            }),
            max_bytes,
            size_hint,
            ended: B::is_end_stream,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Slot<B>> {
        // A panic while holding the lock cannot leave the state half
        // written: every update is one assignment.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the state, and wakes a retry waiting for the body's release:
    /// whatever the new state is, the attempt that held the body is done
    /// with it.
    pub(super) fn set(&self, state: State<B>) {
        let mut slot = self.lock();
        slot.state = state;
        let waiter = slot.release.take();
        drop(slot);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Ready once no attempt holds the original body; until then, the task
    /// of `cx` is woken when one lets it go.
    pub(super) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.lock();
        if !matches!(slot.state, State::Reading) {
            return Poll::Ready(());
        }
        match &mut slot.release {
            Some(waker) => waker.clone_from(cx.waker()),
            None => slot.release = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(super) fn replayable(&self) -> Replayable {
        match &self.lock().state {
            State::Complete(_) => Replayable::Complete,
            State::Parked(_) => Replayable::Unfinished,
            State::Committed => Replayable::Committed,
            State::Reading => Replayable::InUse,
        }
    }
}

impl<B> Reader<B> {
    pub(super) fn new(body: B) -> Self {
        Self {
            body,
            chunks: Chunks::default(),
            recorded: 0,
            recording: true,
        }
    }

    /// Records `chunk` if it fits under `max_bytes`. Returns `false` when
    /// it does not: recording stops, and what was recorded is freed.
    pub(super) fn record(&mut self, chunk: &Bytes, max_bytes: usize) -> bool {
        if !self.recording {
            return false;
        }
        if self.recorded.saturating_add(chunk.len()) > max_bytes {
            self.stop();
            return false;
        }
        if !chunk.is_empty() {
            self.recorded += chunk.len();
            self.chunks.push(chunk.clone());
        }
        true
    }

    /// Stops recording, and frees what was recorded.
    pub(super) fn stop(&mut self) {
        self.recording = false;
        self.chunks = Chunks::default();
        self.recorded = 0;
    }

    /// The whole recording, once the body has ended with `trailers`.
    pub(super) fn finish(&mut self, trailers: Option<HeaderMap>) -> Recording {
        Recording {
            chunks: std::mem::take(&mut self.chunks),
            trailers,
            len: self.recorded as u64,
        }
    }
}

impl Recording {
    /// How many frames a replay sends: every chunk, then the trailers.
    pub(super) fn frames(&self) -> usize {
        self.chunks.len() + usize::from(self.trailers.is_some())
    }

    /// The size hint of a replay from frame `next` on: exact, unless the
    /// body ends with trailers. HTTP/1.1 carries trailers only in a chunked
    /// body, and hyper sends a body whose size is exact with a
    /// `content-length` instead, dropping them: a retry would lose the
    /// trailers its first attempt sent.
    pub(super) fn size_hint_from(&self, next: usize) -> SizeHint {
        let left = match next {
            0 => self.len,
            _ => self.chunks.bytes_from(next),
        };
        if self.trailers.is_none() || next >= self.frames() {
            return SizeHint::with_exact(left);
        }
        let mut hint = SizeHint::new();
        hint.set_lower(left);
        hint
    }

    /// A replay's frame `i`: chunk `i`, or the trailers after the last one.
    pub(super) fn frame(&self, i: usize) -> Option<Frame<Bytes>> {
        match self.chunks.get(i) {
            Some(chunk) => Some(Frame::data(chunk.clone())),
            None if i == self.chunks.len() => self.trailers.clone().map(Frame::trailers),
            None => None,
        }
    }
}
