//! A tracing subscriber that keeps every event's level and fields, so that
//! a test can check what the store, the acceptor and the connector log.
//!
//! An event logged in spans is written after them as the sidecar's
//! formatter (tracing-subscriber's `fmt`) writes it, outermost first, each
//! `name{field=value ...}:`, then a space: the acceptor's refusal, logged
//! in the server's connection span, is
//! `conn{peer=127.0.0.1:41522 port=4143}: message=inbound tls refused ...`.
//!
//! One subscriber is the global default of the test binary, installed by
//! the first capture, and hands each event to the capture of the thread it
//! was logged on, if any. A thread-local default per test
//! (`tracing::subscriber::set_default`) looks the same, but tests that
//! start and drop theirs on other threads at the same moment race
//! tracing's global callsite-interest cache: a callsite first hit while
//! another thread's subscriber was the default can be cached as "never",
//! and a capture then misses its events.
//!
//! The spans a thread is in are the ones it entered. The subscriber does
//! not tell tracing which span is current (the type it would answer with
//! is tracing-core's, not a dependency of this crate's tests), so a task
//! spawned `in_current_span`, as the server spawns an HTTP/2 stream's, is
//! in no span here; mesh-core's capture, on tracing-subscriber's registry,
//! sees those spans too.

use std::{
    cell::RefCell,
    collections::HashMap,
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::Interest,
};

/// The events logged on this thread while a capture's guard lives: each
/// one's level and its fields (`name=value`, space-separated), after the
/// spans it was logged in.
#[derive(Clone, Debug, Default)]
pub struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

thread_local! {
    /// The capture of this thread, if one is running.
    static CURRENT: RefCell<Option<Events>> = const { RefCell::new(None) };
    /// The spans this thread is in, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Installs the binary's one subscriber, once.
static INSTALL: Once = Once::new();

/// Ends a capture when dropped, putting back the one it replaced.
#[must_use = "the capture ends when the guard is dropped"]
pub struct CaptureGuard(Option<Events>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

impl Events {
    /// Captures this thread's events (a current-thread runtime's tasks
    /// included) until the guard is dropped.
    pub fn capture() -> (Self, CaptureGuard) {
        INSTALL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(ToCapture::default());
        });
        let events = Self::default();
        let previous = CURRENT.with(|current| current.borrow_mut().replace(events.clone()));
        (events, CaptureGuard(previous))
    }

    fn push(&self, level: tracing::Level, line: String) {
        self.0.lock().unwrap().push((level, line));
    }

    /// The fields of every event captured, in order.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The fields of the events captured at `level`, in order.
    pub fn at(&self, level: tracing::Level) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// An event's fields, each as `name=value `.
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

/// A span: `name{field=value ...}` or `name`, and how many handles to it
/// are alive.
struct Span {
    name: &'static str,
    fields: String,
    refs: usize,
}

/// The binary's subscriber: each event goes to its thread's capture, after
/// the spans that thread is in.
#[derive(Default)]
struct ToCapture {
    spans: Mutex<HashMap<u64, Span>>,
    next: AtomicU64,
}

impl ToCapture {
    fn capturing() -> bool {
        CURRENT
            .try_with(|current| current.try_borrow().is_ok_and(|c| c.is_some()))
            .unwrap_or(false)
    }

    /// `name{fields}:` for each span this thread is in, outermost first,
    /// then a space; empty in none.
    fn entered(&self) -> String {
        let spans = self.spans.lock().unwrap();
        let mut text = String::new();
        let _ = ENTERED.try_with(|entered| {
            for id in entered.borrow().iter() {
                let Some(span) = spans.get(id) else { continue };
                text.push_str(span.name);
                if !span.fields.is_empty() {
                    let _ = write!(text, "{{{}}}", span.fields.trim_end());
                }
                text.push(':');
            }
        });
        if !text.is_empty() {
            text.push(' ');
        }
        text
    }
}

impl Subscriber for ToCapture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked again at each event: whether a thread captures changes.
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        Self::capturing()
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.spans.lock().unwrap().insert(
            id,
            Span {
                name: span.metadata().name(),
                fields: fields.0,
                refs: 1,
            },
        );
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut fields = Fields(String::new());
        values.record(&mut fields);
        if let Some(span) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            span.fields.push_str(&fields.0);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let events = CURRENT
            .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten();
        if let Some(events) = events {
            let mut line = self.entered();
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            line.push_str(&fields.0);
            events.push(*event.metadata().level(), line);
        }
    }

    fn enter(&self, span: &Id) {
        let _ = ENTERED.try_with(|entered| entered.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        let _ = ENTERED.try_with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(at);
            }
        });
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            span.refs += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let mut spans = self.spans.lock().unwrap();
        let id = span.into_u64();
        let Some(span) = spans.get_mut(&id) else {
            return false;
        };
        span.refs -= 1;
        if span.refs > 0 {
            return false;
        }
        spans.remove(&id);
        true
    }
}
