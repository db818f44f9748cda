//! One tap's queue of events, bounded in events and in bytes.
//!
//! [`QUEUE`] events alone bound nothing that matters: a request event
//! holds a copy of its path and authority, which a client may make as
//! long as its request head (64 KiB by default), so a tap whose reader
//! stopped (a pager, a terminal scrolled back) would hold tens of
//! megabytes of whatever its clients sent. Each queue also counts the
//! bytes its events hold, and loses events past [`MAX_QUEUED_BYTES`].

use std::{
    mem,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tokio::sync::mpsc;

use super::{Dst, Head, HeadText, MAX_QUEUED_BYTES, QUEUE, TapEvent, TapEventKind};

/// Where one tap's events go. Cloning shares it.
#[derive(Clone, Debug)]
pub(super) struct Queue {
    events: mpsc::Sender<Queued>,
    /// The bytes the queued events hold, shared with the reader.
    bytes: Arc<AtomicUsize>,
}

/// What reads one tap's events.
#[derive(Debug)]
pub(super) struct Events {
    events: mpsc::Receiver<Queued>,
    bytes: Arc<AtomicUsize>,
}

/// A new tap's queue, and its reader.
pub(super) fn channel() -> (Queue, Events) {
    let (events, receiver) = mpsc::channel(QUEUE);
    let bytes = Arc::new(AtomicUsize::new(0));
    let queue = Queue {
        events,
        bytes: bytes.clone(),
    };
    (
        queue,
        Events {
            events: receiver,
            bytes,
        },
    )
}

impl Queue {
    /// Queues `kind` for the request `head` describes, unless the queue
    /// holds [`QUEUE`] events or [`MAX_QUEUED_BYTES`] already: then it is
    /// lost, and `false` says so. A tap closed since the request was
    /// matched has no reader to lose it: that is no loss.
    pub(super) fn push(&self, head: &Arc<Head>, kind: TapEventKind) -> bool {
        if self.events.is_closed() {
            return true;
        }
        let size = mem::size_of::<Queued>() + kind_bytes(&kind) + head_bytes(head);
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        let event = Queued {
            head: head.clone(),
            kind,
            size,
        };
        if before + size > MAX_QUEUED_BYTES || self.events.try_send(event).is_err() {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl Events {
    /// The next event, once there is one.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<TapEvent>> {
        self.events
            .poll_recv(cx)
            .map(|queued| queued.map(|q| self.take(q)))
    }

    /// The next event, if one is queued now.
    #[cfg(test)]
    pub(super) fn try_recv(&mut self) -> Option<TapEvent> {
        let queued = self.events.try_recv().ok()?;
        Some(self.take(queued))
    }

    fn take(&self, queued: Queued) -> TapEvent {
        self.bytes.fetch_sub(queued.size, Ordering::Relaxed);
        queued.event()
    }
}

/// The bytes an event's texts hold.
fn kind_bytes(kind: &TapEventKind) -> usize {
    match kind {
        TapEventKind::Req {
            method,
            authority,
            path,
        } => method.capacity() + authority.capacity() + path.capacity(),
        TapEventKind::Rsp { .. } => 0,
        TapEventKind::End { error, .. } => error.as_ref().map_or(0, String::capacity),
    }
}

/// What a request's head holds, counted with each of its events, which
/// share it: its own size, its authority (outbound) and the text the
/// reader writes of it, addresses (at most 47 bytes each) included.
fn head_bytes(head: &Head) -> usize {
    let authority = match &head.dst {
        Dst::Authority(authority) => authority.capacity(),
        Dst::Local(_) => 0,
    };
    mem::size_of::<Head>() + mem::size_of::<HeadText>() + 2 * authority + 2 * 48
}

/// An event in a tap's queue: what it says of the request, the head it
/// shares with the request's other events, and the bytes it is counted
/// as.
#[derive(Debug)]
struct Queued {
    head: Arc<Head>,
    kind: TapEventKind,
    size: usize,
}

impl Queued {
    fn event(self) -> TapEvent {
        let head = &*self.head;
        let text = head.text.get_or_init(|| HeadText {
            src: head.src.map_or_else(String::new, |a| a.to_string()),
            dst: match &head.dst {
                Dst::Local(addr) => addr.map_or_else(String::new, |a| a.to_string()),
                Dst::Authority(authority) => authority.clone(),
            },
            tls: head.tls.map(str::to_owned),
        });
        TapEvent {
            id: head.id,
            proxy: head.proxy,
            src: text.src.clone(),
            dst: text.dst.clone(),
            tls: text.tls.clone(),
            kind: self.kind,
        }
    }
}
